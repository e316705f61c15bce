"""CodeReviewer's fine-tuning scripts (microsoft/CodeBERT ``CodeReviewer/code``): their data
generators and tiny model family, and (opt-in) ``ddpfix verify`` on the real scripts.

The generator and family tests need no checkout. The verify tests read the scripts from
``DDPFIX_CORPUS`` (directories holding ``CodeReviewer/``) and are skipped without one; the scripts
import nltk and scikit-learn. What verify finds, patched, under 2 gloo ranks:

* the scripts put the model and every batch on the rank's GPU with no CUDA check
  (``model.cuda()``, ``.to(local_rank)``); PRT013 gives each placement the CPU when CUDA is not
  available, so both ranks train one DDP model and rank 0 evaluates and saves;
* at ``--train_steps`` rank 0 alone evaluated, saved and returned, and rank 1, still training,
  lost it in the next gradient all-reduce. DDP013 splits that gate: every rank returns at the
  step limit, rank 0 evaluates (the unwrapped model, DDP004) and saves first. Every check passes.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify import families
from patcher.verify.datasets import generators
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.codereviewer import CLS_DIR

BASE = "CodeReviewer/code"
TARGETS = {
    "codebert-codereviewer-cls": "run_finetune_cls.py",
    "codebert-codereviewer-msg": "run_finetune_msg.py",
    "codebert-codereviewer-ref": "run_finetune_ref.py",
}
HUNK = re.compile(r"@@ -(\d+),(\d+) \+(\d+),(\d+) @@")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _data_files(target: str, data: Path) -> list[Path]:
    """The files the target's --train_filename / --dev_filename name, once {data} is filled."""
    args = load_targets()[target].script_args(model=Path("m"), data=data, output=Path("o"))
    named = [a.partition("=")[2] for a in args if a.startswith(("--train_filename=", "--dev_"))]
    assert len(named) == 2
    return [Path(p) for p in named]


def _check_hunk(row: dict) -> None:
    """The hunk's header places it in ``oldf``: its context and removed lines are there."""
    header, *body = row["patch"].split("\n")
    found = HUNK.fullmatch(header)
    assert found is not None
    start, length = int(found.group(1)), int(found.group(2))
    old = row["oldf"].split("\n")
    assert [line[1:] for line in body if line[0] in " -"] == old[start - 1 : start - 1 + length]
    assert [line[0] for line in body] == [" ", "-", "+", " "]


def test_quality_estimation_chunks_and_dev_file(tmp_path: Path) -> None:
    keys = generators()["codereviewer-cls"](tmp_path)
    train, dev = _data_files("codebert-codereviewer-cls", tmp_path)
    assert train == tmp_path / CLS_DIR and dev.is_file()
    chunks = sorted(p.name for p in train.iterdir() if p.name.startswith("cls-train-chunk"))
    assert chunks == ["cls-train-chunk-0.jsonl", "cls-train-chunk-1.jsonl"]
    rows = [r for name in chunks for r in _rows(train / name)]
    valid = _rows(dev)
    assert (len(rows), len(valid)) == (16, 8)
    for row in rows + valid:
        _check_hunk(row)
        assert row["y"] == int(bool(row["msg"]))  # the reader sets y=1 for any comment
    assert [row["y"] for row in valid] == [1, 0] * 4
    assert keys == [str(row["id"]) for row in valid]


def test_comment_generation_rows_all_carry_a_comment(tmp_path: Path) -> None:
    generators()["codereviewer-msg"](tmp_path)
    train, dev = _data_files("codebert-codereviewer-msg", tmp_path)
    rows, valid = _rows(train), _rows(dev)
    assert (len(rows), len(valid)) == (16, 8)
    for row in rows + valid:
        _check_hunk(row)
        assert row["msg"]
    assert len({row["msg"] for row in valid}) == 8


