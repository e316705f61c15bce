"""CodeBERT's ``code2nl/run.py``: its own target (it is the step-based ancestor of CodeXGLUE's
code-to-text, with which it shares every flag and log key), how a fork of either is told apart,
and (opt-in, ``DDPFIX_CORPUS`` naming a CodeBERT checkout) ``ddpfix verify`` on the real script.

Matched to the code-to-text target by fingerprint, code2nl ran without ``--train_steps`` (its
training length: -1 steps) and never evaluated, so ``checkpoint-last`` was never written. With its
own target, patched under 2 gloo ranks, both ranks train one DDP model and rank 0 alone
evaluates, checkpoints and decodes the dev and test files.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets

RELATIVE = "CodeBERT/code2nl/run.py"
NAME = "codebert-code2nl"
corpus = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")

_TARGET = """name = "{name}"
title = "t"
repo = "r"
path = "{name}/run.py"
model_type = "roberta"
dataset = "code-to-text"
args = []
fingerprint = {fingerprint}
"""
SHARED = ["checkpoint-last", "dev.output", "read_examples", "--beam_size", "Example", "x", "y"]


def _targets(tmp_path: Path, *more: str) -> dict:
    directory = tmp_path / "targets"
    directory.mkdir(exist_ok=True)
    named = [("sibling", SHARED), ("ancestor", [*SHARED, "loss {}", "seed."])]
    for name, strings in named + [(name, SHARED) for name in more]:
        text = _TARGET.format(name=name, fingerprint=repr(strings).replace("'", '"'))
        (directory / f"{name}.toml").write_text(text)
    return load_targets(directory)


def _script(tmp_path: Path, strings: list[str]) -> Path:
    script = tmp_path / "run.py"
    lines = (f"def {s}(): pass\n" if s.isidentifier() else f"{s!r}\n" for s in strings)
    script.write_text("".join(lines))
    return script


def test_of_two_targets_scoring_alike_the_one_with_more_strings_found_wins(tmp_path: Path) -> None:
    targets = _targets(tmp_path)
    # the ancestor's fork has every string of both: 9 of the ancestor's against 7 of the sibling's
    match, scored = identify(_script(tmp_path, [*SHARED, "loss {}", "seed."]), targets)
    assert [m.score for m in scored] == [1.0, 1.0]
    assert match is not None and (match.target.name, match.how) == ("ancestor", "fingerprint")
    # the sibling's fork: 7 of 7 against 7 of 9, a clear lead
    match, _ = identify(_script(tmp_path, SHARED), targets)
    assert match is not None and match.target.name == "sibling"
    # a twin with the sibling's very strings: as many found of each, too close to call
    match, _ = identify(_script(tmp_path, SHARED), _targets(tmp_path, "twin"))
    assert match is None


@corpus
def test_identified_by_sha256_and_a_fork_by_its_fingerprint(tmp_path: Path) -> None:
    script = find_script(RELATIVE)
    targets = load_targets()
    match, _ = identify(script, targets)
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")
    fork = tmp_path / "run.py"
    fork.write_text(script.read_text(encoding="utf-8") + "\n# a fork\n", encoding="utf-8")
    match, _ = identify(fork, targets)
    assert match is not None and (match.target.name, match.how) == (NAME, "fingerprint")


@corpus
@pytest.mark.slow
def test_patched_two_ranks_train_one_model_and_pass() -> None:
    pytest.importorskip("torch")
    code, report = run_verify(str(find_script(RELATIVE)), "--gpus", "2")
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == NAME and report["family"] == "roberta"
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert "world size 2 (gloo), 4, 4 optimizer steps" in rows["ranks joined"]
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["checkpoints"] == (
        "checkpoint-last/pytorch_model.bin (rank 0, loads with weights_only=True); "
        "checkpoint-best-ppl/pytorch_model.bin (rank 0, loads with weights_only=True)"
    )
    assert rows["results complete"] == (
        "test_0.output: 8 of 8 lines, in order (rank 0); "
        "test_1.output: 8 of 8 lines, in order (rank 0)"
    )
    assert report["health"] == []
