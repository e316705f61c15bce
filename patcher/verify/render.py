"""The verdict table a user sees, and its JSON twin."""

from __future__ import annotations

import json
import re
import shlex

from rich.console import Console
from rich.table import Table
from rich.text import Text

from patcher.verify import checks
from patcher.verify.command import Report


def print_report(report: Report, console: Console) -> None:
    target = report.target.name if report.target else "(none: script arguments given)"
    if report.original:
        mode = "original script, unpatched"
    else:
        mode = f"patched copy ({report.fixes} fixes)"
    how = f"{target} (identified by {report.identified_by})"
    console.print(Text.assemble(("target: ", "bold"), how))
    console.print(Text.assemble(("mode: ", "bold"), mode))
    if report.launch_line is not None:
        asked = report.launch_line.processes
        what = f" (asks for {asked} processes; verify runs {report.ranks})" if asked else ""
        console.print(Text.assemble(("launch line: ", "bold"), report.launch_line.shown + what))
        for other in report.launch_line.others:
            console.print(Text.assemble(("not verified: ", "bold yellow"), other))
    if report.family is not None:
        console.print(Text.assemble(("model: ", "bold"), f"tiny local {report.family}"))
    if report.plan is not None:
        cpu = "ACCELERATE_USE_CPU=1 " if report.plan.envs[0].get("ACCELERATE_USE_CPU") else ""
        ran = cpu + shlex.join(["accelerate", "launch", *report.plan.command[3:]])
        if not report.kept and report.workdir is not None:  # removed by now
            ran = ran.replace(str(report.workdir), "<sandbox>")
        console.print(Text.assemble(("command: ", "bold"), ran), soft_wrap=True)
    if report.plan is not None and report.plan.notice:
        console.print(Text.assemble(("notice: ", "bold yellow"), report.plan.notice))
    table = Table(show_lines=False)
    table.add_column("check", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("evidence", overflow="fold")  # paths in full, even when narrow
    for row in report.rows:
        table.add_row(
            row.name,
            Text("pass", style="green") if row.ok else Text("FAIL", style="bold red"),
            Text(row.evidence),
        )
    console.print(table)
    waited = report.longest_wait
    if waited is not None and waited.longest_wait and waited.dist_rank is not None:
        console.print(
            Text(
                f"longest wait in a collective: {waited.label}, {waited.longest_wait:.2f} s in "
                f"{waited.longest_wait_in} (the process-group timeout must exceed this; DDP010)"
            )
        )
    if not report.passed:
        _print_failure(report, console)
    if report.kept and report.workdir is not None:
        console.print(Text(f"sandbox, logs and outputs kept in {report.workdir}"))
    elif not report.passed:
        console.print(Text(KEEP_HINT))
    seconds = f" in {report.outcome.seconds:.1f} s" if report.outcome else ""
    style = "bold green" if report.passed else "bold red"
    console.print(Text(report.verdict + seconds, style=style))


KEEP_HINT = (
    "the sandbox was removed; --keep DIR keeps it (code/, data/, output/, probe/, launch.log)"
)
#: A progress bar's line (tqdm): what every rank prints, interleaved, and never the cause.
_PROGRESS = re.compile(r"\d+%\|")
TAIL_LINES = 15


def _print_failure(report: Report, console: Console) -> None:
    """The end of the traceback of the rank that failed first; without one, when the launcher
    failed, the launch log's last lines without progress bars. Paths into a removed sandbox are
    shown as <sandbox>."""
    root = checks.root_cause(report.records)
    if root is not None and root.exception is not None and root.exception.traceback.strip():
        title = f"{root.label} failed first; the end of its traceback:"
        lines = root.exception.traceback.rstrip().splitlines()
    elif report.outcome is not None and report.outcome.returncode not in (0, None):
        title = "the last lines of the launch log:"
        lines = [line for line in report.log_tail.splitlines() if not _PROGRESS.search(line)]
    else:
        return  # the table says it: no rank failed, the run did something wrong
    text = "\n".join(lines[-TAIL_LINES:])
    if not report.kept and report.workdir is not None:
        text = text.replace(str(report.workdir), "<sandbox>")
    console.print(Text(title, style="bold"))
    console.print(Text(text, style="dim"))


def to_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2)
