"""What the opt-in upstream tests share: the checkouts ``DDPFIX_CORPUS`` names, finding a script
in them (the test is skipped when it is not there), and ``ddpfix verify --format json`` run as a
user runs it. Nothing from a checkout is stored in this repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

#: The checkout roots, os.pathsep-separated in DDPFIX_CORPUS (empty: the tests skip).
ROOTS = [Path(p) for p in os.environ.get("DDPFIX_CORPUS", "").split(os.pathsep) if p]


def find_script(relative: str) -> Path:
    """``relative`` under the first root that has it; skips the test when none does."""
    for root in ROOTS:
        if (root / relative).exists():
            return root / relative
    pytest.skip(f"{relative} is not under DDPFIX_CORPUS")


def run_verify(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 900
) -> tuple[int, dict]:
    """``ddpfix verify --format json ARGS``: its exit code and its report."""
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "verify", "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    try:
        return run.returncode, json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report (exit {run.returncode}):\n{run.stdout}\n{run.stderr}")


def edited_copy(directory: Path, into: Path, edits: Mapping[str, Mapping[str, str]]) -> Path:
    """A copy of a script's ``directory`` with each ``{file: {old: new}}`` edit made once: what
    a user does to run upstream code on today's libraries (each ``old`` must occur exactly
    once, so an upstream change fails the test instead of silently skipping the edit)."""
    shutil.copytree(directory, into)
    for name, replacements in edits.items():
        path = into / name
        text = path.read_text()
        for old, new in replacements.items():
            assert text.count(old) == 1, f"{name}: {old!r}"
            text = text.replace(old, new)
        path.write_text(text)
    return into
