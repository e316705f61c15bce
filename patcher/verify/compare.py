"""``ddpfix verify --compare-single``: the N-rank results are those of one process, byte for byte.

After the launched run, the script's test phase runs again in one plain ``python`` process (no
launcher, no process group) on the checkpoint the ranks saved: in a copy of the run's output
directory, with the training and validation flags dropped (``--do_train``, ``--do_eval``,
``--evaluate_during_training``) and ``--do_test`` kept. Every results file of the target must come
out byte-identical to the N-rank run's. It proves that a distributed evaluation (DDP017) or a
rank-0 one scores every example once, in order, with the same model a single process would.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from patcher.verify.checks import Row

NAME = "results equal one process's"
#: Flags of the phases before the test: the single process only tests the saved checkpoint.
_DROPPED = frozenset({"--do_train", "--do_eval", "--evaluate_during_training"})
_LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def single_args(args: Sequence[str], output_dir: Path, single_dir: Path) -> list[str] | None:
    """``args`` for the test phase alone, writing to ``single_dir``; None without ``--do_test``."""
    if "--do_test" not in args:
        return None
    kept = [a for a in args if a not in _DROPPED]
    return [a.replace(str(output_dir), str(single_dir)) for a in kept]


def _first_difference(ours: bytes, theirs: bytes) -> str:
    a, b = ours.decode(errors="replace").splitlines(), theirs.decode(errors="replace").splitlines()
    for number, (x, y) in enumerate(zip(a, b), start=1):
        if x != y:
            return f"line {number}: {x[:60]!r} (N ranks) vs {y[:60]!r} (one process)"
    return f"{len(a)} lines (N ranks) vs {len(b)} (one process)"


def compare(
    script: Path,
    args: Sequence[str],
    output_dir: Path,
    results: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
) -> Row:
    """Run the test phase in one process next to ``output_dir`` and compare ``results``."""
    single_dir = output_dir.with_name(output_dir.name + "-single")
    command = single_args(args, output_dir, single_dir)
    if command is None:
        return Row(NAME, True, "skipped: the run has no --do_test phase")
    if not results:
        return Row(NAME, True, "skipped: the target has no results file to compare")
    missing = [r for r in results if not (output_dir / r).is_file()]
    if missing:
        return Row(NAME, False, f"the N-rank run wrote no {', '.join(missing)} to compare")
    shutil.rmtree(single_dir, ignore_errors=True)
    shutil.copytree(output_dir, single_dir)
    for result in results:
        (single_dir / result).unlink()
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_ENV}
    env.update({"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    try:
        done = subprocess.run(
            [sys.executable, str(script), *command],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return Row(NAME, False, f"the single-process test phase took over {timeout:.0f} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Row(NAME, False, f"the single-process test phase failed: {last[:200]}")
    evidence = []
    for result in results:
        ours, theirs = (output_dir / result).read_bytes(), single_dir / result
        if not theirs.is_file():
            return Row(NAME, False, f"the single process wrote no {result}")
        if ours != theirs.read_bytes():
            why = _first_difference(ours, theirs.read_bytes())
            return Row(NAME, False, f"{result} differs from one process's: {why}")
        lines = ours.count(b"\n")
        evidence.append(f"{result} ({lines} lines)")
    return Row(
        NAME, True, f"byte-identical to one process on the saved checkpoint: {', '.join(evidence)}"
    )
