"""DDP016 proven by running: a DataParallel-only script (no process group) becomes DDP.

Under 2 gloo ranks the original runs two independent processes: each trains a full copy on all
the data and both write the checkpoint and the predictions. Patched, the two ranks join a
process group, each takes half of the global batch (--train_batch_size 8 → 4 a process), they
end with identical parameters, and each file has one writer. Started without a launcher, the
patched script still takes the full batch in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, run_alone

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "dataparallel_only.py"
ARGS = ["--do_train", "--do_test", "--train_batch_size", "8"]


def _batches(output: Path) -> list[list[int]]:
    return [json.loads(p.read_text())["batch_sizes"] for p in sorted(output.glob("state-*.json"))]


def test_original_processes_train_alone_and_write_twice(tmp_path: Path) -> None:
    run = launch(SCRIPT.read_text(), ARGS, tmp_path / "original")
    assert all(r.dist_rank is None for r in run.records)  # nobody joined anything
    assert _batches(run.output) == [[8], [8]]  # each took the whole global batch
    writers = run.writers()
    raced = any(r.exception and r.exception.type == "FileExistsError" for r in run.records)
    assert raced or len(writers.get("predictions.txt", ())) == 2, run.explain()


def test_patched_ranks_form_one_ddp_job_with_the_same_global_batch(tmp_path: Path) -> None:
    source = patched(SCRIPT.read_text())
    assert "torch.distributed.init_process_group(" in source
    assert "if args.local_rank == -1 else DistributedSampler(train_dataset)" in source
    assert "torch.nn.parallel.DistributedDataParallel(" in source
    run = launch(source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    assert _batches(run.output) == [[4], [4]]  # 8 global = 4 per process x 2
    assert {name: len(pids) for name, pids in run.writers().items()} == {
        "model.bin": 1,
        "predictions.txt": 1,
    }
    lines = (run.output / "predictions.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(i) for i in range(12)]


def test_patched_script_without_a_launcher_keeps_the_full_batch(tmp_path: Path) -> None:
    output = run_alone(patched(SCRIPT.read_text()), ARGS, tmp_path)
    assert _batches(output) == [[8]]


@pytest.mark.parametrize("source", ["original", "patched"])
def test_one_process_under_a_launcher_runs_as_before(tmp_path: Path, source: str) -> None:
    """``torchrun --nproc_per_node 1`` / a one-GPU ``accelerate launch``: LOCAL_RANK=0 and
    WORLD_SIZE=1. No process group is set up then, so the script must not take its distributed
    branches (a DistributedSampler would raise "Default process group has not been
    initialized")."""
    text = SCRIPT.read_text()
    script = tmp_path / "run.py"
    script.write_text(text if source == "original" else patched(text))
    output = tmp_path / "out"
    output.mkdir()
    env = {**os.environ, "LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1"}
    env.update(LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    done = subprocess.run(
        [sys.executable, str(script), *ARGS, "--output_dir", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert _batches(output) == [[8]]


def test_a_batch_that_does_not_divide_is_refused_in_one_line(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), ["--do_train", "--train_batch_size", "7"], tmp_path)
    assert not run.ok
    assert "--train_batch_size 7 is the global batch: it must divide by the 2 processes" in run.log
