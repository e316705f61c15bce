"""Opt-in: ``ddpfix verify`` on GraphCodeBERT's code search (a DataParallel-only script).

``DDPFIX_CORPUS=/path/to/CodeBERT[:...]``; skipped when unset. The script builds its tree-sitter
parsers at import with the 2021 API and imports ``transformers.AdamW``, so the unpatched copy dies
at import; patched (PRT010 for the grammars) it extracts data flow from the synthetic Java. Its
loss scores every query against the codes of its batch (in-batch negatives), so DDP016 reports
instead of converting it: split over processes, each would see half the negatives and the
objective would change. Under the launcher it then runs as two independent processes, which
verify names.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify

pytest.importorskip("torch")
pytest.importorskip("tree_sitter_java")
pytestmark = [
    pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout to run"),
    pytest.mark.slow,
]

SCRIPT = "GraphCodeBERT/codesearch/run.py"
TARGET = "codebert-graphcodebert-codesearch"


def _script() -> Path:
    return find_script(SCRIPT)


def _verify(*args: str) -> tuple[int, dict]:
    return run_verify("--gpus", "2", *args)


def test_patched_is_not_converted_and_verify_says_why(tmp_path: Path) -> None:
    keep = tmp_path / "sandbox"
    code, report = _verify(str(_script()), "--keep", str(keep))
    assert report["target"] == TARGET and report["identified_by"] == "sha256"
    assert code == 1
    assert report["verdict"] == (
        "FAIL: ranks joined: 2 processes, torch.distributed never initialised: every process "
        "ran as rank -1 (the script does not read LOCAL_RANK)"
    )
    patched = (keep / "code" / "run.py").read_text()
    assert "init_process_group" not in patched and "DistributedDataParallel(" not in patched
    assert "TREE_SITTER_GRAMMARS[lang]()" in patched and ".set_language(" not in patched
    log = (keep / "launch.log").read_text(errors="replace")
    # tree-sitter parsed the Java: the logged training examples have data-flow edges
    edges = re.findall(r"dfg_to_dfg: (.*)", log)
    assert edges and any(re.search(r"\[\d", line) for line in edges), log[-2000:]


def test_ddp016_reports_the_in_batch_negatives() -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "patcher",
            "check",
            "--strict",
            "--select",
            "DDP016",
            str(_script()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1
    said = run.stdout + run.stderr
    assert "scores each example against the rest of its batch (in-batch negatives" in said


def test_original_fails_at_import() -> None:
    code, report = _verify(str(_script()), "--original", "--target", TARGET)
    assert code == 1
    assert "cannot import name 'AdamW'" in report["verdict"] or (
        "failed at import" in report["verdict"]
    )
