"""``ddpfix verify --compare-single`` end to end on the bundled clone-detection example: the
2-rank results equal one process's on the saved checkpoint, both with DDP017's distributed
evaluation (``--select ALL``) and with the default rules' rank-0 evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

CLONE = Path(__file__).resolve().parent.parent / "examples" / "clone_detection" / "run.py"
ROW = "results equal one process's"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ddpfix-cache")


def verify(cache: Path, *args: str) -> tuple[int, dict]:
    env = {**os.environ, "DDPFIX_CACHE": str(cache)}
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "verify", "--format", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    try:
        return run.returncode, json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report (exit {run.returncode}):\n{run.stdout}\n{run.stderr}")


@pytest.mark.parametrize("select", [["--select", "ALL"], []], ids=["DDP017", "default-rules"])
def test_results_equal_one_process(cache: Path, select: list[str]) -> None:
    code, report = verify(cache, str(CLONE), "--compare-single", *select)
    rows = {row["check"]: row for row in report["checks"]}
    assert code == 0, rows
    assert rows[ROW]["ok"], rows[ROW]
    assert rows[ROW]["evidence"].startswith("byte-identical to one process")
    assert "predictions.txt (12 lines)" in rows[ROW]["evidence"]
    evaluated = rows["evaluation ran"]["evidence"]
    assert ("rank 1" in evaluated) == bool(select), evaluated  # DDP017: rank 1 evaluates too


def test_off_by_default(cache: Path) -> None:
    _, report = verify(cache, str(CLONE))
    assert ROW not in {row["check"] for row in report["checks"]}
