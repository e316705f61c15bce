"""The command line as a user meets it: exit codes, diffs, selection, config, JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clihelp import ddpfix
from patcher import __version__

LEGACY = (
    "import argparse\n"
    "import os\n"
    "\n"
    "def train(args, model):\n"
    "    if args.local_rank == -1 and args.evaluate_during_training:\n"
    "        results = evaluate(args, model)\n"
    "        print(results)\n"
    "\n"
    "parser = argparse.ArgumentParser()\n"
    'parser.add_argument("--local_rank", type=int, default=-1)\n'
    "args = parser.parse_args()\n"
)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "run.py"
    path.write_text(LEGACY)
    return path


def test_apply_rewrites_and_reports(script: Path) -> None:
    run = ddpfix("apply", script)
    assert run.code == 0
    assert run.stdout == ""
    text = script.read_text()
    gate = 'if int(os.environ.get("RANK", args.local_rank)) in [-1, 0] and args.evaluate_during'
    assert gate in text
    assert f"{script.as_posix()}:5:5: DDP003 (fixed)" in run.stderr
    assert f"{script.as_posix()}:10:1: DDP002 (fixed)" in run.stderr
    assert f"{script.as_posix()}:5:5: DDP008 (fixed)" in run.stderr
    assert run.stderr.strip().endswith("4 fixes applied in 1 file, 1 file checked.")
    again = ddpfix("apply", script)
    assert again.code == 0 and script.read_text() == text
    assert "no file changed" in again.stderr


def test_check_writes_nothing_and_exits_1(script: Path) -> None:
    run = ddpfix("check", script)
    assert run.code == 1
    assert script.read_text() == LEGACY
    assert "(fixable)" in run.stderr
    assert run.stdout.startswith(f"--- {script.as_posix()}\n+++ {script.as_posix()}\n")


def test_apply_check_without_diff(script: Path) -> None:
    run = ddpfix("apply", "--check", script)
    assert run.code == 1 and run.stdout == ""
    assert script.read_text() == LEGACY


def test_diff_alone_exits_0_and_applies_with_git(script: Path, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "apply", "--diff", "run.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0
    assert run.stdout.startswith("--- a/run.py\n+++ b/run.py\n")
    assert script.read_text() == LEGACY
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "apply", "-"], input=run.stdout, text=True, cwd=tmp_path, check=True)
    assert ddpfix("check", script).code == 0


def test_select_and_ignore(script: Path) -> None:
    run = ddpfix("check", "--select", "DDP002", script, "--format", "json")
    codes = [f["code"] for f in json.loads(run.stdout)["files"][0]["findings"]]
    assert codes == ["DDP002"]
    run = ddpfix("check", "--select", "DDP00", "--ignore", "DDP001,DDP003", script)
    assert "DDP001" not in run.stderr and "DDP003" not in run.stderr and "DDP002" in run.stderr
    run = ddpfix("check", "--select", "ALL", "--ignore", "ALL", script)
    assert run.code == 2 and "no rule selected" in run.stderr


def test_unknown_selector_is_a_usage_error(script: Path) -> None:
    run = ddpfix("check", "--select", "XYZ1", script)
    assert run.code == 2
    assert "unknown rule selector 'XYZ1'" in run.stderr


def test_ddp003_alone_warns(script: Path) -> None:
    run = ddpfix("check", "--select", "DDP003", script)
    assert "warning: DDP003 selected without DDP004, DDP005" in run.stderr
    run = ddpfix("check", "--select", "DDP003,DDP004,DDP005", script)
    assert "warning" not in run.stderr


def test_unfixable_findings_exit_1_in_apply(tmp_path: Path) -> None:
    path = tmp_path / "helpers.py"
    path.write_text(
        "import argparse\n"
        "def build():\n"
        "    p = argparse.ArgumentParser()\n"
        "    p.add_argument('--local_rank', '--local-rank', type=int, default=-1)\n"
        "    return p\n"
    )
    run = ddpfix("apply", path)
    assert run.code == 1
    assert "DDP001 (no fix)" in run.stderr
    assert "1 finding without a fix" in run.stderr
    # check asks "has the file drifted from its patched state?"; --strict adds the findings
    assert ddpfix("check", path).code == 0
    assert ddpfix("check", "--strict", path).code == 1
    assert ddpfix("apply", "--check", "--strict", path).code == 1


def test_json_report(script: Path) -> None:
    run = ddpfix("apply", "--diff", "--format", "json", script)
    report = json.loads(run.stdout)
    assert report["mode"] == "check" and report["exit_code"] == 0 == run.code
    entry = report["files"][0]
    assert entry["changed"] is True and entry["written"] is False and entry["error"] is None
    assert entry["diff"].startswith("---")
    assert entry["findings"][0] == {
        "code": "DDP003",
        "line": 5,
        "column": 5,
        "message": entry["findings"][0]["message"],
        "fixed": True,
    }
    assert report["summary"] == {"files": 1, "changed": 1, "fixed": 4, "unfixed": 0, "errors": 0}


def test_json_report_for_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("local_rank = (\n")
    report = json.loads(ddpfix("check", "--format", "json", bad).stdout)
    assert report["exit_code"] == 2
    assert report["files"][0]["error"].startswith("syntax error at line 1")


def test_config_in_pyproject(tmp_path: Path, script: Path, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ddpfix]\nselect = ["DDP002"]\nexclude = ["vendored"]\n'
    )
    vendored = tmp_path / "vendored"
    vendored.mkdir()
    (vendored / "run.py").write_text(LEGACY)
    monkeypatch.chdir(tmp_path)
    report = json.loads(ddpfix("check", ".", "--format", "json").stdout)
    assert [f["path"] for f in report["files"]] == ["run.py"]
    assert [f["code"] for f in report["files"][0]["findings"]] == ["DDP002"]
    # flags win over the configuration
    report = json.loads(ddpfix("check", ".", "--select", "DDP001", "--format", "json").stdout)
    assert [f["code"] for f in report["files"][0]["findings"]] == ["DDP001"]
    # an excluded file named explicitly is processed, unless --force-exclude
    assert ddpfix("check", "vendored/run.py").code == 1
    forced = ddpfix("check", "--force-exclude", "vendored/run.py")
    assert forced.code == 0 and "0 files checked" in forced.stderr


def test_bad_config_is_a_usage_error(tmp_path: Path, script: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.ddpfix]\nselekt = ['DDP001']\n")
    run = ddpfix("check", script)
    assert run.code == 2 and "unknown [tool.ddpfix] key(s): selekt" in run.stderr


def test_directories_skip_hidden_venvs_and_site_packages(tmp_path: Path) -> None:
    for relative in (
        "src/run.py",
        ".git/hooks/run.py",
        ".venv/lib/run.py",
        "env2/lib/python3.11/site-packages/pkg/run.py",
        "myenv/run.py",
    ):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(LEGACY)
    (tmp_path / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    report = json.loads(ddpfix("check", tmp_path, "--format", "json").stdout)
    assert [Path(f["path"]).relative_to(tmp_path).as_posix() for f in report["files"]] == [
        "src/run.py"
    ]


def test_rules_explain_version() -> None:
    table = ddpfix("rules")
    assert table.code == 0
    for code in ("DDP001", "DDP002", "DDP003", "DDP004", "DDP005", "DDP006"):
        assert code in table.stdout
    explained = ddpfix("explain", "ddp005")
    assert explained.code == 0
    assert "DDP005 complete-rank-zero-evaluation" in explained.stdout
    assert "Example 1 (changed):" in explained.stdout
    assert "left unchanged" in explained.stdout
    assert ddpfix("explain", "local-rank-from-env").code == 0
    unknown = ddpfix("explain", "DDP999")
    assert unknown.code == 2 and "unknown rule 'DDP999'" in unknown.stderr
    assert ddpfix("--version").stdout.strip() == f"ddpfix {__version__}"


def test_help_lists_the_commands() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "--help"], capture_output=True, text=True
    )
    assert run.returncode == 0
    for command in ("apply", "check", "rules", "explain"):
        assert command in run.stdout
