"""DDP013's rank-0 reload report proven by running: the weights only rank 0 loads mid-training
make the DDP replicas diverge, silently.

``runtime_scripts/rank0_best_reload.py`` keeps the best phase-one weights in rank 0's evaluation
gate and reloads them at the start of phase two ``if best_state_dict is not None``, which only
rank 0 passes. ddpfix reports the load (no fix: a broadcast of the state dict is not a safe
one-line rewrite) and leaves it as it is. Under 2 gloo ranks its output runs to the end on
every rank, exit 0, and the ranks' parameters differ at the end; with the reload out of reach
(phase two after the last epoch) the same run ends with equal parameters.
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

SCRIPT = SCRIPTS / "rank0_best_reload.py"
LOAD = "model.load_state_dict(best_state_dict)"


def _load_line(source: str) -> int:
    (line,) = [i for i, text in enumerate(source.splitlines(), 1) if LOAD in text]
    return line


def test_reload_is_reported_and_left_alone() -> None:
    source = SCRIPT.read_text()
    output, findings = fix_text(source, all_rules())
    reports = [f for f in findings if f.code == "DDP013" and not f.fixed]
    assert [f.line for f in reports] == [_load_line(source)], [(f.code, f.line) for f in findings]
    assert "rank 0 only" in reports[0].message
    assert "replicas silently diverge" in reports[0].message
    assert output.count(LOAD) == 1  # reported, not rewritten


def test_patched_replicas_diverge_after_rank0_reload(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), [], tmp_path)
    assert run.ok, run.explain()  # nothing crashes or hangs: the divergence is silent
    assert "rank 0 reloads" in run.log and "rank 1 reloads" not in run.log, run.log
    hashes = run.param_hashes()
    assert sorted(hashes) == ["0", "1"], hashes
    assert hashes["0"] != hashes["1"], hashes


def test_replicas_agree_without_the_reload(tmp_path: Path) -> None:
    """The control: the same run with phase two after the last epoch (rank 0 evaluates and
    keeps its copy every epoch, but never loads it) ends with equal parameters."""
    run = launch(patched(SCRIPT.read_text()), ["--phase_two_epoch", "99"], tmp_path)
    assert run.ok, run.explain()
    assert "reloads" not in run.log, run.log
    hashes = run.param_hashes()
    assert sorted(hashes) == ["0", "1"], hashes
    assert hashes["0"] == hashes["1"], hashes
