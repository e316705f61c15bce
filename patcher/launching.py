"""``ddpfix launch``: start a training script under accelerate with an exact global batch.

The legacy scripts' ``--train_batch_size`` is a total divided by ``n_gpu`` under DataParallel but
a per-process batch under DDP (``n_gpu`` is 1 there): launched on 2 GPUs as-is, the global batch
silently doubles. ddpfix always passes the per-GPU batch and the accumulation steps explicitly,
computed so that per-GPU batch x ranks x accumulation is exactly the global batch asked for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from patcher.batching import Split, exact_split, nearest_exact
from patcher.pids import descendants, free_port, kill

BATCH_FLAG = "--train_batch_size"
ACCUMULATION_FLAG = "--gradient_accumulation_steps"


class LaunchError(ValueError):
    """The launch cannot be planned as asked (exit code 2)."""


@dataclass
class LaunchPlan:
    command: list[str]
    env: dict[str, str]
    split: Split
    device: str
    notice: str | None
    log: Path
    warnings: list[str] = field(default_factory=list)

    def shell(self) -> str:
        prefix = " ".join(
            f"{k}={self.env[k]}"
            for k in ("ACCELERATE_USE_CPU", "CUDA_VISIBLE_DEVICES")
            if k in self.env and os.environ.get(k) != self.env[k]
        )
        args = " ".join(_quote(part) for part in self.command)
        return f"{prefix} {args}".strip()


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def _has_flag(args: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in args)


def _output_dir(args: Sequence[str]) -> Path | None:
    for index, arg in enumerate(args):
        if arg.startswith("--output_dir="):
            return Path(arg.split("=", 1)[1])
        if arg == "--output_dir" and index + 1 < len(args):
            return Path(args[index + 1])
    return None


def declared_flags(script: Path) -> set[str] | None:
    """Option strings of the script's ``add_argument`` calls; None when it cannot be read."""
    import libcst as cst

    from patcher.tree import walk

    try:
        module = cst.parse_module(script.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, cst.ParserSyntaxError):
        return None
    flags = set()
    for node in walk(module):
        if (
            type(node) is cst.Call
            and type(node.func) is cst.Attribute
            and node.func.attr.value == "add_argument"
        ):
            for arg in node.args:
                if arg.keyword is None and type(arg.value) is cst.SimpleString:
                    value = arg.value.evaluated_value
                    if isinstance(value, str) and value.startswith("-"):
                        flags.add(value)
    return flags


@dataclass(frozen=True)
class Machines:
    """Where this launcher sits among the nodes (accelerate's multi-node flags)."""

    nodes: int = 1
    node_rank: int = 0
    main_ip: str | None = None
    main_port: int | None = None


def read_accelerate_config(path: Path) -> tuple[Machines, int | None]:
    """The machines and the *total* process count of an accelerate config file (YAML)."""
    try:
        import yaml  # accelerate's own dependency: present wherever launch can run
    except ImportError:  # pragma: no cover - accelerate missing altogether
        raise LaunchError(
            "reading an accelerate config needs pyyaml (pip install accelerate)"
        ) from None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LaunchError(f"{path}: cannot read the accelerate config ({exc})") from None
    if not isinstance(data, dict):
        raise LaunchError(f"{path}: not an accelerate config (expected a mapping)")

    def number(key: str, default: int | None) -> int | None:
        value = data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, int) or value < 0:
            raise LaunchError(f"{path}: {key} must be a non-negative integer, not {value!r}")
        return value

    machines = Machines(
        nodes=number("num_machines", 1) or 1,
        node_rank=number("machine_rank", 0) or 0,
        main_ip=data.get("main_process_ip") or None,
        main_port=number("main_process_port", None),
    )
    return machines, number("num_processes", None)


def accelerate_command(*, processes: int, port: int, machines: Machines = Machines()) -> list[str]:
    """``accelerate launch`` for ``processes`` ranks in all, up to the script: the one builder
    ``ddpfix launch`` and verify share. No mixed precision or dynamo (the scripts decide), and
    ``--multi_gpu`` for more than one rank (on the CPU too: ``--cpu --num_processes N`` starts a
    single process); with several machines, this one's rank and the main one's address."""
    command = [sys.executable, "-m", "accelerate.commands.launch"]
    command += ["--num_machines", str(machines.nodes)]
    if machines.nodes > 1:
        command += ["--machine_rank", str(machines.node_rank)]
        command += ["--main_process_ip", str(machines.main_ip)]
    command += ["--mixed_precision", "no", "--dynamo_backend", "no"]
    command += ["--main_process_port", str(port), "--num_processes", str(processes)]
    if processes > 1:
        command.append("--multi_gpu")
    return command


