"""DDP012 on directories, proven by running: ``save_pretrained(d)`` on rank 0, then
``from_pretrained(d)`` on every rank (the fine-tuning template's final save and evaluation).

Under the launcher the original's rank 1 enters the evaluation block while rank 0 is still
writing the directory: ``OSError`` (no weights file yet) on rank 1. The patched script waits at
a barrier before the loop over the checkpoints, which every rank reaches once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, with_launcher_rank

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "pretrained_directory_reload.py"
ARGS = ["--do_train", "--do_eval"]
BARRIER = (
    "        checkpoints = [save_directory]\n"
    "        if torch.distributed.is_available() and torch.distributed.is_initialized():\n"
    "            torch.distributed.barrier()\n"
    "        for checkpoint in checkpoints:\n"
)


def test_patch_waits_before_the_loop_over_the_checkpoints() -> None:
    assert BARRIER in patched(SCRIPT.read_text())


def test_original_rank_1_reads_the_directory_before_it_is_written(tmp_path: Path) -> None:
    run = launch(with_launcher_rank(SCRIPT.read_text()), ARGS, tmp_path / "original")
    assert not run.ok
    failed = [r for r in run.records if r.exception is not None]
    assert failed and all(r.dist_rank != 0 for r in failed), run.explain()
    assert failed[0].exception is not None
    assert failed[0].exception.type == "OSError", run.explain()


def test_patched_ranks_load_the_complete_model(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes
    weights = [path for path in run.writers() if path.endswith("pytorch_model.bin")]
    assert len(weights) == 1 and len(run.writers()[weights[0]]) == 1, run.writers()
