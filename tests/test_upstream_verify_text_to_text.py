"""Opt-in: ``ddpfix verify`` on CodeXGLUE text-to-text (documentation translation), its data.

``DDPFIX_CORPUS`` names a CodeXGLUE checkout; skipped when unset. The script is the seq2seq
family of code refinement on XLM-RoBERTa: its ``MODEL_CLASSES`` maps ``--model_type roberta`` to
the XLM-R classes (a commented-out RoBERTa table sits above it), so verify builds the tiny XLM-R
with its unigram tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.text_to_text import text_to_text

NAME = "codexglue-text-to-text"
RELATIVE = "Text-Text/text-to-text/code/run.py"


def test_line_aligned_pairs_with_distinct_targets(tmp_path: Path) -> None:
    keys = text_to_text(tmp_path)
    for split, count in (("train", 16), ("valid", 8), ("test", 8)):
        en = (tmp_path / f"{split}.en-da.en").read_text().splitlines()
        da = (tmp_path / f"{split}.en-da.da").read_text().splitlines()
        assert len(en) == len(da) == count and en != da
    assert keys == (tmp_path / "test.en-da.da").read_text().splitlines()
    assert keys == (tmp_path / "valid.en-da.da").read_text().splitlines()
    assert len(set(keys)) == len(keys)


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
def test_identified_by_sha256_and_run_on_xlm_roberta() -> None:
    from patcher.verify import families

    script = find_script(RELATIVE)
    match, _ = identify(script, load_targets())
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")
    assert families.family(["--model_type=roberta"], script.read_text()) == "xlm-roberta"


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
@pytest.mark.slow
def test_patched_two_ranks_train_one_model_and_pass() -> None:
    pytest.importorskip("torch")
    code, report = run_verify(find_script(RELATIVE).as_posix())
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == NAME and report["family"] == "xlm-roberta"
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert "after optimizer step 8" in rows["replicas in sync"]
    assert rows["results complete"] == (
        "test_0.gold: 8 of 8 lines, in order (rank 0); test_1.gold: 8 of 8 lines, in order (rank 0)"
    )
    assert report["health"] == []
