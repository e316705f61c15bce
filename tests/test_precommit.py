"""The pre-commit hooks, run by the real pre-commit against this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from patcher.upstream import load_manifests

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


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pre-commit home for the module: the hook environment is installed once."""
    if shutil.which("pre-commit") is None:
        pytest.fail("pre-commit is not installed (it is part of the 'test' extra)")
    return tmp_path_factory.mktemp("pre-commit-home")


def _try_repo(repo_root: Path, project: Path, hook: str, home: Path, *files: str):
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    which = ["--files", *files] if files else ["--files", "train/run.py"]
    return subprocess.run(
        ["pre-commit", "try-repo", str(repo_root), hook, "--verbose", *which],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_hooks_fail_on_drift_and_pass_when_patched(
    repo_root: Path, tmp_path: Path, home: Path
) -> None:
    project = tmp_path / "fork"
    (project / "train").mkdir(parents=True)
    script = project / "train" / "run.py"
    script.write_text(LEGACY)
    _git(project, "init", "-q")
    _git(project, "add", ".")

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


def test_upstream_hook_reads_the_manifests_of_an_installed_ddpfix(
    repo_root: Path, tmp_path: Path, home: Path
) -> None:
    # pre-commit installs ddpfix non-editable, so this is the wheel layout, not the checkout's.
    pinned = "Code-Code/Defect-detection/code/run.py"
    others = sum(m.repo == "microsoft/CodeXGLUE" for m in load_manifests()) - 1
    project = tmp_path / "codexglue-fork"
    script = project / pinned
    script.parent.mkdir(parents=True)
    script.write_text((repo_root / "examples" / "defect_detection" / "run.py").read_text())
    _git(project, "init", "-q")
    _git(project, "add", ".")

    broken = _try_repo(repo_root, project, "ddpfix-upstream", home, pinned)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"1 changed, {others} missing; drift breaks a patch" in broken.stdout
    assert "PRT001 fixes: expected 1, now" in broken.stdout  # the table wraps the rest

    _git(project, "rm", "-q", "-f", pinned)
    (project / "tools").mkdir()
    (project / "tools" / "count.py").write_text("print(len([1, 2]))\n")
    _git(project, "add", ".")
    missing = _try_repo(repo_root, project, "ddpfix-upstream", home, "tools/count.py")
    assert missing.returncode == 0, missing.stdout + missing.stderr
    assert "nothing pinned here; no patch broken" in missing.stdout