def test_refinement_rows_put_the_changed_line_right(tmp_path: Path) -> None:
    generators()["codereviewer-ref"](tmp_path)
    train, dev = _data_files("codebert-codereviewer-ref", tmp_path)
    rows, valid = _rows(train), _rows(dev)
    assert (len(rows), len(valid)) == (16, 8)
    for row in rows + valid:
        old, new = row["old"].split("\n"), row["new"].split("\n")
        assert [line[0] for line in old] == [line[0] for line in new] == [" ", "+", " "]
        assert old[0] == new[0] and old[2] == new[2] and old[1] != new[1]
        assert row["comment"]
    assert valid[0]["new"].split("\n")[1] == "+for (int left = 0; left < tmp.length; left++) {"
    assert valid[0]["old"].split("\n")[1] == "+for (int left = 0; left <= tmp.length; left++) {"


@pytest.mark.parametrize(
    "args",
    [
        ["--model_name_or_path", "microsoft/codereviewer"],
        ["--model_type", "codet5", "--model_name_or_path=microsoft/codereviewer"],
        ["--model_name_or_path", "/models/codereviewer"],
    ],
)
def test_codereviewer_ids_choose_the_reviewer_family(args: list[str]) -> None:
    assert families.family(args) == "t5-reviewer"
    assert families.model_type_value("t5-reviewer") == "t5"


def test_the_reviewer_tokenizer_has_the_tokens_the_scripts_look_up(tmp_path, monkeypatch) -> None:
    transformers = pytest.importorskip("transformers")
    from patcher.verify.models import ensure_model

    monkeypatch.setenv("DDPFIX_CACHE", str(tmp_path))
    path, cached = ensure_model("t5-reviewer")
    assert not cached
    tokenizer = transformers.RobertaTokenizer.from_pretrained(str(path))
    vocab = tokenizer.get_vocab()
    # CodeT5's order: <pad> 0 (CodeReviewer's loss ignores index 0 as padding), <s> 1, </s> 2
    assert [vocab[t] for t in ("<pad>", "<s>", "</s>", "<unk>", "<mask>")] == [0, 1, 2, 3, 4]
    names = [f"<e{i}>" for i in range(100)] + ["<msg>", "<keep>", "<add>", "<del>", "<start>"]
    assert all(name in vocab for name in [*names, "<end>"])
    config = json.loads((path / "config.json").read_text())
    assert (config["pad_token_id"], config["decoder_start_token_id"]) == (0, 0)
    assert config["vocab_size"] == len(tokenizer)
    # a special token is one id, whatever text surrounds it
    assert tokenizer.encode("<add>x", add_special_tokens=False)[0] == vocab["<add>"]


corpus = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")
needs = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("nltk", "sklearn")),
    reason="the CodeReviewer scripts import nltk and scikit-learn: install both",
)


@corpus
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_identified_by_sha256(target: str) -> None:
    match, _ = identify(find_script(f"{BASE}/{TARGETS[target]}"), load_targets())
    assert match is not None and (match.target.name, match.how) == (target, "sha256")


def _evidence(report: dict) -> dict[str, str]:
    return {row["check"]: row["evidence"] for row in report["checks"]}


@corpus
@needs
@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_every_rank_returns_at_train_steps_and_rank_zero_saves(target: str) -> None:
    pytest.importorskip("torch")
    script = find_script(f"{BASE}/{TARGETS[target]}")
    code, report = run_verify(str(script), "--gpus", "2")
    assert report["target"] == target and report["family"] == "t5-reviewer"
    rows = _evidence(report)
    assert code == 0, rows
    assert "world size 2 (gloo), 3, 3 optimizer steps" in rows["ranks joined"]
    assert rows["every rank exited 0"] == "2 of 2 exited 0, no traceback"
    assert rows["evaluation ran"] == "on rank 0 (2x)"
    assert re.fullmatch(
        r"checkpoints-2-[0-9.]+/pytorch_model\.bin \(rank 0, loads with weights_only=True\); "
        r"checkpoints-last-[0-9.]+/pytorch_model\.bin \(rank 0, loads with weights_only=True\)",
        rows["checkpoints"],
    ), rows["checkpoints"]
