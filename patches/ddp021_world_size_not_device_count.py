"""DDP021 world-size-not-device-count: the world size comes from the launcher, not the GPU count.

Scripts written for ``torch.distributed.launch`` on one machine take the number of GPUs as the
number of processes::

    args.nprocs = torch.cuda.device_count()
    dist.init_process_group(backend="nccl")
    args.batch_size = int(args.batch_size / args.nprocs)
    ...
    dist.all_reduce(loss)
    loss /= args.nprocs

``device_count()`` counts this machine's GPUs. It is the world size only when one machine runs
one process per GPU: on a CPU it is 0 (ZeroDivisionError in the first step), with several
machines or fewer processes than GPUs every all-reduced mean is off by their ratio and the
per-process batch is wrong. Every launcher (``torchrun``, ``accelerate launch``, the legacy
``torch.distributed.launch``) sets ``WORLD_SIZE``; the rule reads it, keeping the GPU count
for a run without one::

    args.nprocs = int(os.environ.get("WORLD_SIZE", torch.cuda.device_count()))

It changes the value only where the script sets up a process group and uses the value as a world
size everywhere: a divisor (``x / n``, ``x /= n``, also in a module function it is passed to) or
``num_replicas=``/``world_size=``. A count used otherwise (``range(n)``, a device index, a
DataParallel ``n_gpu``) or a script that spawns its own processes (``mp.spawn``, where the GPU
count is how many it starts) is left alone; where such a count also divides, the rule reports.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._names import walk
from patches._syntax import callee_name, dotted_name, module_functions, preferred_quote

_DIVIDE = (cst.Divide, cst.FloorDivide)
_DIVIDE_ASSIGN = (cst.DivideAssign, cst.FloorDivideAssign)
#: Keywords that take the number of processes.
_WORLD_KEYWORDS = frozenset({"num_replicas", "world_size"})
#: Calls that start the processes themselves: there the GPU count is how many.
_SPAWNS = frozenset({"spawn", "start_processes"})


def _device_count(node: cst.CSTNode) -> bool:
    return type(node) is cst.Call and dotted_name(node.func) in {
        "torch.cuda.device_count",
        "cuda.device_count",
    }


def _divides(tree_parent: cst.CSTNode | None, use: cst.CSTNode) -> bool:
    """Whether ``use`` is what its parent divides by."""
    kind = type(tree_parent)
    if kind is cst.BinaryOperation:
        return isinstance(tree_parent.operator, _DIVIDE) and tree_parent.right is use  # type: ignore[union-attr]
    if kind is cst.AugAssign:
        return isinstance(tree_parent.operator, _DIVIDE_ASSIGN) and tree_parent.value is use  # type: ignore[union-attr]
    return False


def _uses(root: cst.CSTNode, name: str, skip: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every expression under ``root`` spelt ``name`` (``args.nprocs``, ``nprocs``), but
    ``skip`` (the assignment's own target) and what an ``Attribute`` holds."""
    for node in walk(root, into_scopes=True):
        if node is skip or type(node) not in (cst.Name, cst.Attribute):
            continue
        if dotted_name(node) == name:
            yield node


