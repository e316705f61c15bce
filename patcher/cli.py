"""The ``ddpfix`` command line (ruff/black habits: ``--diff``, ``--check``, exit codes 0/1/2).

Exit codes: 0 nothing to do or everything fixed; 1 files would change (``--check``) or findings
have no automatic fix; 2 usage error, unreadable or unparseable file, I/O error.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import List, NoReturn, Optional  # noqa: UP035 - typer needs runtime types on Python 3.9

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from patcher import __version__
from patcher.config import Config, ConfigError, check_rule_options, load_config
from patcher.discover import discover
from patcher.engine import FileResult, process_file
from patcher.helptext import HelpCommand
from patcher.pipes import die_on_broken_pipe, end_quietly, raise_on_broken_pipe
from patcher.registry import (
    SelectionError,
    companion_warnings,
    every_rule,
    find_rule,
    select_rules,
)
from patcher.report import exit_code, print_text, to_json
from patcher.rule import Rule
from patcher.suppress import file_codes, unknown_selectors

app = typer.Typer(
    name="ddpfix",
    help=(
        "Make legacy PyTorch research scripts train correctly under torchrun / accelerate "
        "launch: codemods that rewrite them in place, keeping formatting and comments."
    ),
    epilog=(
        "Exit codes: 0 nothing to do or everything fixed; 1 files would change (--check, "
        "check), or findings have no automatic fix (apply; check with --strict); 2 usage "
        "error, unreadable or unparseable file, I/O error."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class Format(str, Enum):
    text = "text"
    json = "json"


class _Console(Console):
    def on_broken_pipe(self) -> None:  # rich's own exits 1, like "files would change"
        end_quietly()


def _consoles() -> tuple[Console, Console]:
    out = _Console(markup=False, highlight=False, soft_wrap=True)
    err = _Console(stderr=True, markup=False, highlight=False, soft_wrap=True)
    return out, err


def _split(values: list[str]) -> list[str]:
    return [part for value in values for part in value.split(",") if part.strip()]


def _exit_now(code: int) -> NoReturn:
    """Leave at once, skipping interpreter finalization: a Ctrl-C can land while verify's
    background ``import torch`` (``command._warm_torch``) is half done, and finalizing then may
    wait on it (twice in CI a Ctrl-C'd verify had not exited after 30 and 90 s; not reproduced
    here). Every launched process is already killed and the sandbox removed by now; only the
    streams need flushing."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _fail(message: str) -> typer.Exit:
    _, err = _consoles()
    err.print(Text.assemble(("error: ", "bold red"), message))
    return typer.Exit(code=2)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ddpfix {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """ddpfix: codemods for legacy PyTorch DDP scripts."""


PATHS = typer.Argument(
    ..., metavar="PATH...", help="Files or directories (directories are searched for *.py)."
)
SELECT = typer.Option(
    None,
    "--select",
    metavar="CODES",
    help="Rule codes or prefixes to run (comma-separated or repeated; ALL for every rule). "
    "Replaces [tool.ddpfix] select.",
)
IGNORE = typer.Option(
    None,
    "--ignore",
    metavar="CODES",
    help="Rule codes or prefixes to skip. Replaces [tool.ddpfix] ignore.",
)
EXCLUDE = typer.Option(
    None,
    "--exclude",
    metavar="GLOBS",
    help="Glob patterns of paths to skip. Replaces [tool.ddpfix] exclude.",
)
FORCE_EXCLUDE = typer.Option(
    False,
    "--force-exclude",
    help="Apply exclusions to files named on the command line too (as pre-commit passes them).",
)
FORMAT = typer.Option(Format.text, "--format", help="Output format.")
STRICT = typer.Option(
    False, "--strict", help="With --check/check: also exit 1 on findings that have no autofix."
)
SHOW_SUPPRESSED = typer.Option(
    False,
    "--show-suppressed",
    help="Also list findings suppressed by '# ddpfix: ignore[CODE]' comments or "
    "per-file-ignores, marked (suppressed); they still never affect the exit code.",
)


def _configured_rules(
    paths: list[Path],
    select: Optional[List[str]],  # noqa: UP006, UP045
    ignore: Optional[List[str]],  # noqa: UP006, UP045
) -> tuple[Config, list]:
    """The nearest ``[tool.ddpfix]`` and the rules it and the flags select (flags win)."""
    try:
        config = load_config(paths)
        check_rule_options(config, every_rule())
        rules = select_rules(
            every_rule(),
            _split(select) if select is not None else config.select,
            _split(ignore) if ignore is not None else config.ignore,
        )
    except (ConfigError, SelectionError) as exc:
        raise _fail(str(exc)) from None
    codes = [rule.code for rule in every_rule()] if config.per_file_ignores else []
    for pattern, selectors in config.per_file_ignores:
        unknown = unknown_selectors(selectors, codes)
        if unknown:  # a misspelt code would otherwise suppress nothing, silently
            known = ", ".join(codes)
            where = f"{config.path}: [tool.ddpfix] per-file-ignores {pattern!r}"
            raise _fail(f"{where}: unknown rule selector {unknown[0]!r} (known: ALL, {known})")
    return config, rules


def _run(
    paths: list[Path],
    *,
    check: bool,
    diff: bool,
    select: Optional[List[str]],  # noqa: UP006, UP045
    ignore: Optional[List[str]],  # noqa: UP006, UP045
    exclude: Optional[List[str]],  # noqa: UP006, UP045
    force_exclude: bool,
    output: Format,
    strict: bool = False,
    show_suppressed: bool = False,
) -> None:
    out, err = _consoles()
    config, rules = _configured_rules(paths, select, ignore)
    if not rules:
        raise _fail("no rule selected (check --select / --ignore)")
    for warning in companion_warnings(rules):
        err.print(Text.assemble(("warning: ", "bold yellow"), warning))

    found = discover(
        paths,
        _split(exclude) if exclude is not None else config.exclude,
        force_exclude=force_exclude,
    )
    results: list[FileResult] = [
        FileResult(path=path, error="no such file or directory") for path in found.missing
    ]
    for directory in found.empty_dirs:
        err.print(
            Text.assemble(("warning: ", "bold yellow"), f"{directory}: no Python files found")
        )
    write = not (check or diff)
    for path in found.files:
        suppress = file_codes(path, config.per_file_ignores, config.root)
        results.append(
            process_file(
                path,
                rules,
                config.rule_options,
                write=write,
                suppress=suppress,
                named=path in found.named,
            )
        )
    results.sort(key=lambda r: r.path.as_posix())

    code = exit_code(results, check=check, strict=strict)
    if output is Format.json:
        document = to_json(
            results, check=not write, diff=diff, code=code, show_suppressed=show_suppressed
        )
        out.print(Text(document))
    else:
        print_text(
            results, check=not write, diff=diff, out=out, err=err, show_suppressed=show_suppressed
        )
    raise typer.Exit(code=code)


@app.command(cls=HelpCommand)
def apply(
    paths: List[Path] = PATHS,  # noqa: UP006
    diff: bool = typer.Option(False, "--diff", help="Print a unified diff; write nothing."),
    check: bool = typer.Option(
        False, "--check", help="Write nothing; exit 1 if any file would change."
    ),
    select: Optional[List[str]] = SELECT,  # noqa: UP006, UP045
    ignore: Optional[List[str]] = IGNORE,  # noqa: UP006, UP045
    exclude: Optional[List[str]] = EXCLUDE,  # noqa: UP006, UP045
    force_exclude: bool = FORCE_EXCLUDE,
    output: Format = FORMAT,
    strict: bool = STRICT,
    show_suppressed: bool = SHOW_SUPPRESSED,
) -> None:
    """Rewrite scripts in place (atomically), printing what each rule changed."""
    _run(
        paths,
        check=check,
        diff=diff,
        select=select,
        ignore=ignore,
        exclude=exclude,
        force_exclude=force_exclude,
        output=output,
        strict=strict,
        show_suppressed=show_suppressed,
    )


@app.command(cls=HelpCommand)
def check(
    paths: List[Path] = PATHS,  # noqa: UP006
    select: Optional[List[str]] = SELECT,  # noqa: UP006, UP045
    ignore: Optional[List[str]] = IGNORE,  # noqa: UP006, UP045
    exclude: Optional[List[str]] = EXCLUDE,  # noqa: UP006, UP045
    force_exclude: bool = FORCE_EXCLUDE,
    output: Format = FORMAT,
    strict: bool = STRICT,
    show_suppressed: bool = SHOW_SUPPRESSED,
) -> None:
    """Same as apply --check --diff: show what would change; exit 1 if anything would."""
    apply(
        paths,
        diff=True,
        check=True,
        select=select,
        ignore=ignore,
        exclude=exclude,
        force_exclude=force_exclude,
        output=output,
        strict=strict,
        show_suppressed=show_suppressed,
    )


@app.command(cls=HelpCommand)
def rules(
    markdown: bool = typer.Option(
        False, "--markdown", help="Print the README's rules table (generated from the rules)."
    ),
) -> None:
    """List every rule: code, name, and what it does."""
    if markdown:
        typer.echo(rules_markdown(every_rule()), nl=False)
        return
    out, _ = _consoles()
    table = Table(title="ddpfix rules", show_lines=False)
    table.add_column("Code", style="bold magenta", no_wrap=True)
    table.add_column("Name", overflow="fold")
    table.add_column("What it does", overflow="fold")
    for rule in every_rule():
        table.add_row(rule.code, rule.name, rule.summary)
    out.print(table)


def rules_markdown(rules: Sequence[Rule]) -> str:
    """The README's rules table: one row a rule, from its code, name and summary (the README
    holds this text between its ``rules-table`` markers; a test keeps the two equal)."""
    lines = ["| code | name | what it does |", "| --- | --- | --- |"]
    for rule in rules:
        summary = rule.summary.replace("|", "\\|")
        lines.append(f"| {rule.code} | {rule.name} | {summary} |")
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    """A default as it is written in pyproject.toml."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return f'"{value}"' if isinstance(value, str) else str(value)


@app.command(cls=HelpCommand)
def explain(
    code: str = typer.Argument(..., metavar="CODE", help="A rule code (DDP003) or name."),
) -> None:
    """Show a rule's rationale and its before/after examples."""
    rule = find_rule(code)
    if rule is None:
        known = ", ".join(r.code for r in every_rule())
        raise _fail(f"unknown rule {code!r} (known: {known})")
    out, _ = _consoles()
    out.print(Text(f"{rule.code} {rule.name}", style="bold"))
    out.print(Text(rule.summary))
    out.print()
    out.print(Text(_body(rule.rationale, rule.code)))
    if rule.options:
        out.print()
        out.print(Text(f"Options, in [tool.ddpfix.rules.{rule.code}]:", style="bold"))
        for name, option in rule.options.items():
            out.print(Text(f"  {name} = {_toml(option.default)}: {option.help}"))
    for number, example in enumerate(rule.examples, start=1):
        out.print()
        label = "changed" if example.after is not None else "left unchanged"
        out.print(Text(f"Example {number} ({label}):", style="bold"))
        out.print(Text(_indent(example.before)))
        if example.after is not None:
            out.print(Text("becomes:", style="bold"))
            out.print(Text(_indent(example.after)))


@app.command(
    cls=HelpCommand,
    epilog="Exit codes: 0 every check passed; 1 a check failed; 2 usage or setup error.",
)
def verify(
    script: Path = typer.Argument(
        ...,
        metavar="SCRIPT",
        help="The training script, or the launch script (run.sh) that starts it, or (after --) "
        "the launch command itself: accelerate launch / torchrun / python ... run.py ...",
    ),
    script_args: Optional[List[str]] = typer.Argument(  # noqa: UP006, UP045
        None,
        metavar="[-- ARGS...]",
        help="Extra arguments for the script (after --); for run.sh, its $1, $2, ...",
    ),
    gpus: int = typer.Option(
        2, "--gpus", help="Ranks per node (on the CPU with gloo when there are fewer GPUs)."
    ),
    nodes: int = typer.Option(
        1, "--nodes", help="Simulated nodes: launchers meeting at a local rendezvous."
    ),
    target: Optional[str] = typer.Option(  # noqa: UP045
        None, "--target", help="A known target by name (default: identify the script)."
    ),
    original: bool = typer.Option(
        False, "--original", help="Run the script as it is, unpatched, to show what breaks."
    ),
    keep: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--keep", metavar="DIR", help="Keep the sandbox, logs and outputs in DIR."
    ),
    timeout: float = typer.Option(300.0, "--timeout", metavar="S", help="Seconds before a hang."),
    no_health: bool = typer.Option(
        False, "--no-health", help="Skip the training-health checks (orphaned parameters...)."
    ),
    health: Optional[List[str]] = typer.Option(  # noqa: UP006, UP045
        None,
        "--health",
        metavar="CHECK",
        help="Opt-in health checks: sentinel (negative indices clamped into an embedding).",
    ),
    max_steps: Optional[int] = typer.Option(  # noqa: UP045
        None, "--max-steps", metavar="K", help="Stop every rank cleanly after K optimizer steps."
    ),
    compare_single: bool = typer.Option(
        False,
        "--compare-single",
        help="Then run the test phase in one process on the saved checkpoint: the results "
        "files must be byte-identical.",
    ),
    select: Optional[List[str]] = SELECT,  # noqa: UP006, UP045
    ignore: Optional[List[str]] = IGNORE,  # noqa: UP006, UP045
    output: Format = FORMAT,
) -> None:
    """Run the patched script under accelerate with N ranks on a tiny local model and check it."""
    raise_on_broken_pipe()  # a closed pipe must not kill verify before it kills its ranks
    try:
        _verify(
            script,
            script_args,
            gpus=gpus,
            nodes=nodes,
            target=target,
            original=original,
            keep=keep,
            timeout=timeout,
            no_health=no_health,
            health=health,
            max_steps=max_steps,
            compare_single=compare_single,
            select=select,
            ignore=ignore,
            output=output,
        )
    except BrokenPipeError:  # every launched process is gone by now (command.run's finally)
        end_quietly()


