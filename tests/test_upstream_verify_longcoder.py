"""Opt-in: ``ddpfix verify`` on CodeBERT's LongCoder code completion (LongCoder/run.py).

``DDPFIX_CORPUS`` names a CodeBERT checkout; skipped when unset. The script fine-tunes its own
Longformer-config decoder (``longcoder.py``) on LCC-style files it loads with ``datasets``'
``load_dataset``; it is DataParallel-only upstream (DDP016 converts it) and builds tree-sitter
parsers for nine languages at import. It cannot start on today's stack: it imports ``nltk``
first, and its ``longcoder.py`` imports ``find_pruneable_heads_and_indices``, which transformers
5 removed (PRT009 reports it: no fix). Verify names the first of these it meets. Behind them,
PRT010 knows no grammar wheel for ``c``/``cpp`` (a report), and ``longcoder.py`` also calls
``get_extended_attention_mask`` and declares ``past_key_values`` on its outputs, both gone in
transformers 5. With those written for today's libraries in a copy, the patched script passes:
DDP016 puts the per-epoch evaluation (its ``evaluate`` helper writes dev.output/dev.gold) on
rank 0.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from corpus_runs import ROOTS, edited_copy, find_script, run_verify
from patcher.verify import families
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.longcoder import longcoder

NAME = "codebert-longcoder"
RELATIVE = "LongCoder/run.py"
#: What LongCoder needs to run on today's transformers and grammar wheels, as a user would write
#: it: the pruning helper defined (never called in fine-tuning), no c/cpp parsers (no wheel PRT010
#: knows), transformers 4's extended mask, and the outputs' cache under transformers 5's name.
_FIELD = "    past_key_values: Optional[Tuple[Tuple[torch.FloatTensor]]] = None\n"
_TODAYS_FIELD = (
    "    cache: Optional[Tuple[Tuple[torch.FloatTensor]]] = None\n"
    "    past_key_values = property(lambda self: self.cache)\n"
)
_MASK = "(1.0 - mask[:, None, None, :].to(self.dtype)) * torch.finfo(self.dtype).min"
TODAY = {
    "longcoder.py": {
        "apply_chunking_to_forward, find_pruneable_heads_and_indices, prune_linear_layer": (
            "apply_chunking_to_forward, prune_linear_layer"
        ),
        "logger = logging.get_logger(__name__)": (
            "logger = logging.get_logger(__name__)\nfind_pruneable_heads_and_indices = None"
        ),
        "        self.pooler =  None\n": (
            "        self.pooler =  None\n"
            f"        self.get_extended_attention_mask = lambda mask, shape: {_MASK}\n"
        ),
        # both output classes (the model's, with pooling, and the encoder's)
        _FIELD + "\n\n@dataclass\nclass LongcoderBaseModelOutput(": (
            _TODAYS_FIELD + "\n\n@dataclass\nclass LongcoderBaseModelOutput("
        ),
        _FIELD + "\n\n\ndef _compute_global_attention_mask": (
            _TODAYS_FIELD + "\n\n\ndef _compute_global_attention_mask"
        ),
    },
    "run.py": {
        "'php','c','cpp','c_sharp'": "'php','c_sharp'",
    },
}
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
def test_verify_names_the_first_import_it_cannot_satisfy() -> None:
    pytest.importorskip("torch")
    code, report = run_verify(find_script(RELATIVE).as_posix())
    assert code == 1 and (report["target"], report["family"]) == (NAME, "longformer")
    if importlib.util.find_spec("nltk") is None:
        cause = "No module named 'nltk' (pip install nltk"
    else:
        cause = "cannot import name 'find_pruneable_heads_and_indices' from 'transformers"
    assert report["verdict"].startswith(f"FAIL: ranks joined: rank 0 failed at import: {cause}")


@needs_corpus
@pytest.mark.slow
def test_with_the_stack_fixed_it_trains_and_passes(tmp_path: Path) -> None:
    """DDP016 runs the per-epoch ``evaluate(...)`` helper (it writes dev.output/dev.gold) and the
    best-checkpoint block on rank 0 with the unwrapped model: one writer per dev file."""
    pytest.importorskip("torch")
    for module in ("nltk", "datasets", "fuzzywuzzy"):
        pytest.importorskip(module)
    code_dir = edited_copy(find_script(RELATIVE).parent, tmp_path / "LongCoder", TODAY)
    code, report = run_verify((code_dir / "run.py").as_posix(), "--target", NAME)
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
