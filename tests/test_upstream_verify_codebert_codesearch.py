"""Opt-in: ``ddpfix verify`` on CodeBERT's own code search fine-tuning (run_classifier.py), and
its data. ``DDPFIX_CORPUS`` names a CodeBERT checkout; skipped when unset. The script imports
``tensorboardX`` at module level, so the deep run needs it importable.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.codebert_codesearch import SEP, codesearch

NAME = "codebert-codesearch"
RELATIVE = "CodeBERT/codesearch/run_classifier.py"


def test_lines_have_the_five_fields_the_reader_keeps(tmp_path: Path) -> None:
    keys = codesearch(tmp_path)
    lines = (tmp_path / "train.txt").read_text().splitlines()
    assert len(lines) == 32
    fields = [line.split(SEP) for line in lines]
    assert all(len(f) == 5 for f in fields) and {f[0] for f in fields} == {"0", "1"}
    test = [line.split(SEP) for line in (tmp_path / "test.txt").read_text().splitlines()]
    assert keys == [f[1] for f in test] and len(set(keys)) == 8


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")
def test_identified_by_sha256() -> None:
    match, _ = identify(find_script(RELATIVE), load_targets())
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")
@pytest.mark.skipif(
    importlib.util.find_spec("tensorboardX") is None, reason="the script imports tensorboardX"
)
@pytest.mark.slow
def test_patched_two_ranks_train_one_model_and_pass() -> None:
    pytest.importorskip("torch")
    code, report = run_verify(find_script(RELATIVE).as_posix())
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == NAME and report["family"] == "roberta"
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["checkpoints"].startswith("checkpoint-last (rank 0,")
    assert rows["evaluation ran"].startswith("on rank 0 (")
    assert report["health"] == []
