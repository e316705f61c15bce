"""Opt-in: ``ddpfix verify`` on CodeBERT's LongCoder code completion (LongCoder/run.py).

``DDPFIX_CORPUS`` names a CodeBERT checkout; skipped when unset. The script fine-tunes its own
Longformer-config decoder (``longcoder.py``) on LCC-style files it loads with ``datasets``'
``load_dataset``; it is DataParallel-only upstream (DDP016 converts it) and builds tree-sitter
parsers for nine languages at import. It needs ``nltk``, ``datasets`` and ``fuzzywuzzy``
installed; without ``nltk`` verify names that import first. Its model code was written for
transformers 4: PRT009 defines the removed ``find_pruneable_heads_and_indices``, PRT015 rewrites
``get_extended_attention_mask`` and the outputs' ``past_key_values``, and PRT010 loads all nine
grammars (``c``/``cpp`` too) from wheels. The patched script then passes: DDP016 puts the
per-epoch evaluation (its ``evaluate`` helper writes dev.output/dev.gold) on rank 0.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify import families
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.longcoder import longcoder

NAME = "codebert-longcoder"
RELATIVE = "LongCoder/run.py"
needs_corpus = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")


def test_splits_are_python_files_and_the_line_after_them(tmp_path: Path) -> None:
    keys = longcoder(tmp_path)
    sizes = {"train": 16, "validation": 8, "test": 8}
    for split, size in sizes.items():
        rows = [json.loads(line) for line in (tmp_path / f"{split}.jsonl").read_text().splitlines()]
        assert len(rows) == size
        for row in rows:
            assert set(row) == {"context", "gt"} and "\n" not in row["gt"]
            assert row["context"].startswith("import math\n") and row["context"].endswith(":\n")
            assert len(row["context"]) > 800  # past position 255 in tokens: a bridge token
        if split == "test":
            assert keys == [row["gt"] for row in rows]
    assert len(set(keys)) == len(keys)
    # dev.gold is held to the test keys: the validation split is the test split
    assert (tmp_path / "validation.jsonl").read_text() == (tmp_path / "test.jsonl").read_text()


def test_the_target_runs_on_the_longformer_family() -> None:
    target = load_targets()[NAME]
    assert target.model_type == "longformer"
    assert families.family(["--model_name_or_path", "microsoft/longcoder-base"]) == "longformer"


@needs_corpus
def test_identified_by_sha256() -> None:
    match, _ = identify(find_script(RELATIVE), load_targets())
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")


@needs_corpus
@pytest.mark.slow
def test_verify_names_nltk_when_it_is_missing() -> None:
    pytest.importorskip("torch")
    if importlib.util.find_spec("nltk") is not None:
        pytest.skip("nltk is installed")
    code, report = run_verify(find_script(RELATIVE).as_posix())
    assert code == 1 and (report["target"], report["family"]) == (NAME, "longformer")
    assert report["verdict"].startswith(
        "FAIL: ranks joined: rank 0 failed at import: No module named 'nltk' (pip install nltk"
    )


@needs_corpus
@pytest.mark.slow
def test_the_upstream_script_trains_and_passes() -> None:
    """DDP016 runs the per-epoch ``evaluate(...)`` helper (it writes dev.output/dev.gold) and the
    best-checkpoint block on rank 0 with the unwrapped model: one writer per dev file."""
    pytest.importorskip("torch")
    for module in ("nltk", "datasets", "fuzzywuzzy", "tree_sitter_c", "tree_sitter_cpp"):
        pytest.importorskip(module)
    code, report = run_verify(find_script(RELATIVE).as_posix(), "--target", NAME)
    assert code == 0, report["verdict"]
    assert report["verdict"] == "PASS: all 8 checks passed"
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["every rank exited 0"] == "2 of 2 exited 0, no traceback"
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["training health"].endswith("parameters trained as expected")
    assert rows["evaluation ran"] == "on rank 0 (2x)"
    assert rows["results complete"] == (
        "test.gold: 8 of 8 lines, in order (rank 0); dev.gold: 8 of 8 lines, in order (rank 0)"
    )
