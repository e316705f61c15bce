"""Opt-in: ``ddpfix verify`` on salesforce/CodeT5's ``run_defect.py`` and ``run_multi_gen.py``.

Set up as test_upstream_verify_codet5.py (``DDPFIX_CORPUS`` names a directory holding
``CodeT5/``; the scripts need tensorboard). What verify reaches on today's stack, patched:

* ``run_defect.py`` (Devign through ``DefectModel``): both ranks train one DDP model, rank 0
  writes ``checkpoint-last`` and ``checkpoint-best-acc`` and, in ``--do_test``, every test
  example's prediction once, in order;
* ``run_multi_gen.py`` (every CodeT5 task at once, a task drawn per step from the same seeded
  generator on every rank): sharded but never wrapped upstream, and DDP014's wrap is withdrawn:
  rank 0 alone marks tasks early-stopped (``is_early_stop[cur_task] = 1``) and every rank skips
  them, which under DDP would pair all-reduces of different tasks and hang (DDP014's broadcast
  of such state is not planned here: the task a rank's loop top skips is drawn from numpy's
  generator, which nothing proves the same on every rank). Both ranks join,
  exit 0 and train a copy each (replicas not in sync: the failed check, named); rank 0 alone
  evaluates the 12 sub-tasks and writes the per-task best checkpoints. ``--do_test`` is not run:
  upstream's test loop reloads ``checkpoint-last/<task>/`` which training never writes (see the
  target).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from corpus_runs import ROOTS, run_verify

pytest.importorskip("torch")
pytestmark = [
    pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a directory holding CodeT5/"),
    pytest.mark.skipif(
        importlib.util.find_spec("tensorboard") is None,
        reason="the CodeT5 scripts use SummaryWriter: install tensorboard",
    ),
    pytest.mark.slow,
]

TARGETS = {"codet5-run-defect": "run_defect.py", "codet5-run-multi-gen": "run_multi_gen.py"}


def _script(name: str) -> Path:
    for root in ROOTS:
        for directory in (root / "CodeT5", root):
            if (directory / name).is_file() and (directory / "configs.py").is_file():
                return directory / name
    pytest.skip(f"CodeT5/{name} is not under DDPFIX_CORPUS")


def _verify(script: Path, *args: str) -> tuple[int, dict]:
    above = str(script.parent.parent)  # `import CodeT5.evaluator...` resolves from here
    path = os.pathsep.join(filter(None, [above, os.environ.get("PYTHONPATH")]))
    return run_verify(str(script), *args, env={"PYTHONPATH": path})


def _rows(report: dict) -> dict[str, dict]:
    return {row["check"]: row for row in report["checks"]}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_identified_by_sha256(target: str) -> None:
    from patcher.verify.targets import identify, load_targets

    match, _ = identify(_script(TARGETS[target]), load_targets())
    assert match is not None and match.target.name == target and match.how == "sha256"


def test_patched_defect_two_ranks_train_one_model_and_pass() -> None:
    code, report = _verify(_script(TARGETS["codet5-run-defect"]))
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == "codet5-run-defect" and report["family"] == "t5"
    rows = _rows(report)
    assert "world size 2 (gloo)" in rows["ranks joined"]["evidence"]
    assert rows["replicas in sync"]["evidence"].startswith("ranks 0, 1 hold identical parameters")
    checkpoints = rows["checkpoints"]["evidence"]
    assert "loads with weights_only=True" in checkpoints and "rank 1" not in checkpoints
    assert "checkpoint-best-acc/pytorch_model.bin (rank 0" in checkpoints
    assert rows["results complete"]["evidence"] == (
        "predictions.txt: 8 of 8 lines, in order (rank 0)"
    )
    assert report["health"] == []


def test_patched_multi_gen_keeps_one_model_per_rank_and_says_why() -> None:
    """The wrap would hang once a task early-stops on rank 0: withdrawn, so every rank exits 0
    and only the replicas check fails."""
    code, report = _verify(_script(TARGETS["codet5-run-multi-gen"]))
    assert code == 1, report["verdict"] + "\n" + report["log_tail"]
    rows = _rows(report)
    failed = sorted(check for check, row in rows.items() if not row["ok"])
    assert failed == ["replicas in sync"], rows
    assert "world size 2 (gloo)" in rows["ranks joined"]["evidence"]
    assert rows["every rank exited 0"]["ok"] and rows["no hang"]["ok"]
    checkpoints = rows["checkpoints"]["evidence"]
    assert "checkpoint-best-bleu/concode/pytorch_model.bin (rank 0" in checkpoints
    assert "rank 1" not in checkpoints
    assert rows["evaluation ran"]["evidence"].startswith("on rank 0 (")
