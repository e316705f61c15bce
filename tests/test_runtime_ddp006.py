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

from patcher.engine import fix_text
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


def test_without_ddp006_the_post_conditions_keep_the_rank_dormant() -> None:
    """Left to the other rules, reading LOCAL_RANK would wake the unbound read: it is withdrawn
    and says why, and the script keeps running as lone copies."""
    codes = [rule.code for rule in all_rules() if rule.code != "DDP006"]
    rules = [rule for rule in all_rules() if rule.code in codes]
    _, findings = fix_text(SCRIPT.read_text(), rules)
    (ddp001,) = [f for f in findings if f.code == "DDP001"]
    assert not ddp001.fixed and "is read on the other ranks, which never binds it" in ddp001.message


def test_without_ddp006_rank_1_reads_unbound_results(tmp_path: Path) -> None:
    codes = [rule.code for rule in all_rules() if rule.code != "DDP006"]
    source = patched(SCRIPT.read_text(), codes, postconditions=False)
    assert MOVED not in source
    run = launch(source, ARGS, tmp_path / "without")
    assert not run.ok
    failed = [r.exception for r in run.records if r.exception is not None and r.dist_rank == 1]
    assert [e.type for e in failed] == ["UnboundLocalError"], run.explain()
