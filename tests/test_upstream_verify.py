"""Opt-in: ``ddpfix verify`` on the real CodeXGLUE scripts, read from a local checkout.

``DDPFIX_CORPUS=/path/to/CodeXGLUE[:...]``; skipped when unset. Nothing from the checkout is
stored in this repository: verify copies the script's directory into a temporary sandbox.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify

pytest.importorskip("torch")
pytestmark = [
    pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout to run"),
    pytest.mark.slow,
]

SCRIPTS = {
    "codexglue-bigclonebench": "Code-Code/Clone-detection-BigCloneBench/code/run.py",
    "codexglue-poj104": "Code-Code/Clone-detection-POJ-104/code/run.py",
    "codexglue-defect-detection": "Code-Code/Defect-detection/code/run.py",
    "codexglue-nl-code-search-adv": "Text-Code/NL-code-search-Adv/code/run.py",
    "codexglue-code-to-text": "Code-Text/code-to-text/code/run.py",
}


def _script(relative: str) -> Path:
    return find_script(relative)


def _verify(*args: str) -> tuple[int, dict]:
    return run_verify(*args)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_patched_passes_original_fails(name: str) -> None:
    script = _script(SCRIPTS[name])
    code, report = _verify(str(script))
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == name and report["identified_by"] == "sha256"
    assert report["health"] == []  # a healthy run has no training-health findings
    code, original = _verify(str(script), "--original")
    assert code == 1
    # the first thing a user meets on today's stack: the tensorboard fallback or AdamW import
    assert original["verdict"] in (
        "FAIL: ranks joined: rank 0 failed at import: No module named 'tensorboardX' "
        "(pip install tensorboardX)",
        "FAIL: ranks joined: rank 0 failed at import: cannot import name 'AdamW' from "
        "'transformers' (" + original["verdict"].rsplit("(", 1)[-1],
    ), original["verdict"]


def test_seq2seq_without_rank_zero_blocks_writes_twice() -> None:
    script = _script(SCRIPTS["codexglue-code-to-text"])
    code, report = _verify(str(script), "--ignore", "DDP011")
    assert code == 1
    # both ranks write the same files: seen as two writers, or as their makedirs race
    verdict = report["verdict"]
    assert "written by 2 processes" in verdict or "raised FileExistsError" in verdict, verdict


def test_bigclonebench_distributed_predictions_equal_a_single_process_test(tmp_path: Path) -> None:
    script = _script(SCRIPTS["codexglue-bigclonebench"])
    keep = tmp_path / "sandbox"
    code, report = _verify(str(script), "--keep", str(keep))
    assert code == 0, report["verdict"]
    distributed = (keep / "output" / "predictions.txt").read_text()
    args = report["command"][report["command"].index(str(keep / "code" / "run.py")) + 1 :]
    args = [a for a in args if a not in ("--do_train", "--do_eval")]
    assert "--do_test" in args
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DDPFIX_", "LOCAL_RANK"))}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    subprocess.run(
        [sys.executable, "run.py", *args],
        cwd=keep / "code",
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    single = (keep / "output" / "predictions.txt").read_text()
    assert single.count("\n") == 12
    assert distributed == single


def test_bigclonebench_with_codegpt_names_the_heads_roberta_only_config() -> None:
    """The family comes from the command: --model_type=gpt2 and a CodeGPT id run on a tiny
    GPT-2. The upstream script lists gpt2 in MODEL_CLASSES, but its classification head reads
    RoBERTa's hidden_dropout_prob, which no GPT-2 config has: the cause a real run would meet."""
    script = _script(SCRIPTS["codexglue-bigclonebench"])
    codegpt = "microsoft/CodeGPT-small-java-adaptedGPT2"
    code, report = _verify(
        str(script),
        "--",
        "--model_type=gpt2",
        f"--config_name={codegpt}",
        f"--model_name_or_path={codegpt}",
        f"--tokenizer_name={codegpt}",
        "--block_size",
        "1024",
        "--train_batch_size",
        "8",
        "--gradient_accumulation_steps",
        "4",
    )
    assert code == 1 and report["family"] == "gpt2"
    assert (
        report["verdict"]
        == (
            "FAIL: every rank exited 0: rank 0 raised AttributeError: 'GPT2Config' object has no "
            "attribute 'hidden_dropout_prob'"
        )
        or "'GPT2Config' object has no attribute 'hidden_dropout_prob'" in report["verdict"]
    )
