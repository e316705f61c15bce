"""Opt-in: ``ddpfix verify`` on GraphCodeBERT's code search (a DataParallel-only script).

``DDPFIX_CORPUS=/path/to/CodeBERT[:...]``; skipped when unset. The script builds its tree-sitter
parsers at import with the 2021 API and imports ``transformers.AdamW``, so the unpatched copy dies
at import; patched (PRT010 for the grammars, DDP016/DDP014 for one DDP process per rank) it
extracts data flow from the synthetic Java, trains with the same global batch and ranks the
codebase for every docstring query.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("tree_sitter_java")
ROOTS = [Path(p) for p in os.environ.get("DDPFIX_CORPUS", "").split(os.pathsep) if p]
pytestmark = [
    pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout to run"),
    pytest.mark.slow,
]

SCRIPT = "GraphCodeBERT/codesearch/run.py"
TARGET = "codebert-graphcodebert-codesearch"


def _script() -> Path:
    for root in ROOTS:
        if (root / SCRIPT).exists():
            return root / SCRIPT
    pytest.skip(f"{SCRIPT} is not under DDPFIX_CORPUS")


def _verify(*args: str) -> tuple[int, dict]:
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "verify", "--format", "json", "--gpus", "2", *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    return run.returncode, json.loads(run.stdout)


def test_patched_converted_to_ddp_passes(tmp_path: Path) -> None:
    keep = tmp_path / "sandbox"
    code, report = _verify(str(_script()), "--keep", str(keep))
    assert report["target"] == TARGET and report["identified_by"] == "sha256"
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    # 32 training pairs at a global batch of 4: 2 per process, 8 steps on each rank
    assert [p["optimizer_steps"] for p in report["processes"]] == [8, 8]
    patched = (keep / "code" / "run.py").read_text()
    assert "args.train_batch_size //= torch.distributed.get_world_size()" in patched
    assert "DistributedDataParallel(" in patched
    assert "TREE_SITTER_GRAMMARS[lang]()" in patched and ".set_language(" not in patched
    # only rank 0 saves the best-MRR model
    saves = [
        w["path"]
        for p in report["processes"]
        for w in p["writes"]
        if w["path"].endswith("checkpoint-best-mrr/model.bin")
    ]
    assert len(saves) == 1
    log = (keep / "launch.log").read_text(errors="replace")
    # tree-sitter parsed the Java: the logged training examples have data-flow edges
    edges = re.findall(r"dfg_to_dfg: (.*)", log)
    assert edges and any(re.search(r"\[\d", line) for line in edges), log[-2000:]
    # every query's answer is in the codebase, so validation and test rank it (MRR above 0)
    mrrs = [float(v) for v in re.findall(r"eval_mrr = ([0-9.]+)", log)]
    assert mrrs and min(mrrs) > 0, log[-2000:]


def test_original_fails_at_import() -> None:
    code, report = _verify(str(_script()), "--original", "--target", TARGET)
    assert code == 1
    assert "cannot import name 'AdamW'" in report["verdict"] or (
        "failed at import" in report["verdict"]
    )
