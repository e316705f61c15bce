"""Rule options in ``[tool.ddpfix.rules.<CODE>]`` are typed and checked when the config loads:
a wrong code, option or value is one clear line and exit 2, never ignored or an internal error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = (
    "import torch.distributed as dist\n"
    "\n"
    "\n"
    "def main(args):\n"
    '    dist.init_process_group(backend="nccl")\n'
)


def _ddpfix(project: Path, options: str, *args: str) -> subprocess.CompletedProcess[str]:
    (project / "pyproject.toml").write_text("[tool.ddpfix]\n\n" + options, encoding="utf-8")
    (project / "train.py").write_text(SCRIPT, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "patcher", *args, "train.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("options", "error"),
    [
        (
            "[tool.ddpfix.rules.DDP099]\ntimeout_minutes = 5\n",
            "[tool.ddpfix.rules.DDP099]: no rule DDP099",
        ),
        (
            "[tool.ddpfix.rules.DDP010]\ntimeout_minute = 5\n",
            "[tool.ddpfix.rules.DDP010]: unknown option 'timeout_minute' "
            "(DDP010 takes: timeout_minutes)",
        ),
        (
            "[tool.ddpfix.rules.DDP006]\nshared_cache = true\n",
            "[tool.ddpfix.rules.DDP006]: unknown option 'shared_cache' (DDP006 takes no options)",
        ),
        (
            '[tool.ddpfix.rules.DDP010]\ntimeout_minutes = "four hours"\n',
            "[tool.ddpfix.rules.DDP010]: timeout_minutes must be a whole number of minutes "
            "of at least 1, not 'four hours'",
        ),
        (
            "[tool.ddpfix.rules.DDP010]\ntimeout_minutes = 0\n",
            "[tool.ddpfix.rules.DDP010]: timeout_minutes must be a whole number of minutes "
            "of at least 1, not 0",
        ),
        (
            "[tool.ddpfix.rules.DDP008]\nshared_cache = 1\n",
            "[tool.ddpfix.rules.DDP008]: shared_cache must be true or false, not 1",
        ),
    ],
    ids=["unknown-rule", "unknown-option", "rule-without-options", "text", "zero", "not-bool"],
)
def test_bad_rule_options_are_one_line_and_exit_2(tmp_path: Path, options: str, error: str) -> None:
    run = _ddpfix(tmp_path, options, "check")
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert lines == [f"error: {tmp_path / 'pyproject.toml'}: {error}"]
    assert run.stdout == ""
    assert (tmp_path / "train.py").read_text(encoding="utf-8") == SCRIPT


def test_rule_codes_in_options_are_case_insensitive_like_select(tmp_path: Path) -> None:
    run = _ddpfix(tmp_path, "[tool.ddpfix.rules.ddp010]\ntimeout_minutes = 45\n", "apply")
    assert run.returncode == 0, run.stderr
    fixed = (tmp_path / "train.py").read_text(encoding="utf-8")
    assert "timeout=datetime.timedelta(minutes=45)" in fixed


def test_good_options_are_used(tmp_path: Path) -> None:
    options = (
        "[tool.ddpfix.rules.DDP010]\ntimeout_minutes = 240\n"
        "[tool.ddpfix.rules.DDP008]\nshared_cache = true\n"
    )
    run = _ddpfix(tmp_path, options, "apply")
    assert run.returncode == 0, run.stderr
    fixed = (tmp_path / "train.py").read_text(encoding="utf-8")
    assert "timeout=datetime.timedelta(minutes=240)" in fixed


def test_explain_lists_a_rules_options_with_their_defaults(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200"}
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "explain", "DDP010"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "Options, in [tool.ddpfix.rules.DDP010]:\n  timeout_minutes = 180: minutes" in run.stdout
