"""The README's sample outputs are what a user really sees (a real run, timings masked)."""

from __future__ import annotations

import os

from clihelp import ROOT, ddpfix_process
from readme import block_after, mask, mismatch

WIDE = {**os.environ, "COLUMNS": "100"}  # the samples are from a 100-column terminal


def test_verify_sample_of_the_bundled_example() -> None:
    sample = block_after("What a user sees for the")
    run = ddpfix_process("verify", ROOT / "examples" / "defect_detection" / "run.py", env=WIDE)
    assert run.returncode == 0, run.stdout + run.stderr
    assert mismatch(sample, run.stdout.splitlines()) is None, (
        mismatch(sample, run.stdout.splitlines()),
        run.stdout,
    )


def test_worked_example_sample() -> None:
    sample = block_after("### Worked example")
    command = sample[0].removeprefix("$ ddpfix ").split()
    run = ddpfix_process(*command, cwd=ROOT, env=WIDE)
    assert run.returncode == 1, run.stdout + run.stderr
    assert mismatch(sample, run.stdout.splitlines()) is None, (
        mismatch(sample, run.stdout.splitlines()),
        run.stdout,
    )


def test_plan_sample() -> None:
    sample = block_after("multi-node flags, two launchers")
    command = sample[0].removeprefix("$ ddpfix ").split()
    run = ddpfix_process(*command, env=WIDE)
    assert run.returncode == 0, run.stderr
    assert mismatch(sample, run.stdout.splitlines()) is None, run.stdout


def test_launch_sentence(tmp_path) -> None:
    # "prints `global batch 256 = 16 per GPU x 8 rank(s) (2 nodes x 4) x 2 accumulation
    # step(s)` on each node"
    text = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    said = text.split("ddpfix launch run.py --global-batch 256")[1].split("prints `")[1]
    said = said.split("`")[0]
    script = tmp_path / "run.py"
    script.write_text(
        "import argparse\np = argparse.ArgumentParser()\n"
        "p.add_argument('--train_batch_size', type=int)\n"
        "p.add_argument('--gradient_accumulation_steps', type=int)\n"
        "p.add_argument('--output_dir')\np.parse_args()\n"
    )
    run = ddpfix_process(
        "launch", script, "--global-batch", "256", "--per-gpu-batch", "16", "--gpus", "4",
        "--num-machines", "2", "--machine-rank", "0", "--main-process-ip", "10.0.0.1",
        "--main-process-port", "29500", "--dry-run", "--", "--output_dir=./saved_models",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[0] == said


def test_mask_keeps_what_matters() -> None:
    # the masks hide timings and the port, never a check's verdict or its evidence
    assert mask("PASS: all 8 checks passed in 8.5 s") == "PASS: all 8 checks passed in <t> s"
    assert mismatch(["PASS: all 8 checks passed"], ["PASS: all 7 checks passed"]) is not None
    assert mismatch(["a", "...", "c ..."], ["a", "b", "c d"]) is None
    assert mismatch(["a", "c"], ["a", "b", "c"]) is not None
