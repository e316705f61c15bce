"""Opt-in: ``ddpfix verify`` on CodeXGLUE Method-Generation (CodeGPT's run.py), and its data.

``DDPFIX_CORPUS`` names a CodeXGLUE checkout; skipped when unset. The script fine-tunes GPT-2 on
signature + docstring → body with ``--node_index/--gpu_per_node`` rank arithmetic and a rank-0
perplexity evaluation every ``--save_steps``; it imports fuzzywuzzy at module level.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.method_generation import method_generation

NAME = "codexglue-method-generation"
RELATIVE = "Code-Code/Method-Generation/code/run.py"


def test_rows_split_a_method_into_signature_and_body(tmp_path: Path) -> None:
    keys = method_generation(tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 24 and len(keys) == 12
    for row in rows:
        assert set(row) == {"signature", "docstring", "body"}
        assert row["signature"].endswith(")") and row["body"].startswith("{ <EOL>")
        assert row["body"].endswith("} <EOL>") and row["docstring"]
    tests = [json.loads(line) for line in (tmp_path / "test.jsonl").read_text().splitlines()]
    assert [row["body"] for row in tests] == keys
    assert json.loads((tmp_path / "literals.json").read_text())["num"]


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
def test_identified_by_sha256() -> None:
    match, _ = identify(find_script(RELATIVE), load_targets())
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
@pytest.mark.skipif(
    importlib.util.find_spec("fuzzywuzzy") is None, reason="run.py imports fuzzywuzzy"
)
@pytest.mark.slow
def test_patched_two_ranks_train_one_model_and_pass() -> None:
    pytest.importorskip("torch")
    code, report = run_verify(find_script(RELATIVE).as_posix())
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == NAME and report["family"] == "gpt2"
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert "after optimizer step 3" in rows["replicas in sync"]
    assert rows["checkpoints"].startswith("checkpoint-last (rank 0,")
    assert rows["evaluation ran"] == "on rank 0 (1x)"
    assert report["health"] == []