def _verify(
    script: Path,
    script_args: list[str] | None,
    *,
    gpus: int,
    nodes: int,
    target: str | None,
    original: bool,
    keep: Path | None,
    timeout: float,
    no_health: bool,
    health: list[str] | None,
    max_steps: int | None,
    compare_single: bool,
    select: list[str] | None,
    ignore: list[str] | None,
    output: Format,
) -> None:
    from patcher.verify import extra

    if extra.missing() is not None:
        raise _fail(extra.INSTALL)
    from patcher.verify import command
    from patcher.verify.render import print_report, to_json

    out, err = _consoles()
    unknown = sorted(set(health or []) - {"sentinel"})
    if unknown:
        raise _fail(f"unknown --health check(s): {', '.join(unknown)} (known: sentinel)")
    from patcher.verify.launchline import LAUNCHERS

    launch_line: Path | list[str] | None = None
    if script.suffix == ".sh":
        launch_line = script
    elif not script.exists() and script.name in LAUNCHERS:
        launch_line = [str(script), *(script_args or [])]
        script_args = []
    _, rules = _configured_rules([script if launch_line is None else Path.cwd()], select, ignore)
    options = command.Options(
        launch_line=launch_line,
        script=script,
        ranks=gpus,
        nodes=nodes,
        target=target,
        original=original,
        keep=keep,
        timeout=timeout,
        script_args=list(script_args or []),
        rules=rules,
        health=not no_health,
        sentinel="sentinel" in (health or []),
        max_steps=max_steps,
        compare_single=compare_single,
    )
    try:
        if output is Format.json:
            report = command.run(options)
        elif err.is_terminal:
            with err.status("verify: starting") as status:
                report = command.run(options, progress=lambda m: status.update(f"verify: {m}"))
        else:  # a CI log: one line per stage, so a slow run shows where it is
            report = command.run(options, progress=lambda m: err.print(Text(f"verify: {m}")))
    except command.SetupError as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        err.print(Text("interrupted: every launched process was killed", style="bold red"))
        _exit_now(130)
    if output is Format.json:
        out.print(Text(to_json(report)))
    else:
        print_report(report, out)
    out.file.flush()  # a reader that left shows here, as BrokenPipeError, not at exit
    raise typer.Exit(code=0 if report.passed else 1)


