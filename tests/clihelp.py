"""Run the real ``ddpfix`` CLI, in-process (fast) or as a separate process (as a user does)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from patcher.cli import app


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def ddpfix(*args: str | os.PathLike[str]) -> Run:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


ROOT = Path(__file__).resolve().parent.parent


def ddpfix_process(
    *args: str | Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    closed_stdout: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``ddpfix ARGS`` as a user runs it: a separate process, stdout and stderr not a terminal.

    ``closed_stdout``: stdout is a pipe whose reader has already gone (``ddpfix ... | head``
    after head exited), and the returned ``stdout`` is empty."""
    environment = dict(os.environ if env is None else env)
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
    command = [sys.executable, "-m", "patcher", *(str(a) for a in args)]
    if not closed_stdout:
        return subprocess.run(
            command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
        )
    read, write = os.pipe()
    os.close(read)
    try:
        run = subprocess.run(
            command,
            cwd=cwd,
            env=environment,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
    finally:
        os.close(write)
    return subprocess.CompletedProcess(command, run.returncode, "", run.stderr)
