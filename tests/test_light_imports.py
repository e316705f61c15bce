"""apply/check (and so the pre-commit hook) must stay light: never import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "accelerate", "transformers", "tokenizers", "numpy")


def test_check_never_imports_torch(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(
        "import torch\n"
        "parser.add_argument('--local_rank', type=int, default=-1)\n"
        "args = parser.parse_args()\n"
    )
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "patcher", "check", str(script)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1, run.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in run.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert "libcst" in imported  # the measurement itself works
    assert not imported & set(HEAVY)
