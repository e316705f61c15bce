"""DDP012 proven by running: a best checkpoint saved by rank 0 and reloaded by every rank.

Once DDP011 runs the evaluation block (and its best-checkpoint save) on global rank 0, the other
ranks reach the reload after the training loop while rank 0 is still evaluating:
``FileNotFoundError`` on rank 1. The patched script waits at a barrier before the read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "best_checkpoint_reload.py"
ARGS = ["--do_eval"]
BARRIER = (
    "    if torch.distributed.is_available() and torch.distributed.is_initialized():\n"
    "        torch.distributed.barrier()\n"
    "    model_to_save.load_state_dict(torch.load("
)


def test_patch_gates_the_save_and_waits_before_the_reload() -> None:
    output = patched(SCRIPT.read_text())
    assert 'if args.do_eval and int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:' in output
    assert BARRIER in output


def test_patched_ranks_reload_the_one_checkpoint(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes
    assert [len(pids) for pids in run.writers().values()] == [1], run.writers()


def test_without_ddp012_the_gate_is_withdrawn_not_left_unsafe() -> None:
    """The engine's post-condition: gating the save without the barrier is not an option."""
    codes = [rule.code for rule in all_rules() if rule.code != "DDP012"]
    source = patched(SCRIPT.read_text(), codes)
    assert BARRIER not in source
    assert "        if args.do_eval:\n" in source


def test_without_the_barrier_rank_1_reads_a_missing_file(tmp_path: Path) -> None:
    source = patched(SCRIPT.read_text()).replace(BARRIER, BARRIER.splitlines()[-1])
    assert BARRIER not in source
    run = launch(source, ARGS, tmp_path / "no-barrier")
    assert not run.ok
    failed = [r for r in run.records if r.exception is not None]
    assert failed and all(r.dist_rank != 0 for r in failed), run.explain()
    assert failed[0].exception is not None
    assert failed[0].exception.type == "FileNotFoundError", run.explain()
