"""The pre-commit hooks, run by the real pre-commit against this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

LEGACY = (
    "import argparse\n"
    "import os\n"
    "\n"
    "parser = argparse.ArgumentParser()\n"
    'parser.add_argument("--local_rank", type=int, default=-1)\n'
    "args = parser.parse_args()\n"
)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _try_repo(repo_root: Path, project: Path, hook: str, home: Path):
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.run(
        ["pre-commit", "try-repo", str(repo_root), hook, "--files", "train/run.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_hooks_fail_on_drift_and_pass_when_patched(repo_root: Path, tmp_path: Path) -> None:
    if shutil.which("pre-commit") is None:
        pytest.fail("pre-commit is not installed (it is part of the 'test' extra)")
    project = tmp_path / "fork"
    (project / "train").mkdir(parents=True)
    script = project / "train" / "run.py"
    script.write_text(LEGACY)
    _git(project, "init", "-q")
    _git(project, "add", ".")
    home = tmp_path / "pre-commit-home"

    drifted = _try_repo(repo_root, project, "ddpfix-check", home)
    assert drifted.returncode == 1, drifted.stdout + drifted.stderr
    assert "ddpfix check" in drifted.stdout and "Failed" in drifted.stdout
    assert '+    args.local_rank = int(os.environ["LOCAL_RANK"])' in drifted.stdout
    assert script.read_text() == LEGACY

    applied = _try_repo(repo_root, project, "ddpfix-apply", home)
    assert applied.returncode == 1  # pre-commit fails a hook that modified files
    assert "files were modified by this hook" in applied.stdout
    assert 'int(os.environ["LOCAL_RANK"])' in script.read_text()

    _git(project, "add", ".")
    clean = _try_repo(repo_root, project, "ddpfix-check", home)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Passed" in clean.stdout
