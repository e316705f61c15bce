"""DDP006 proven by running: results bound under two rank-0 gates, read after the second.

The script evaluates on rank 0 before training and again every epoch, then compares the latest
results with the best on every rank: rank 1 never bound ``results`` and dies with
``UnboundLocalError``. The patched script reads them inside the in-loop gate, so only rank 0
compares and saves.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "results_bound_twice.py"
ARGS = ["--eval_before_training", "--evaluate_during_training"]
MOVED = (
    "            results = evaluate(args, model_to_save, dev_data)\n"
    '            if results["acc"] >= best_acc:\n'
)


def test_the_read_moves_into_the_in_loop_gate() -> None:
    assert MOVED not in SCRIPT.read_text()
    assert MOVED in patched(SCRIPT.read_text())


def test_patched_ranks_agree_and_rank_0_saves_alone(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes
    assert set(run.writers()) == {"model_best.bin"}, run.writers()
    assert [len(pids) for pids in run.writers().values()] == [1]


def test_without_ddp006_rank_1_reads_unbound_results(tmp_path: Path) -> None:
    codes = [rule.code for rule in all_rules() if rule.code != "DDP006"]
    source = patched(SCRIPT.read_text(), codes)
    assert MOVED not in source
    run = launch(source, ARGS, tmp_path / "without")
    assert not run.ok
    failed = [r.exception for r in run.records if r.exception is not None and r.dist_rank == 1]
    assert [e.type for e in failed] == ["UnboundLocalError"], run.explain()
