"""Opt-in: ``ddpfix verify`` on DataParallel-only scripts of a CodeBERT checkout: GraphCodeBERT
clone detection and UniXcoder's POJ-104 clone detection.

``DDPFIX_CORPUS=/path/to/CodeBERT[:...]``; skipped when unset. GraphCodeBERT builds its
tree-sitter parsers at import with the 2021 API, so the unpatched copy never gets past the top of
the file; with PRT010 it loads the grammar wheels and extracts real data flow from the synthetic
Java. Both wrap the model in DataParallel only (no process group): patched, DDP016 converts them
to one DDP process per rank, and they pass.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify

pytest.importorskip("torch")
pytest.importorskip("tree_sitter_java")
pytestmark = [
    pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout to run"),
    pytest.mark.slow,
]

SCRIPT = "GraphCodeBERT/clonedetection/run.py"
TARGET = "codebert-graphcodebert-clonedetection"
#: What a verdict says when the script died on an import or on the old tree-sitter API.
IMPORT_OR_TREE_SITTER = re.compile(
    r"failed at import|ImportError|ModuleNotFoundError|tree_sitter|set_language|"
    r"takes exactly 1 argument|my-languages"
)


def _script(relative: str = SCRIPT) -> Path:
    return find_script(relative)


def _verify(*args: str) -> tuple[int, dict]:
    return run_verify("--gpus", "2", *args)


def test_patched_gets_past_imports_and_extracts_data_flow(tmp_path: Path) -> None:
    keep = tmp_path / "sandbox"
    code, report = _verify(str(_script()), "--keep", str(keep))
    assert report["target"] == TARGET and report["identified_by"] == "sha256"
    # DataParallel-only upstream: converted to DDP (DDP016, DDP014), it trains one model on two
    # ranks with the same global batch and passes every check
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    patched_source = (keep / "code" / "run.py").read_text()
    assert "args.train_batch_size //= torch.distributed.get_world_size()" in patched_source
    assert "find_unused_parameters=True" in patched_source
    assert report["fixes_applied"] >= 2  # Language(...) and set_language, at least
    assert not IMPORT_OR_TREE_SITTER.search(report["verdict"]), report["verdict"]
    patched = (keep / "code" / "run.py").read_text()
    assert "TREE_SITTER_GRAMMARS[lang]()" in patched and ".set_language(" not in patched
    # the first training examples are logged with their data-flow edges: tree-sitter parsed the
    # Java and DFG_java found variables flowing into each other
    log = (keep / "launch.log").read_text(errors="replace")
    edges = re.findall(r"dfg_to_dfg_1: (.*)", log)
    assert edges and any(re.search(r"\[\d", line) for line in edges), log[-2000:]


def test_without_prt010_the_old_language_call_is_what_fails() -> None:
    code, report = _verify(str(_script()), "--ignore", "PRT010")
    assert code == 1
    assert "raised TypeError: __init__() takes exactly 1 argument (2 given)" in report["verdict"]


def test_original_fails_at_import() -> None:
    code, report = _verify(str(_script()), "--original", "--target", TARGET)
    assert code == 1
    assert "raised ImportError: cannot import name 'AdamW'" in report["verdict"] or (
        "failed at import" in report["verdict"]
    )


def test_unixcoder_poj104_converted_to_ddp_passes() -> None:
    script = _script("UniXcoder/downstream-tasks/clone-detection/POJ-104/run.py")
    code, report = _verify(str(script))
    assert report["target"] == "codebert-unixcoder-poj104" and report["identified_by"] == "sha256"
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
