"""Evaluation wall time on 2 CPU ranks: DDP017's distributed evaluation against rank 0 alone.

    python bench/eval_speed.py [--pairs 2000] [--hidden 768] [--rounds 3]

The script is ``tests/runtime_scripts/eval_clone_pairs.py`` (BigCloneBench-style pairs, a small
MLP encoder), patched twice: with the default rules (evaluate() and test() run on global rank 0,
rank 1 waits) and with ``--select ALL`` (DDP017: each rank scores half, rank 0 writes). A
checkpoint is trained once in one process; then, in alternating rounds so that a load change on
the shared machine hits both alike, each version runs ``--do_eval --do_test`` on ``--pairs``
validation and ``--pairs`` test pairs under ``accelerate launch`` with 2 gloo ranks (one thread
each, as the launchers set). The time is rank 0's wall time of that phase (from the script's own
clock, process start-up excluded); the medians and their ratio are printed, and the predictions
files and metrics of the two versions are compared byte for byte.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ranked import launch, patched  # noqa: E402

SCRIPT = ROOT / "tests" / "runtime_scripts" / "eval_clone_pairs.py"
CHECKPOINT = Path("checkpoint-best-f1") / "model.bin"


def _train_checkpoint(source: str, workdir: Path, hidden: int) -> Path:
    workdir.mkdir(parents=True)
    script = workdir / "run.py"
    script.write_text(source)
    output = workdir / "output"
    output.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    command = [sys.executable, str(script), "--do_train", "--evaluate_during_training"]
    command += ["--hidden", str(hidden), "--epoch", "1", "--train_size", "32"]
    command += ["--eval_size", "16", "--output_dir", str(output)]
    subprocess.run(command, cwd=workdir, env=env, check=True, capture_output=True)
    return output / CHECKPOINT


def _phase(source: str, workdir: Path, checkpoint: Path, args: list[str]) -> tuple[float, Path]:
    """Rank 0's evaluation-phase seconds and the output directory of one 2-rank run."""
    (workdir / "output" / CHECKPOINT).parent.mkdir(parents=True)
    shutil.copy(checkpoint, workdir / "output" / CHECKPOINT)
    run = launch(source, ["--do_eval", "--do_test", *args], workdir, timeout=900)
    if not run.ok:
        raise SystemExit(f"run failed:\n{run.explain()}")
    states = [json.loads(p.read_text()) for p in run.output.glob("state-*.json")]
    return next(s["eval_seconds"] for s in states if s["rank"] == "0"), run.output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    original = SCRIPT.read_text()
    versions = {
        "rank 0 alone": patched(original),
        "distributed (DDP017)": patched(original, ["ALL"]),
    }
    args = ["--eval_size", str(options.pairs), "--test_size", str(options.pairs)]
    args += ["--hidden", str(options.hidden), "--eval_batch_size", str(options.batch)]
    times: dict[str, list[float]] = {name: [] for name in versions}
    outputs: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="ddpfix-eval-speed-") as tmp:
        base = Path(tmp)
        checkpoint = _train_checkpoint(versions["rank 0 alone"], base / "train", options.hidden)
        for round_ in range(options.rounds):
            for index, (name, source) in enumerate(versions.items()):
                seconds, output = _phase(source, base / f"r{round_}-{index}", checkpoint, args)
                times[name].append(seconds)
                outputs[name] = output
        alone, distributed = (outputs[name] for name in versions)
        same = {
            file: (alone / file).read_bytes() == (distributed / file).read_bytes()
            for file in ("predictions.txt", "eval_results.json")
        }
        lines = (distributed / "predictions.txt").read_text().count("\n")
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(
        f"{options.pairs} validation + {options.pairs} test pairs, hidden {options.hidden}, "
        f"batch {options.batch}, 2 gloo ranks, {options.rounds} alternating rounds"
    )
    for name, values in times.items():
        runs = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {name:22s} median {medians[name]:.2f} s  ({runs})")
    ratio = medians["rank 0 alone"] / medians["distributed (DDP017)"]
    print(f"  speed-up {ratio:.2f}x; predictions lines {lines}; identical: {same}")


if __name__ == "__main__":
    main()
