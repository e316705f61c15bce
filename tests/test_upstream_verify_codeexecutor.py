"""Opt-in: ``ddpfix verify`` on CodeBERT's CodeExecutor pre-training (pretrain/run.py).

``DDPFIX_CORPUS`` names a CodeBERT checkout; skipped when unset. The script pre-trains
UniXcoder's encoder-decoder on code → execution traces with ``--local_rank`` DDP, per-rank
cached shards of three cycled training sets, and a rank-0 evaluation and save every
``--save_steps`` updates. Its ``model.py`` is written for transformers 4 in two places: it hands
RoBERTa a 3-D (batch, length, length) attention mask, which transformers 5 no longer expands
(only 2-D and 4-D masks), and it sizes its LM head from the config it passed to
``from_pretrained``, which today's transformers copies, so the copy ``resize_token_embeddings``
updates is not the one the head reads. Verify names the first; with both written for today's
transformers (in a temporary copy, as a user would) the patched script passes every check.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from corpus_runs import ROOTS, edited_copy, find_script, run_verify
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.codeexecutor import FILES, codeexecutor

NAME = "codebert-codeexecutor-pretrain"
RELATIVE = "CodeExecutor/pretrain/run.py"
needs_corpus = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")
#: The two transformers-4 habits of upstream's model.py, and what today's transformers needs.
TODAY = {
    "model.py": {
        "self.encoder(source_ids,attention_mask=attention_mask)": (
            "self.encoder(source_ids,attention_mask=attention_mask[:, None].bool())"
        ),
        "nn.Linear(config.hidden_size,config.vocab_size)": (
            "nn.Linear(config.hidden_size,encoder.config.vocab_size)"
        ),
    }
}


def _transformers_major() -> int:
    return int(version("transformers").split(".")[0])


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
def test_verify_names_the_three_dimensional_mask_transformers_5_rejects() -> None:
    pytest.importorskip("torch")
    if _transformers_major() < 5:
        pytest.skip("transformers 4 still expands a 3-D attention mask")
    code, report = run_verify(find_script(RELATIVE).as_posix())
    assert code == 1 and report["target"] == NAME
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    evidence = rows["every rank exited 0"]
    assert "raised RuntimeError: expand(torch.ByteTensor{[2, 1, 1, 64, 64]}" in evidence


@needs_corpus
@pytest.mark.slow
def test_with_model_py_written_for_todays_transformers_it_passes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    code_dir = edited_copy(find_script(RELATIVE).parent, tmp_path / "pretrain", TODAY)
    code, report = run_verify((code_dir / "run.py").as_posix())
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert (report["target"], report["identified_by"], report["family"]) == (
        NAME,
        "sha256",
        "roberta",
    )
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["evaluation ran"] == "on rank 0 (2x)"
    assert rows["checkpoints"].startswith("checkpoint-last (rank 0,")
    assert report["health"] == []
