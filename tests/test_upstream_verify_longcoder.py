"""Opt-in: ``ddpfix verify`` on CodeBERT's LongCoder code completion (LongCoder/run.py).

``DDPFIX_CORPUS`` names a CodeBERT checkout; skipped when unset. The script fine-tunes its own
Longformer-config decoder (``longcoder.py``) on LCC-style files it loads with ``datasets``'
``load_dataset``; it is DataParallel-only upstream (DDP016 converts it) and builds tree-sitter
parsers for nine languages at import. It cannot start on today's stack: it imports ``nltk``
first, and its ``longcoder.py`` imports ``find_pruneable_heads_and_indices``, which transformers
5 removed (PRT009 reports it: no fix). Verify names the first of these it meets. Behind them,
PRT010 knows no grammar wheel for ``c``/``cpp`` (a report), and ``longcoder.py`` also calls
``get_extended_attention_mask`` and declares ``past_key_values`` on its outputs, both gone in
transformers 5.
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
        if split == "test":
            assert keys == [row["gt"] for row in rows]
    assert len(set(keys)) == len(keys)


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
def test_verify_names_the_first_import_it_cannot_satisfy() -> None:
    pytest.importorskip("torch")
    code, report = run_verify(find_script(RELATIVE).as_posix())
    assert code == 1 and (report["target"], report["family"]) == (NAME, "longformer")
    if importlib.util.find_spec("nltk") is None:
        cause = "No module named 'nltk' (pip install nltk"
    else:
        cause = "cannot import name 'find_pruneable_heads_and_indices' from 'transformers"
    assert report["verdict"].startswith(f"FAIL: ranks joined: rank 0 failed at import: {cause}")
