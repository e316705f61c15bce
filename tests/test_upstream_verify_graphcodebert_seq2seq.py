"""Opt-in: ``ddpfix verify`` on GraphCodeBERT's refinement and translation run.py.

``DDPFIX_CORPUS`` names a CodeBERT checkout; skipped when unset. Both are the CodeXGLUE seq2seq
family with data flow from tree-sitter (PRT010 loads the grammar wheels), written for one
DataParallel process with no process group anywhere. What verify finds today, patched, under 2
ranks: the synthetic data goes through the DFG extraction and the whole run (training, rank-0
evaluation, checkpoints, ``--do_test`` on rank 0 with every example once, in order) completes,
but no rule converts these scripts to DDP, so the two processes train alone and "ranks joined"
fails naming that.
"""

from __future__ import annotations

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets

TARGETS = {
    "codebert-graphcodebert-refinement": "GraphCodeBERT/refinement/run.py",
    "codebert-graphcodebert-translation": "GraphCodeBERT/translation/run.py",
}
pytestmark = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_identified_by_sha256(target: str) -> None:
    match, _ = identify(find_script(TARGETS[target]), load_targets())
    assert match is not None and (match.target.name, match.how) == (target, "sha256")


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_patched_runs_through_but_every_process_trains_alone(target: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tree_sitter_java")
    code, report = run_verify(find_script(TARGETS[target]).as_posix())
    assert report["target"] == target and report["family"] == "roberta"
    assert code == 1
    assert report["verdict"].startswith(
        "FAIL: ranks joined: 2 processes, torch.distributed never initialised"
    )
    rows = {row["check"]: row for row in report["checks"]}
    assert rows["every rank exited 0"]["ok"] and rows["results complete"]["ok"]
    assert "test_1.gold: 8 of 8 lines, in order" in rows["results complete"]["evidence"]