class WorldSizeNotDeviceCount(Rule):
    code = "DDP021"
    name = "world-size-not-device-count"
    summary = "A device_count() used as the world size reads WORLD_SIZE first."
    rationale = __doc__
    settles = True
    triggers = ("device_count",)
    examples = (
        Example(
            before="""
                import torch
                import torch.distributed as dist

                def reduce_mean(tensor, nprocs):
                    dist.all_reduce(tensor)
                    return tensor / nprocs

                def main(args):
                    args.nprocs = torch.cuda.device_count()
                    dist.init_process_group(backend="nccl")
                    args.batch_size = int(args.batch_size / args.nprocs)
                    loss = reduce_mean(train(args), args.nprocs)
            """,
            after="""
                import os
                import torch
                import torch.distributed as dist

                def reduce_mean(tensor, nprocs):
                    dist.all_reduce(tensor)
                    return tensor / nprocs

                def main(args):
                    args.nprocs = int(os.environ.get("WORLD_SIZE", torch.cuda.device_count()))
                    dist.init_process_group(backend="nccl")
                    args.batch_size = int(args.batch_size / args.nprocs)
                    loss = reduce_mean(train(args), args.nprocs)
            """,
            messages=(
                "args.nprocs is used as the world size, but torch.cuda.device_count() counts "
                "this machine's GPUs (0 on a CPU: ZeroDivisionError; wrong with several "
                "machines or fewer processes than GPUs): read WORLD_SIZE, which every launcher "
                "sets",
            ),
        ),
        Example(
            before="""
                import torch
                import torch.distributed as dist

                def main(args):
                    nprocs = torch.cuda.device_count()
                    dist.init_process_group(backend="nccl")
                    for gpu in range(nprocs):
                        log(gpu)
                    loss = loss / nprocs
            """,
            reports=1,
            messages=(
                "nprocs divides as the world size, but it is torch.cuda.device_count(), this "
                "machine's GPUs (0 on a CPU), and is also used as a GPU count: give the world "
                "size its own name, read from WORLD_SIZE, by hand",
            ),
        ),
        Example(
            before="""
                import torch
                import torch.multiprocessing as mp

                def worker(gpu, nprocs):
                    dist.init_process_group(backend="nccl", rank=gpu, world_size=nprocs)
                    loss = loss / nprocs

                mp.spawn(worker, nprocs=torch.cuda.device_count(), args=(torch.cuda.device_count(),))
            """,  # noqa: E501
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        calls = {callee_name(c) for c in tree.nodes(cst.Call)}
        if "init_process_group" not in calls or calls & _SPAWNS:
            return
        functions = module_functions(tree.module)
        for assign in tree.nodes(cst.Assign):
            if len(assign.targets) != 1 or not _device_count(assign.value):
                continue
            target = assign.targets[0].target
            name = dotted_name(target)
            if name is None or name.rsplit(".", 1)[-1] == "n_gpu":
                continue  # DataParallel's GPU count (PRT005 guards its divisions)
            world, other = self._kinds(tree, functions, name, target)
            if not world:
                continue
            value = assign.value
            if other:
                ctx.report(
                    assign,
                    f"{name} divides as the world size, but it is {dotted_name(value.func)}(), "  # type: ignore[attr-defined]
                    "this machine's GPUs (0 on a CPU), and is also used as a GPU count: give the "
                    "world size its own name, read from WORLD_SIZE, by hand",
                )
                continue
            q = preferred_quote(tree.code)
            environ = cst.parse_expression(f"int(os.environ.get({q}WORLD_SIZE{q}, x))")
            assert type(environ) is cst.Call
            inner = environ.args[0].value
            assert type(inner) is cst.Call
            read = environ.with_changes(
                args=[
                    environ.args[0].with_changes(
                        value=inner.with_changes(
                            args=[inner.args[0], inner.args[1].with_changes(value=value)]
                        )
                    )
                ]
            )
            ctx.fix(
                assign,
                f"{name} is used as the world size, but {dotted_name(value.func)}() counts "  # type: ignore[attr-defined]
                "this machine's GPUs (0 on a CPU: ZeroDivisionError; wrong with several machines "
                "or fewer processes than GPUs): read WORLD_SIZE, which every launcher sets",
                {value: read},
                imports=("os",),
            )

    @staticmethod
    def _kinds(
        tree: Tree, functions: dict[str, cst.FunctionDef], name: str, target: cst.CSTNode
    ) -> tuple[bool, bool]:
        """(used as a world size somewhere, used as anything else somewhere)."""
        world = other = False
        for use in _uses(tree.module, name, target):
            parent = tree.parent(use)
            if type(parent) is cst.Attribute and parent.value is use:
                other = other or dotted_name(parent) is None  # ``n.bit_length()``
                continue
            if _divides(parent, use):
                world = True
            elif type(parent) is cst.Arg and parent.value is use:
                kind = _argument_kind(tree, functions, parent)
                world = world or kind
                other = other or not kind
            else:
                other = True
        return world, other


def _argument_kind(tree: Tree, functions: dict[str, cst.FunctionDef], arg: cst.Arg) -> bool:
    """Whether the argument ``arg`` is taken as a world size: ``num_replicas=``/``world_size=``,
    or a module function's parameter that it only divides by."""
    if arg.keyword is not None and arg.keyword.value in _WORLD_KEYWORDS:
        return True
    call = tree.parent(arg)
    if type(call) is not cst.Call or callee_name(call) not in functions:
        return False
    function = functions[callee_name(call)]  # type: ignore[index]
    params = list(function.params.params)
    if arg.keyword is not None:
        param = next((p for p in params if p.name.value == arg.keyword.value), None)
    else:
        index = next(i for i, a in enumerate(call.args) if a is arg)
        param = params[index] if index < len(params) and arg.star == "" else None
    if param is None:
        return False
    reads = [
        n
        for n in walk(function.body, into_scopes=False)
        if type(n) is cst.Name and n.value == param.name.value
    ]
    return bool(reads) and all(_divides(tree.parent(n), n) for n in reads)
