"""Run the real ``ddpfix`` CLI in-process and return exit code, stdout and stderr."""

from __future__ import annotations

import os
from dataclasses import dataclass

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