def plan_launch(
    script: Path,
    script_args: Sequence[str],
    *,
    global_batch: int,
    per_gpu: int | None,
    gpus: int | None,
    cuda_devices: int,
    allow_inexact: bool = False,
    batch_flag: str = BATCH_FLAG,
    accumulation_flag: str = ACCUMULATION_FLAG,
    machines: Machines = Machines(),
) -> LaunchPlan:
    """``gpus`` is per node; the split is over every rank of every node (``machines``)."""
    per_node = gpus if gpus is not None else max(1, cuda_devices)
    if per_node < 1:
        raise LaunchError("--gpus must be at least 1")
    if machines.nodes < 1 or not 0 <= machines.node_rank < machines.nodes:
        raise LaunchError(
            f"--node-rank must be in 0..{machines.nodes - 1} for {machines.nodes} node(s)"
        )
    if machines.nodes > 1 and not machines.main_ip:
        raise LaunchError("more than one node needs --main-process-ip (the node-rank-0 host)")
    ranks = per_node * machines.nodes
    for flag in (batch_flag, accumulation_flag):
        if _has_flag(script_args, flag):
            raise LaunchError(
                f"{flag} is set by ddpfix launch; remove it from the script arguments"
            )
    warnings: list[str] = []
    split = exact_split(global_batch, ranks, per_gpu)
    if split is None:
        options = nearest_exact(global_batch, ranks, per_gpu)
        listed = "; ".join(
            f"--global-batch {o.global_batch} --per-gpu-batch {o.per_gpu} "
            f"({o.per_gpu} x {o.ranks} x {o.accumulation})"
            for o in options
        )
        if not allow_inexact:
            raise LaunchError(
                f"no exact split of a global batch of {global_batch} over {ranks} rank(s)"
                + (f" with {per_gpu} per GPU" if per_gpu else "")
                + f". Nearest exact options: {listed}. Or pass --allow-inexact."
            )
        size = per_gpu or max(1, global_batch // ranks)
        accumulation = max(1, round(global_batch / (size * ranks)))
        split = Split(ranks, size, accumulation)
        warnings.append(
            f"INEXACT: the global batch will be {split.global_batch}, not {global_batch} "
            f"({size} x {ranks} x {accumulation})"
        )
    use_cuda = cuda_devices >= per_node
    env = dict(os.environ)
    notice = None
    port = machines.main_port if machines.main_port is not None else free_port()
    command = accelerate_command(processes=ranks, port=port, machines=machines)
    if not use_cuda:
        env["ACCELERATE_USE_CPU"] = "1"
        if ranks > 1:
            env["CUDA_VISIBLE_DEVICES"] = ""
        notice = (
            f"{cuda_devices} CUDA device(s) for {per_node} rank(s) on this node: "
            f"running {per_node} rank(s) on the CPU (gloo)"
        )
    elif ranks == 1 and cuda_devices > 1:
        # one process would wrap the model in DataParallel over every GPU and divide the batch
        env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0] or "0"
    declared = declared_flags(script)
    if declared is not None and batch_flag not in declared:
        raise LaunchError(
            f"{script.name} declares no {batch_flag}; name its flag with --batch-flag"
        )
    command += [str(script), *script_args, batch_flag, str(split.per_gpu)]
    if declared is None or accumulation_flag in declared:
        command += [accumulation_flag, str(split.accumulation)]
    elif split.accumulation != 1:
        raise LaunchError(
            f"{script.name} declares no {accumulation_flag}, so the split must not accumulate: "
            f"use --per-gpu-batch {split.per_gpu * split.accumulation} or name its flag with "
            "--accumulation-flag"
        )
    output = _output_dir(script_args) or Path.cwd()
    return LaunchPlan(
        command,
        env,
        split,
        "cuda" if use_cuda else "cpu",
        notice,
        output / "ddpfix-launch.log",
        warnings,
    )


_ROOT_CAUSE = re.compile(r"Root Cause.*?exitcode\s*:\s*(-?\d+)", re.DOTALL)


def script_exit_code(launcher_code: int, output: str) -> int:
    """torchrun exits 1 whatever its worker returned; its failure report names the real code."""
    found = _ROOT_CAUSE.search(output)
    if launcher_code != 0 and found:
        code = int(found.group(1))
        return code if code > 0 else 128 - code  # killed by signal N: 128 + N, as a shell says
    return launcher_code


def run_launch(plan: LaunchPlan, echo: Callable[[str], object]) -> int:
    """Run, teeing the output to the console (``echo``) and the log; returns the script's
    exit code (the first failing rank's, when one fails)."""
    plan.log.parent.mkdir(parents=True, exist_ok=True)
    with open(plan.log, "w", encoding="utf-8") as log:
        process = subprocess.Popen(
            plan.command,
            env=plan.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            text=True,
            errors="replace",
        )
        tail: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                log.write(line)
                echo(line.rstrip("\n"))
                tail = [*tail[-199:], line]
            return script_exit_code(process.wait(), "".join(tail))
        except KeyboardInterrupt:
            return 130
        finally:
            if process.poll() is None:
                _kill(process)


def _kill(process: subprocess.Popen) -> None:
    kill([process.pid, *descendants(process.pid)])
    process.wait()
