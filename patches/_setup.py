"""The process-group setup ddpfix inserts: one spelling for every rule that adds it.

DDP016 (a DataParallel-only script converted to DDP) and DDP019 (a local-rank branch that wraps
the model in DDP with no process group) both pin the rank's GPU and initialise the group. They
share these lines so that the two agree and so that the other rules recognise them: the GPU
calls sit under a ``torch.cuda.is_available()`` test, which PRT003 and PRT013 read as already
guarded, and the backend is NCCL with CUDA, gloo without (as PRT003 makes it).
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from patcher.tree import Tree

#: The test the CUDA-only calls sit under.
CUDA = "torch.cuda.is_available()"


def process_group_setup(
    args: str,
    device: str,
    *,
    pin_test: str = CUDA,
    backend_test: str = CUDA,
    cpu_device: bool = True,
    timeout_minutes: int | None = None,
    n_gpu: bool = True,
) -> str:
    """The setup's lines, unindented: the rank's GPU pinned and ``device`` set to it when
    ``pin_test`` holds (else, with ``cpu_device``, ``device`` is the CPU), the group initialised
    with the backend ``backend_test`` chooses, and one GPU per process in ``args.n_gpu``.
    Without ``timeout_minutes`` the call has no timeout: DDP010 adds its configured one."""
    lines = [
        f"if {pin_test}:",
        f"    torch.cuda.set_device({args}.local_rank)",
        f'    {device} = torch.device("cuda", {args}.local_rank)',
    ]
    if cpu_device:
        lines += ["else:", f'    {device} = torch.device("cpu")']
    lines += [
        "torch.distributed.init_process_group(",
        f'    backend="nccl" if {backend_test} else "gloo",',
    ]
    if timeout_minutes is not None:
        lines.append(f"    timeout=datetime.timedelta(minutes={timeout_minutes}),")
    lines.append(")")
    if n_gpu:
        lines.append(f"{args}.n_gpu = 1")
    return "".join(line + "\n" for line in lines)


def device_assignments(
    tree: Tree,
) -> Iterator[tuple[cst.SimpleStatementLine, cst.Attribute, str]]:
    """Every ``<holder>.device = <name>`` line, in source order, with its target and the name:
    where the scripts choose their device, so where a setup goes (before it)."""
    for line in tree.nodes(cst.SimpleStatementLine):
        if len(line.body) != 1 or not isinstance(line.body[0], cst.Assign):
            continue
        assign = line.body[0]
        target = assign.targets[0].target if len(assign.targets) == 1 else None
        if (
            type(target) is cst.Attribute
            and target.attr.value == "device"
            and type(assign.value) is cst.Name
        ):
            yield line, target, assign.value.value
