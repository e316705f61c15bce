"""Run patched code, not just read it: the trainer below is executable without torch.

It reproduces the template's control flow (gated evaluation, a best-model read after the gate)
with stand-ins for the model, so the claims of DDP003/DDP006 are checked by running them.
"""

from __future__ import annotations

import types

import pytest

from patcher.engine import fix_text
from patcher.registry import all_rules, select_rules

TRAINER = """
import argparse
import os

SAVED = []


def evaluate(args, model):
    return {"eval_f1": 0.5 + len(SAVED)}


def train(args, model):
    best_f1 = 0
    for step in range(1, 5):
        if args.local_rank in [-1, 0] and step % 2 == 0:
            if args.local_rank == -1 and args.evaluate_during_training:
                results = evaluate(args, model)
                # Save model checkpoint

            if results["eval_f1"] > best_f1:
                best_f1 = results["eval_f1"]
                SAVED.append((args.local_rank, step))
    return best_f1


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--evaluate_during_training", action="store_true")
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args(argv)
    return train(args, model=None)
"""


def _load(source: str) -> types.ModuleType:
    module = types.ModuleType("trainer")
    exec(compile(source, "trainer.py", "exec"), module.__dict__)
    return module


@pytest.fixture
def patched() -> str:
    output, _ = fix_text(TRAINER, all_rules())
    return output


def test_original_crashes_without_evaluate_during_training() -> None:
    with pytest.raises(UnboundLocalError):
        _load(TRAINER).main([])


def test_reading_local_rank_alone_makes_rank_0_crash(monkeypatch) -> None:
    # the sed-style fix: DDP001 alone, with no post-condition to stop it
    env_only, _ = fix_text(TRAINER, select_rules(all_rules(), ["DDP001"]), checks=[])
    monkeypatch.setenv("LOCAL_RANK", "0")
    trainer = _load(env_only)
    with pytest.raises(UnboundLocalError):  # rank 0 skips evaluation, then reads results
        trainer.main(["--evaluate_during_training"])


def test_reading_local_rank_alone_is_withdrawn_and_reported() -> None:
    """With the post-conditions, waking the rank up without the fixes it needs is refused: the
    script stays as it was (N lone copies under a launcher) and says why."""
    output, findings = fix_text(TRAINER, select_rules(all_rules(), ["DDP001"]))
    assert output == TRAINER
    (finding,) = findings
    assert finding.code == "DDP001" and not finding.fixed
    assert "not rewritten: 'results' is read on" in finding.message


@pytest.mark.parametrize("local_rank", ["0", "1"])
def test_patched_runs_with_and_without_evaluation(patched: str, monkeypatch, local_rank) -> None:
    monkeypatch.setenv("LOCAL_RANK", local_rank)
    trainer = _load(patched)
    assert trainer.main([]) == 0
    assert trainer.SAVED == []
    result = trainer.main(["--evaluate_during_training"])
    if local_rank == "0":
        assert trainer.SAVED == [(0, 2), (0, 4)] and result == 1.5
    else:
        assert trainer.SAVED == [] and result == 0  # only rank 0 evaluates and saves


def test_patched_still_honours_an_explicit_flag(patched: str, monkeypatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")
    trainer = _load(patched)
    trainer.main(["--local-rank", "0", "--evaluate_during_training"])
    assert trainer.SAVED and trainer.SAVED[0][0] == 0