@app.command(cls=HelpCommand)
def plan(
    global_batch: int = typer.Option(..., "--global-batch", help="The global batch you want."),
    per_gpu_batch: int = typer.Option(..., "--per-gpu-batch", help="The batch one GPU holds."),
    max_gpus: int = typer.Option(8, "--max-gpus", help="Rows from 1 to this many GPUs."),
) -> None:
    """Gradient accumulation for 1..8 GPUs and the global batch each really gives."""
    from patcher.batching import table

    if global_batch <= 0 or per_gpu_batch <= 0 or max_gpus <= 0:
        raise _fail("--global-batch, --per-gpu-batch and --max-gpus must be positive")
    out, _ = _consoles()
    grid = Table(title=f"global batch {global_batch}, {per_gpu_batch} per GPU")
    for column in ("GPUs", "per GPU", "accumulation", "global batch", "exact"):
        grid.add_column(column, justify="right")
    for ranks, per_gpu, accumulation, effective, exact in table(
        global_batch, per_gpu_batch, max_gpus
    ):
        grid.add_row(
            str(ranks),
            str(per_gpu),
            str(accumulation),
            str(effective),
            Text("yes", style="green") if exact else Text(f"no ({effective})", style="red"),
        )
    out.print(grid)


@app.command(
    cls=HelpCommand, epilog="Exit code: the script's own; 2 when the launch cannot be planned."
)
def launch(
    script: Path = typer.Argument(..., metavar="SCRIPT", help="The training script."),
    script_args: Optional[List[str]] = typer.Argument(  # noqa: UP006, UP045
        None, metavar="[-- SCRIPT ARGS...]", help="Arguments for the script (after --)."
    ),
    global_batch: int = typer.Option(..., "--global-batch", help="Exact global batch."),
    per_gpu_batch: Optional[int] = typer.Option(  # noqa: UP045
        None, "--per-gpu-batch", help="Per-GPU batch (default: global batch / ranks)."
    ),
    gpus: Optional[int] = typer.Option(  # noqa: UP045
        None, "--gpus", help="Ranks (default: the CUDA devices, or 1)."
    ),
    allow_inexact: bool = typer.Option(
        False, "--allow-inexact", help="Proceed (loudly) when no exact split exists."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the command; run nothing."),
    batch_flag: str = typer.Option(
        "--train_batch_size", "--batch-flag", help="The script's per-process batch flag."
    ),
    accumulation_flag: str = typer.Option(
        "--gradient_accumulation_steps", "--accumulation-flag", help="Its accumulation flag."
    ),
    num_machines: Optional[int] = typer.Option(  # noqa: UP045
        None, "--num-machines", "--nodes", help="Nodes in the job (one launcher per node)."
    ),
    machine_rank: Optional[int] = typer.Option(  # noqa: UP045
        None, "--machine-rank", "--node-rank", help="This node's index, 0..nodes-1."
    ),
    main_process_ip: Optional[str] = typer.Option(  # noqa: UP045
        None, "--main-process-ip", help="Address of the node with rank 0."
    ),
    main_process_port: Optional[int] = typer.Option(  # noqa: UP045
        None, "--main-process-port", help="Its rendezvous port (default: a free one)."
    ),
    config_file: Optional[Path] = typer.Option(  # noqa: UP045
        None,
        "--config-file",
        help="An accelerate config (num_machines, machine_rank, main_process_ip/port, "
        "num_processes = the total); flags given here override it.",
    ),
) -> None:
    """Run SCRIPT under accelerate with per-GPU batch x ranks x accumulation = global batch.

    The ranks are --gpus per node times the nodes; run one launcher per node (SLURM: srun)."""
    raise_on_broken_pipe()  # `launch ... | head`: the training is killed before ddpfix ends
    from patcher.launching import (
        LaunchError,
        Machines,
        plan_launch,
        read_accelerate_config,
        run_launch,
    )
    from patcher.verify.launch import cuda_device_count

    out, err = _consoles()
    if not script.is_file():
        raise _fail(f"{script}: no such file")
    try:
        machines, total = Machines(), None
        if config_file is not None:
            machines, total = read_accelerate_config(config_file)
        machines = Machines(
            nodes=num_machines if num_machines is not None else machines.nodes,
            node_rank=machine_rank if machine_rank is not None else machines.node_rank,
            main_ip=main_process_ip or machines.main_ip,
            main_port=main_process_port if main_process_port is not None else machines.main_port,
        )
        if gpus is None and total is not None:
            if total % machines.nodes:
                raise LaunchError(
                    f"{config_file}: num_processes {total} is not a multiple of "
                    f"{machines.nodes} machines"
                )
            gpus = total // machines.nodes
        launch_plan = plan_launch(
            script,
            list(script_args or []),
            global_batch=global_batch,
            per_gpu=per_gpu_batch,
            gpus=gpus,
            cuda_devices=cuda_device_count(),
            allow_inexact=allow_inexact,
            batch_flag=batch_flag,
            accumulation_flag=accumulation_flag,
            machines=machines,
        )
    except (LaunchError, ValueError) as exc:
        raise _fail(str(exc)) from None
    split = launch_plan.split
    over = (
        f" ({machines.nodes} nodes x {split.ranks // machines.nodes})" if machines.nodes > 1 else ""
    )
    err.print(
        Text(
            f"global batch {split.global_batch} = {split.per_gpu} per GPU x {split.ranks} "
            f"rank(s){over} x {split.accumulation} accumulation step(s)"
        )
    )
    for warning in launch_plan.warnings:
        err.print(Text.assemble(("warning: ", "bold red"), warning))
    if launch_plan.notice:
        err.print(Text.assemble(("notice: ", "bold yellow"), launch_plan.notice))
    out.print(Text(launch_plan.shell()))
    if dry_run:
        raise typer.Exit(code=0)
    err.print(Text(f"log: {launch_plan.log}"))
    code = run_launch(launch_plan, echo=lambda line: out.print(Text(line)))
    raise typer.Exit(code=code)


upstream_app = typer.Typer(
    help="Pins of the upstream scripts ddpfix targets, and drift of a checkout from them.",
    no_args_is_help=True,
)
app.add_typer(upstream_app, name="upstream")
MANIFESTS = typer.Option(
    None, "--manifests", metavar="DIR", help="Manifest directory (default: ddpfix's upstream/)."
)


@upstream_app.command("pin", cls=HelpCommand)
def upstream_pin(
    checkout: Path = typer.Option(..., "--checkout", help="A local checkout of the repository."),
    repo: str = typer.Option(..., "--repo", help="owner/name of the repository."),
    commit: Optional[str] = typer.Option(  # noqa: UP045
        None, "--commit", help="The commit checked out (default: git rev-parse HEAD there)."
    ),
    output: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--output", help="Write the manifest here (default: stdout)."
    ),
) -> None:
    """Write the manifest of every script in CHECKOUT that some rule changes or reports."""
    import subprocess

    from patcher.upstream import pin

    if not checkout.is_dir():
        raise _fail(f"{checkout}: not a directory")
    if commit is None:
        run = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True
        )
        if run.returncode != 0:
            raise _fail(f"{checkout}: not a git checkout; pass --commit")
        commit = run.stdout.strip()
    text = pin(checkout, repo, commit)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


