"""Opt-in: ``ddpfix verify`` on GraphCodeBERT's refinement and translation run.py.

``DDPFIX_CORPUS`` names a CodeBERT checkout; skipped when unset. Both are the CodeXGLUE seq2seq
family with data flow from tree-sitter (PRT010 loads the grammar wheels), written for one
DataParallel process with no process group anywhere, and a ``--local_rank`` they declare and never
read. DDP016 converts them (the setup inside ``main()``, which trains, evaluates and tests
inline), DDP014 wraps the model, DDP011 and DDP004 run the dev evaluation and ``--do_test`` on
rank 0 with the unwrapped model: patched, under 2 ranks, every check passes (one DDP job,
replicas in sync, checkpoints and test results from rank 0, every example once, in order).
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
def test_patched_runs_as_one_ddp_job(target: str) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tree_sitter_java")
    code, report = run_verify(find_script(TARGETS[target]).as_posix())
    assert report["target"] == target and report["family"] == "roberta"
    assert code == 0, report["verdict"]
    assert report["verdict"].startswith("PASS")
    rows = {row["check"]: row for row in report["checks"]}
    assert rows["ranks joined"]["evidence"].startswith("2 processes, ranks 0, 1, world size 2")
    assert rows["replicas in sync"]["ok"]
    assert "test_1.gold: 8 of 8 lines, in order (rank 0)" in rows["results complete"]["evidence"]
