"""Opt-in: ``ddpfix verify`` on GraphCodeBERT's code search (a DataParallel-only script).

``DDPFIX_CORPUS=/path/to/CodeBERT[:...]``; skipped when unset. The script builds its tree-sitter
parsers at import with the 2021 API and imports ``transformers.AdamW``, so the unpatched copy dies
at import; patched (PRT010 for the grammars) it extracts data flow from the synthetic Java. Its
loss scores every query against the codes of its batch (in-batch negatives): DDP016 converts it
to DDP and gathers the code vectors of every process before scoring (labels offset to this
process's block), so the two processes train one model on the global batch's negatives.
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
GATHER = (
    'scores=torch.einsum("ab,cb->ac",nl_vec,code_vec if not torch.distributed.is_initialized() '
    "else DdpfixAllGather.apply(code_vec))"
)
LABELS = (
    "torch.arange(code_inputs.size(0), device=scores.device) + torch.distributed.get_rank() * "
    "code_vec.size(0)"
)


def _script() -> Path:
    return find_script(SCRIPT)


def _verify(*args: str) -> tuple[int, dict]:
    return run_verify("--gpus", "2", *args)


def test_patched_trains_one_model_with_the_global_negatives(tmp_path: Path) -> None:
    keep = tmp_path / "sandbox"
    code, report = _verify(str(_script()), "--keep", str(keep))
    assert report["target"] == TARGET and report["identified_by"] == "sha256"
    assert code == 0, report["verdict"]
    assert report["verdict"] == "PASS: all 8 checks passed"
    checks = {check["check"]: check for check in report["checks"]}
    assert "ranks 0, 1, world size 2 (gloo)" in checks["ranks joined"]["evidence"]
    assert "identical parameters" in checks["replicas in sync"]["evidence"]
    assert checks["checkpoints"]["evidence"].startswith("checkpoint-best-mrr/model.bin (rank 0")
    patched = (keep / "code" / "run.py").read_text()
    assert "torch.distributed.init_process_group(" in patched
    assert "DistributedDataParallel(" in patched
    assert "class DdpfixAllGather(torch.autograd.Function):" in patched
    assert GATHER in patched and LABELS in patched
    assert "TREE_SITTER_GRAMMARS[lang]()" in patched and ".set_language(" not in patched
    log = (keep / "launch.log").read_text(errors="replace")
    # tree-sitter parsed the Java: the logged training examples have data-flow edges
    edges = re.findall(r"dfg_to_dfg: (.*)", log)
    assert edges and any(re.search(r"\[\d", line) for line in edges), log[-2000:]


def test_ddp016_converts_the_in_batch_negatives() -> None:
    """With the default rules (DDP016's rewrite needs DDP012's barriers to keep its
    post-conditions, so it is withheld when selected alone)."""
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "check", str(_script())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = run.stdout + run.stderr
    assert "scored against the candidates of every process when launched" in said, said
    assert "labels offset to this process's block of the candidates" in said
    assert "in-batch negatives: a batch x batch score matrix" not in said  # not reported


def test_original_fails_at_import() -> None:
    code, report = _verify(str(_script()), "--original", "--target", TARGET)
    assert code == 1
    assert "cannot import name 'AdamW'" in report["verdict"] or (
        "failed at import" in report["verdict"]
    )