@upstream_app.command("status", cls=HelpCommand)
def upstream_status(
    checkout: Path = typer.Option(..., "--checkout", help="A local checkout to compare."),
    repo: Optional[str] = typer.Option(None, "--repo", help="owner/name (default: inferred)."),  # noqa: UP045
    verify: bool = typer.Option(False, "--verify", help="Also verify changed scripts."),
    manifests: Optional[Path] = MANIFESTS,  # noqa: UP045
    output: Format = FORMAT,
) -> None:
    """Unchanged / changed / missing pinned scripts, and whether a change breaks the patch."""
    from patcher.upstream import MANIFEST_DIR, status

    if not checkout.is_dir():
        raise _fail(f"{checkout}: not a directory")

    def run_verify(path: Path) -> str | None:
        import json
        import subprocess

        run = subprocess.run(
            [sys.executable, "-m", "patcher", "verify", str(path), "--format", "json"],
            capture_output=True,
            text=True,
        )
        if run.returncode == 2:
            return None  # not a verify target
        return None if run.returncode == 0 else json.loads(run.stdout)["verdict"]

    drifts = status(checkout, repo, manifests or MANIFEST_DIR, run_verify if verify else None)
    broken = any(d.broken for d in drifts)
    out, err = _consoles()
    if output is Format.json:
        import json

        payload = {"files": [d.to_json() for d in drifts], "broken": broken}
        out.print(Text(json.dumps(payload, indent=2)))
    else:
        grid = Table(title=f"upstream status of {checkout}")
        # A CI log must name the whole path, unbroken: the path column takes what it needs.
        longest = max((len(d.path) for d in drifts), default=4)
        grid.add_column("path", overflow="fold", min_width=longest)
        grid.add_column("state", no_wrap=True)
        grid.add_column("problems", overflow="fold")
        for drift in drifts:
            style = "red" if drift.broken else ("yellow" if drift.state != "unchanged" else "")
            grid.add_row(drift.path, Text(drift.state, style=style), "; ".join(drift.problems))
        out.print(grid)
        states = {
            s: sum(d.state == s for d in drifts) for s in ("unchanged", "changed", "missing", "new")
        }
        summary = ", ".join(f"{n} {s}" for s, n in states.items() if n)
        verdict = "drift breaks a patch" if broken else "no patch broken"
        err.print(Text(f"{summary or 'nothing pinned here'}; {verdict}"))
    raise typer.Exit(code=1 if broken else 0)


def _body(rationale: str, code: str) -> str:
    """The rationale without its title line (``DDP003 name: ...``): the summary says it."""
    text = rationale.strip()
    title, _, rest = text.partition("\n\n")
    return rest.strip() if title.startswith(f"{code} ") and rest.strip() else text


def _indent(code: str) -> str:
    return "".join(f"    {line}" for line in code.splitlines(keepends=True)).rstrip("\n")


def main() -> None:
    die_on_broken_pipe()  # `ddpfix ... | head` ends quietly (verify restores Python's default)
    try:
        app(prog_name="ddpfix")  # also under `python -m patcher`
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
