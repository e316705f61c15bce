"""A wheel is a whole ddpfix: the manifests and verify targets travel with it.

The repository keeps them in ``upstream/``; an installed ddpfix that lost them would no longer
recognise the scripts it targets (verify would refuse them as unknown, ``upstream status`` would
see nothing pinned).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from patcher.upstream import load_manifests

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, unpacked as site-packages would hold it."""
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # a copy: an in-tree build/ would leave stale modules behind
    skip = shutil.ignore_patterns(".git", "build", "*.egg-info", ".venv", "*cache*", "tests")
    shutil.copytree(ROOT, source, ignore=skip)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = out.glob("ddpfix-*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def _run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
    )


def test_the_wheel_carries_every_manifest(installed: Path) -> None:
    ours = {p.relative_to(ROOT / "upstream") for p in (ROOT / "upstream").rglob("*.toml")}
    shipped = {
        p.relative_to(installed / "patcher" / "_upstream")
        for p in (installed / "patcher" / "_upstream").rglob("*.toml")
    }
    assert ours and shipped == ours
    assert (installed / "patcher" / "verify" / "probe" / "sitecustomize.py").is_file()


def test_installed_ddpfix_reads_its_own_manifests(installed: Path, tmp_path: Path) -> None:
    pinned = [m for m in load_manifests() if m.repo == "microsoft/CodeXGLUE"]
    (tmp_path / "empty").mkdir()
    status = _run(
        installed,
        tmp_path,
        "-m",
        "patcher",
        "upstream",
        "status",
        "--checkout",
        "empty",
        "--repo",
        "microsoft/CodeXGLUE",
    )
    assert status.returncode == 0, status.stderr
    assert f"{len(pinned)} missing; no patch broken" in status.stdout + status.stderr

    targets = _run(
        installed,
        tmp_path,
        "-c",
        "from patcher.verify.targets import TARGET_DIR, load_targets;"
        "print(TARGET_DIR); print(len(load_targets()))",
    )
    assert targets.returncode == 0, targets.stderr
    where, count = targets.stdout.split()
    assert Path(where) == installed / "patcher" / "_upstream" / "targets"
    assert int(count) == len(list((ROOT / "upstream" / "targets").glob("*.toml")))
