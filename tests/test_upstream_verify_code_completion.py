"""Opt-in: ``ddpfix verify`` on CodeXGLUE code completion (CodeGPT's run_lm.py, token and line).

``DDPFIX_CORPUS`` names a CodeXGLUE checkout; skipped when unset. Both scripts fine-tune GPT-2 on
the same token files (``--not_pretrain``: train.txt/dev.txt) with ``--node_index/--gpu_per_node``
rank arithmetic, a rank-0 perplexity evaluation every ``--save_steps`` and ``save_pretrained``
checkpoints; the line-level one imports fuzzywuzzy for its (separate, single-GPU) evaluation.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.code_completion import code_completion

TARGETS = {
    "codexglue-code-completion-token": "Code-Code/CodeCompletion-token/code/run_lm.py",
    "codexglue-code-completion-line": "Code-Code/CodeCompletion-line/code/run_lm.py",
}
needs_corpus = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")


def test_the_token_files_are_what_run_lm_reads(tmp_path: Path) -> None:
    """Each line one function between <s> and </s>, literals abstracted, <EOL> at line ends;
    test.json's input + gt is a prefix of a test line; the literals file lists what it uses."""
    keys = code_completion(tmp_path)
    train = (tmp_path / "train.txt").read_text().splitlines()
    assert len(train) == 48 and len((tmp_path / "dev.txt").read_text().splitlines()) == 24
    assert keys == (tmp_path / "test.txt").read_text().splitlines()
    for line in train + keys:
        tokens = line.split()
        assert tokens[0] == "<s>" and tokens[-1] == "</s>" and "<EOL>" in tokens
        assert not any(token.isdigit() for token in tokens)
    assert "<NUM_LIT:0>" in train[0].split()
    literals = json.loads((tmp_path / "literals.json").read_text())
    assert set(literals) == {"str", "num", "char"} and "0" in literals["num"]
    for name in ("dev", "test"):
        lines = (tmp_path / f"{name}.txt").read_text().splitlines()
        rows = [json.loads(line) for line in (tmp_path / f"{name}.json").read_text().splitlines()]
        assert len(rows) == len(lines)
        for row, line in zip(rows, lines):
            assert row["gt"] and line.startswith(f"{row['input']} {row['gt']} ")


@needs_corpus
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_identified_by_sha256(target: str) -> None:
    match, _ = identify(find_script(TARGETS[target]), load_targets())
    assert match is not None and (match.target.name, match.how) == (target, "sha256")


@needs_corpus
@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_patched_two_ranks_train_one_model_and_pass(target: str) -> None:
    pytest.importorskip("torch")
    if target.endswith("-line") and importlib.util.find_spec("fuzzywuzzy") is None:
        pytest.skip("CodeCompletion-line's run_lm.py imports fuzzywuzzy: install it")
    code, report = run_verify(find_script(TARGETS[target]).as_posix())
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == target and report["family"] == "gpt2"
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["checkpoints"].startswith("checkpoint-last (rank 0,")
    assert rows["evaluation ran"].startswith("on rank 0 (")
    assert report["health"] == []


@needs_corpus
@pytest.mark.slow
def test_token_level_eval_acc_runs_on_rank_0_alone() -> None:
    """The token-level script's ``eval_acc()`` wraps the model in DDP and scores a
    DistributedSampler shard on every rank, then every rank writes predictions.txt ("Only works
    on single GPU", upstream says). Patched, its do_eval block runs on global rank 0 alone with a
    SequentialSampler and no wrap, so DDP001 reads LOCAL_RANK: the ranks train as one job, and
    post_process's line-by-line check against test.txt passes (every rank exits 0)."""
    pytest.importorskip("torch")
    code, report = run_verify(find_script(TARGETS["codexglue-code-completion-token"]).as_posix())
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert "--do_eval" in str(report["command"])
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["every rank exited 0"].startswith("2 of 2 exited 0")
    assert rows["evaluation ran"].startswith("on rank 0 (")
