"""What ``apply``/``check`` tell the user: per-file findings, diffs, a summary, or JSON."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.text import Text

from patcher.engine import FileResult
from patcher.pipes import end_quietly, reader_gone


def unified_diff(result: FileResult) -> str:
    name = result.path.as_posix()
    # git-style a/ b/ prefixes for relative paths (``git apply`` takes the diff as it is).
    old, new = (name, name) if result.path.is_absolute() else (f"a/{name}", f"b/{name}")
    lines = difflib.unified_diff(
        result.original.splitlines(keepends=True),
        result.fixed.splitlines(keepends=True),
        fromfile=old,
        tofile=new,
    )
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


@dataclass(frozen=True)
class Summary:
    files: int
    changed: int
    fixed: int
    unfixed: int
    errors: int
    #: Hidden by ``# ddpfix: ignore`` / ``per-file-ignores``; in no other count (as in ruff).
    suppressed: int = 0

    @classmethod
    def of(cls, results: Sequence[FileResult]) -> Summary:
        return cls(
            files=len(results),
            changed=sum(r.changed for r in results),
            fixed=sum(f.fixed for r in results for f in r.findings),
            unfixed=sum(len(r.unfixed) for r in results),
            errors=sum(r.error is not None for r in results),
            suppressed=sum(f.suppressed for r in results for f in r.findings),
        )


def exit_code(results: Sequence[FileResult], *, check: bool, strict: bool = False) -> int:
    """2 on errors. ``apply``: 1 when findings without a fix remain. ``--check``/``check``: 1
    when a file would change (it drifted from its patched state), and with ``strict`` also when
    findings without a fix remain. Otherwise 0."""
    summary = Summary.of(results)
    if summary.errors:
        return 2
    if check and summary.changed:
        return 1
    if summary.unfixed and (strict or not check):
        return 1
    return 0


def _plural(count: int, word: str) -> str:
    suffix = "es" if word.endswith(("x", "s")) else "s"
    return f"{count} {word}{'' if count == 1 else suffix}"


def print_text(
    results: Sequence[FileResult],
    *,
    check: bool,
    diff: bool,
    out: Console,
    err: Console,
    show_suppressed: bool = False,
) -> None:
    """Diffs on stdout (pipeable into ``git apply``); findings, errors and the summary on stderr.

    Suppressed findings are listed only with ``show_suppressed``: the user already decided.
    Once the diffs' reader is gone (``| head``), nothing more is printed."""
    for result in results:
        if diff and reader_gone(out.file):
            end_quietly()
        name = result.path.as_posix()
        if result.error is not None:
            err.print(Text.assemble((f"{name}: ", "bold"), ("error: ", "bold red"), result.error))
            continue
        for finding in result.findings:
            if finding.suppressed:
                if not show_suppressed:
                    continue
                state = ("suppressed", "dim")
            elif not finding.fixed:
                state = ("no fix", "yellow")
            elif check:
                state = ("fixable", "cyan")
            else:
                state = ("fixed", "green")
            err.print(
                Text.assemble(
                    (f"{name}:{finding.line}:{finding.column}: ", "bold"),
                    (finding.code, "bold magenta"),
                    " (",
                    state,
                    ") ",
                    finding.message,
                )
            )
        if diff and result.changed:
            out.print(Text(unified_diff(result)), end="")
    err.print(Text(summary_line(results, check=check, show_suppressed=show_suppressed)))


def summary_line(
    results: Sequence[FileResult], *, check: bool, show_suppressed: bool = False
) -> str:
    s = Summary.of(results)
    parts = []
    if check:
        parts.append(
            f"{_plural(s.changed, 'file')} would be changed ({_plural(s.fixed, 'fix')})"
            if s.changed
            else "no file would be changed"
        )
    else:
        parts.append(
            f"{_plural(s.fixed, 'fix')} applied in {_plural(s.changed, 'file')}"
            if s.changed
            else "no file changed"
        )
    parts.append(f"{_plural(s.files, 'file')} checked")
    if s.unfixed:
        parts.append(f"{_plural(s.unfixed, 'finding')} without a fix")
    if s.errors:
        parts.append(f"{_plural(s.errors, 'file')} with errors")
    if show_suppressed and s.suppressed:
        parts.append(f"{_plural(s.suppressed, 'finding')} suppressed")
    return ", ".join(parts) + "."


def to_json(
    results: Sequence[FileResult],
    *,
    check: bool,
    diff: bool,
    code: int,
    show_suppressed: bool = False,
) -> str:
    """One JSON document; ``check`` means nothing was written (``--check`` or ``--diff``).

    Suppressed findings are included (with ``"suppressed": true``) only with
    ``show_suppressed``, so a consumer that ignores the key sees what the text output shows."""
    files: list[dict[str, Any]] = []
    for result in results:
        shown = [f for f in result.findings if show_suppressed or not f.suppressed]
        entry: dict[str, Any] = {
            "path": result.path.as_posix(),
            "changed": result.changed,
            "written": result.written,
            "error": result.error,
            "findings": [f.to_json() for f in shown],
        }
        if diff:
            entry["diff"] = unified_diff(result) if result.changed else ""
        files.append(entry)
    s = Summary.of(results)
    payload = {
        "mode": "check" if check else "apply",
        "files": files,
        "summary": {
            "files": s.files,
            "changed": s.changed,
            "fixed": s.fixed,
            "unfixed": s.unfixed,
            "errors": s.errors,
        },
        "exit_code": code,
    }
    return json.dumps(payload, indent=2)
