"""Opt-in: ``ddpfix verify`` on CodeBERT's CodeExecutor pre-training (pretrain/run.py).

``DDPFIX_CORPUS`` names a CodeBERT checkout; skipped when unset. The script pre-trains
UniXcoder's encoder-decoder on code → execution traces with ``--local_rank`` DDP, per-rank
cached shards of three cycled training sets, and a rank-0 evaluation and save every
``--save_steps`` updates. Its ``model.py`` and ``run.py`` are written for transformers 4 in two
places: the model hands RoBERTa a 3-D (batch, length, length) attention mask built from a
registered causal buffer, which transformers 5 no longer expands (PRT012 gives it 4's additive
4-D form), and the script passes its LM head the config it gave ``from_pretrained``, which
today's transformers copies, so the copy ``resize_token_embeddings`` updates is not the one the
head is sized from (PRT014 passes ``model.config``). With both rules the patched copy passes
every check as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.engine import fix_text
from patcher.registry import every_rule, select_rules
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.codeexecutor import FILES, codeexecutor

NAME = "codebert-codeexecutor-pretrain"
RELATIVE = "CodeExecutor/pretrain/run.py"
needs_corpus = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")


def test_rows_are_code_and_its_trace(tmp_path: Path) -> None:
    """Four files of eight rows: every rank gets whole training batches from each set."""
    assert codeexecutor(tmp_path) == []
    for name in FILES:
        rows = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
        assert len(rows) == 8
        for row in rows:
            assert set(row) == {"code_tokens", "trace_tokens"} and row["code_tokens"]
            trace = row["trace_tokens"]
            assert trace[:3] == ["<line>", "<1>", "<state>"] and trace[-1] == "</state>"
            assert trace.count("<state>") == trace.count("</state>") == 3


@needs_corpus
def test_identified_by_sha256() -> None:
    match, _ = identify(find_script(RELATIVE), load_targets())
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")


@needs_corpus
@pytest.mark.slow
def test_upstream_passes_with_its_mask_and_head_written_for_today() -> None:
    """PRT012 (the 3-D mask) and PRT014 (the head's vocabulary size) are among the fixes."""
    pytest.importorskip("torch")
    script = find_script(RELATIVE)
    fixed = {f.code for name in ("run.py", "model.py") for f in checked(script.parent / name)}
    assert {"PRT012", "PRT014"} <= fixed
    code, report = run_verify(script.as_posix())
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert (report["target"], report["identified_by"], report["family"]) == (
        NAME,
        "sha256",
        "roberta",
    )
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["evaluation ran"] == "on rank 0 (2x)"
    assert rows["checkpoints"].startswith("checkpoint-last (rank 0,")
    assert report["health"] == []


def checked(path: Path) -> list:
    """The fixes the default rules make in ``path`` (what ``ddpfix apply`` would write)."""
    _, findings = fix_text(path.read_text(), select_rules(every_rule(), None))
    return [f for f in findings if f.fixed]
