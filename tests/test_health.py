"""Training-health findings: crafted per-parameter facts, and real runs of planted bugs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from patcher.verify.health import findings, row
from patcher.verify.records import RankRecord

CASES = Path(__file__).resolve().parent / "verify_cases"


def _entry(**values) -> dict:
    entry = {
        "name": "Model.w",
        "site": "train.py:10",
        "in_optimizer": True,
        "created_after_optimizer": False,
        "optimizer_site": "train.py:20",
        "none": 0,
        "zero": 0,
        "nonzero": 5,
        "trailing_zero": 0,
        "changed": True,
    }
    entry.update(values)
    return entry


def _kinds(*entries: dict) -> list[str]:
    record = RankRecord(pid=1, dist_rank=0, health=list(entries))
    return [f"{f.kind} {f.name}" for f in findings([record])]


def test_healthy_and_unused_parameters_are_not_findings() -> None:
    assert _kinds(_entry(), _entry(name="Model.pooler", none=5, nonzero=0)) == []


def test_orphan_says_it_was_created_after_the_optimizer() -> None:
    record = RankRecord(
        pid=1,
        dist_rank=0,
        health=[
            _entry(name="Trainer.lm_head.weight", in_optimizer=False, created_after_optimizer=True)
        ],
    )
    (finding,) = findings([record])
    assert finding.line() == (
        "ORPHAN Trainer.lm_head.weight (created at train.py:10): non-zero gradients in 5 of 5 "
        "steps but in no optimizer param group, created after the optimizer (train.py:20): it "
        "never trains"
    )


def test_no_grad_grad_died_unchanged() -> None:
    assert _kinds(_entry(name="A", nonzero=0, zero=5)) == ["NO-GRAD A"]
    assert _kinds(_entry(name="B", nonzero=2, zero=3, trailing_zero=3)) == ["GRAD-DIED B"]
    assert _kinds(_entry(name="B", nonzero=3, zero=2, trailing_zero=2)) == []  # K is 3
    assert _kinds(_entry(name="C", changed=False)) == ["UNCHANGED C"]


def test_sentinel_only_when_the_clamped_rows_reach_the_loss() -> None:
    hit = {"name": "G.relations.weight", "site": "g.py:35", "positions": 26, "reaches_loss": True}
    masked = {**hit, "reaches_loss": False}
    record = RankRecord(pid=1, dist_rank=0, health=[_entry()], sentinels=[hit, masked])
    (finding,) = findings([record])
    assert finding.line() == (
        "SENTINEL G.relations.weight (looked up at g.py:35): 26 indices that were negative "
        "(a -1 'none' sentinel?) were clamped to 0, and their embedding rows reach the loss "
        "(non-zero gradient there)"
    )


def test_row_when_nothing_trained_and_when_all_is_well() -> None:
    assert row([RankRecord(pid=1)]).evidence == "no optimizer step was taken: nothing to judge"
    healthy = RankRecord(pid=1, dist_rank=0, health=[_entry(), _entry(name="Model.b")])
    assert row([healthy]).ok and row([healthy]).evidence == "2 parameters trained as expected"


def _verify(*args: str) -> dict:
    pytest.importorskip("torch")
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "verify", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    return json.loads(run.stdout)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bug", "expected"),
    [
        ("none", []),
        ("orphan", ["ORPHAN Trainer.lm_head.bias", "ORPHAN Trainer.lm_head.weight"]),
        ("decay", ["NO-GRAD Trainer.encoder.decay_offset"]),
    ],
)
def test_planted_bugs_are_found_and_the_fixed_trainer_is_clean(bug: str, expected) -> None:
    report = _verify(
        str(CASES / "graph_mlm.py"), "--gpus", "1", "--max-steps", "5", "--", "--bug", bug
    )
    assert [f"{f['kind']} {f['name']}" for f in report["health"]] == expected
    assert report["processes"][0]["optimizer_steps"] == 5  # stopped cleanly after K steps
    assert report["processes"][0]["exit_code"] == 0
    if expected:
        assert report["verdict"].startswith(f"FAIL: training health: {expected[0]}")
        assert all(f["site"].startswith("graph_mlm.py:") for f in report["health"])
    else:
        assert report["passed"]


@pytest.mark.slow
def test_no_health_skips_the_row() -> None:
    report = _verify(
        str(CASES / "graph_mlm.py"), "--gpus", "1", "--no-health", "--", "--bug", "orphan"
    )
    assert report["passed"] and report["health"] == []
    assert "training health" not in [c["check"] for c in report["checks"]]


@pytest.mark.slow
@pytest.mark.parametrize(("bug", "expected"), [("sentinel", ["SENTINEL"]), ("none", [])])
def test_sentinel_check_is_opt_in_and_finds_the_unmasked_lookup(bug: str, expected) -> None:
    args = [str(CASES / "graph_mlm.py"), "--gpus", "1", "--max-steps", "5"]
    report = _verify(*args, "--health", "sentinel", "--", "--bug", bug)
    assert [f["kind"] for f in report["health"]] == expected
    if expected:
        assert report["health"][0]["name"] == "Trainer.encoder.relations.weight"
        default = _verify(*args, "--", "--bug", bug)  # without the opt-in: not looked for
        assert default["health"] == []
