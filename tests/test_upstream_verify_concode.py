"""``ddpfix verify`` on CodeXGLUE text-to-code (concode, CodeGPT/GPT-2), and its synthetic data.

The verify tests are opt-in: ``DDPFIX_CORPUS=/path/to/CodeXGLUE[:...]``, skipped when unset.
Nothing from the checkout is stored here; verify copies the script's directory into a sandbox.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets, script_features

NAME = "codexglue-text-to-code"
RELATIVE = "Text-Code/text-to-code/code/run.py"
needs_corpus = pytest.mark.skipif(
    not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout to run"
)
SIBLINGS = (  # CodeGPT scripts sharing most of this one's flags, which must not be taken for it
    "Code-Code/CodeCompletion-token/code/run_lm.py",
    "Code-Code/CodeCompletion-line/code/run_lm.py",
    "Code-Code/Method-Generation/code/run.py",
)


def _script(relative: str = RELATIVE) -> Path:
    return find_script(relative)


def _verify(*args: str) -> tuple[int, dict]:
    return run_verify(*args)


@needs_corpus
def test_target_identified_by_sha256_and_forks_by_fingerprint(tmp_path: Path) -> None:
    targets = load_targets()
    script = _script()
    match, _ = identify(script, targets)
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")
    fork = tmp_path / "run.py"
    fork.write_text(script.read_text(encoding="utf-8") + "\n# a fork\n", encoding="utf-8")
    match, _ = identify(fork, targets)
    assert match is not None and (match.target.name, match.how, match.score) == (
        NAME,
        "fingerprint",
        1.0,
    )
    for sibling in SIBLINGS:
        path = next((root / sibling for root in ROOTS if (root / sibling).exists()), None)
        if path is None:
            continue
        match, _ = identify(path, targets)
        assert match is None or match.target.name != NAME, sibling
        features = script_features(path.read_text(encoding="utf-8"))
        fingerprint = targets[NAME].fingerprint
        assert len(fingerprint & features) / len(fingerprint) == 0.5, sibling


@needs_corpus
@pytest.mark.slow
def test_patched_passes() -> None:
    pytest.importorskip("torch")
    if not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        pytest.skip("the script really uses SummaryWriter (PRT002, no fix): needs tensorboard")
    code, report = _verify(str(_script()))
    assert report["target"] == NAME and report["identified_by"] == "sha256"
    assert report["family"] == "gpt2"
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert "after optimizer step 3" in rows["replicas in sync"]
    assert rows["checkpoints"].startswith("checkpoint-last (rank 0,")
    assert report["health"] == []
    # a bare GPT2LMHeadModel evaluated by rank 0: transformers 5's own eval() is seen
    assert rows["evaluation ran"] == "on rank 0 (1x)"


@needs_corpus
@pytest.mark.slow
def test_original_fails_at_import() -> None:
    pytest.importorskip("torch")
    code, report = _verify(str(_script()), "--original")
    assert code == 1
    assert report["target"] == NAME and report["identified_by"] == "sha256"
    # without tensorboard the tensorboardX fallback fails first; with it, transformers' AdamW
    assert report["verdict"].startswith("FAIL: ranks joined: rank 0 failed at import: ")
    assert (
        "No module named 'tensorboardX'" in report["verdict"]
        or "cannot import name 'AdamW' from 'transformers'" in report["verdict"]
    )
