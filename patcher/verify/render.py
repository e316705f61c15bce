"""The verdict table a user sees, and its JSON twin."""

from __future__ import annotations

import json
import shlex

from rich.console import Console
from rich.table import Table
from rich.text import Text

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
    if not report.passed and report.log_tail:
        console.print(Text("last lines of the launch log:", style="bold"))
        console.print(Text(report.log_tail, style="dim"))
    if report.kept and report.workdir is not None:
        console.print(Text(f"sandbox, logs and outputs kept in {report.workdir}"))
    seconds = f" in {report.outcome.seconds:.1f} s" if report.outcome else ""
    style = "bold green" if report.passed else "bold red"
    console.print(Text(report.verdict + seconds, style=style))


def to_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2)
