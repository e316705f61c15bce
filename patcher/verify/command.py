"""``ddpfix verify``: patch a copy, build tiny inputs, launch N ranks, check what happened.

The user's files are never touched: the script's directory is copied into a sandbox, the copy is
patched with the same engine as ``ddpfix apply`` (unless ``--original``), and the run's outputs,
logs and probe records stay in the sandbox (kept with ``--keep DIR``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patcher.discover import discover
from patcher.engine import process_file
from patcher.launching import declared_flags
from patcher.rule import Rule
from patcher.verify import checks, cmdline, families, health, launch, launchline
from patcher.verify.datasets import generators
from patcher.verify.models import ensure_model
from patcher.verify.probe import ddpfix_protocol as protocol
from patcher.verify.records import RankRecord, read_records
from patcher.verify.targets import Target, TargetError, identify, load_targets

COPY_IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.pyc", ".venv", "venv", "saved_models", "*.bin", "*.safetensors"
)


class SetupError(Exception):
    """Verify could not start (bad arguments, unknown target): exit code 2."""


@dataclass
class Options:
    script: Path
    ranks: int = 2  # per node
    nodes: int = 1
    target: str | None = None
    original: bool = False
    keep: Path | None = None
    timeout: float = 300.0
    script_args: Sequence[str] = ()
    rules: Sequence[Rule] = ()
    health: bool = True
    sentinel: bool = False
    max_steps: int | None = None
    #: The user's launch line instead of ``script``: a shell script (run with ``script_args``)
    #: or a launcher command (``accelerate launch ... run.py ...``); see launchline.
    launch_line: Path | list[str] | None = None
    #: Re-run the test phase in one process on the saved checkpoint (patcher.verify.compare).
    compare_single: bool = False


@dataclass
class Report:
    script: Path
    target: Target | None
    identified_by: str
    original: bool
    ranks: int
    plan: launch.Plan | None = None
    fixes: int = 0
    rows: list[checks.Row] = field(default_factory=list)
    records: list = field(default_factory=list)
    outcome: launch.Outcome | None = None
    workdir: Path | None = None
    nodes: int = 1
    kept: bool = False
    log_tail: str = ""
    model_cached: bool | None = None
    health: list = field(default_factory=list)
    family: str | None = None  # the tiny model's family (patcher.verify.families)
    launch_line: launchline.Launch | None = None  # what the user's launch line runs
    script_args: list[str] = field(default_factory=list)  # what the script was given

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.ok for row in self.rows)

    @property
    def verdict(self) -> str:
        return checks.verdict(self.rows)

    @property
    def longest_wait(self) -> RankRecord | None:
        """The record that waited longest in one collective (or a DDP backward), if any."""
        waited = [r for r in self.records if r.longest_wait is not None]
        return max(waited, key=lambda r: r.longest_wait, default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "script": str(self.script),
            "target": None if self.target is None else self.target.name,
            "identified_by": self.identified_by,
            "mode": "original" if self.original else "patched",
            "fixes_applied": self.fixes,
            "ranks": self.ranks,
            "family": self.family,
            "launch_line": None
            if self.launch_line is None
            else {
                "script": str(self.launch_line.script),
                "command": self.launch_line.shown,
                "processes": self.launch_line.processes,
                "not_verified": self.launch_line.others,
            },
            "script_args": self.script_args,
            "nodes": self.nodes,
            "device": None if self.plan is None else self.plan.device,
            "notice": None if self.plan is None else self.plan.notice,
            "command": None if self.plan is None else self.plan.command,
            "commands": None if self.plan is None else self.plan.commands,
            "seconds": None if self.outcome is None else round(self.outcome.seconds, 2),
            "checks": [row.to_json() for row in self.rows],
            "passed": self.passed,
            "verdict": self.verdict,
            "processes": [record.to_json() for record in self.records],
            "longest_wait": None
            if self.longest_wait is None
            else {
                "rank": self.longest_wait.rank,
                "seconds": self.longest_wait.longest_wait,
                "in": self.longest_wait.longest_wait_in,
            },
            "stacks": {} if self.outcome is None else self.outcome.stacks,
            "workdir": str(self.workdir) if self.kept else None,
            "log_tail": self.log_tail,
            "health": [finding.to_json() for finding in self.health],
        }


def choose_target(options: Options) -> tuple[Target | None, str]:
    targets = load_targets()
    if options.target:
        if options.target not in targets:
            known = ", ".join(sorted(targets))
            raise SetupError(f"unknown target {options.target!r} (known: {known})")
        return targets[options.target], "--target"
    match, scored = identify(options.script, targets)
    if match is not None:
        return match.target, match.how
    if options.script_args:
        return None, "none (running with the arguments after --)"
    # One short line: a wrong --target NAME lists the known names.
    best = scored[0] if scored and scored[0].score > 0 else None
    closest = f"closest: {best.target.name}, {best.score:.0%}; " if best else ""
    raise SetupError(
        f"cannot tell which known script {options.script.name} is ({closest}pass --target NAME "
        "or the script's own arguments after --)"
    )


def _patch_copy(code_dir: Path, rules: Sequence[Rule]) -> int:
    fixes = 0
    for path in discover([code_dir]).files:
        result = process_file(path, rules, write=True)
        if result.error is None:
            fixes += sum(f.fixed for f in result.findings)
    return fixes


def _load_checkpoint(path: Path) -> str | None:
    import torch

    files = [path] if path.is_file() else sorted(path.glob("*.bin")) + sorted(path.glob("*.pt"))
    if path.is_dir() and not files:
        return None if any(path.glob("*.safetensors")) else "no weights file in the directory"
    for file in files:
        try:
            torch.load(file, weights_only=True, map_location="cpu")
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


def run(options: Options, progress: Callable[[str], object] | None = None) -> Report:
    """Do the whole verify; ``progress(message)`` is told what is happening."""
    say = progress or (lambda message: None)
    launched: launchline.Launch | None = None
    if isinstance(options.launch_line, Path) and not options.launch_line.is_file():
        raise SetupError(f"{options.launch_line}: no such file")
    if options.launch_line is not None:
        say("reading the launch line (launchers stood in)")
        try:
            launched = launchline.read(
                options.launch_line, gpus=options.ranks, shell_args=list(options.script_args)
            )
        except (launchline.LaunchLineError, OSError) as exc:
            raise SetupError(str(exc)) from None
        options = dataclasses.replace(options, script=launched.script, script_args=launched.args)
    script = options.script
    if not script.is_file():
        raise SetupError(f"{script}: no such file")
    if options.ranks < 1 or options.nodes < 1:
        raise SetupError("--gpus and --nodes must be at least 1")
    try:
        target, how = choose_target(options)
    except TargetError as exc:
        raise SetupError(str(exc)) from None
    report = Report(script, target, how, options.original, options.ranks * options.nodes)
    report.nodes = options.nodes
    report.launch_line = launched

    if options.keep is not None:
        workdir = options.keep.resolve()
        if workdir.exists() and any(workdir.iterdir()):
            raise SetupError(f"--keep {workdir}: directory exists and is not empty")
        workdir.mkdir(parents=True, exist_ok=True)
        report.kept = True
    else:
        workdir = Path(tempfile.mkdtemp(prefix="ddpfix-verify-"))
    report.workdir = workdir
    try:
        _run_in(workdir, options, report, say)
    finally:
        if not report.kept:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _warm_torch() -> None:
    """Import torch (for the checkpoint checks) while the ranks run, not after."""
    with contextlib.suppress(Exception):
        import torch  # noqa: F401


@dataclass(frozen=True)
class Sandbox:
    """The run's directory: ``code/`` (the patched copy), ``data/``, ``output/``, ``probe/``
    (one events file per process) and ``launch.log``."""

    root: Path

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def probe(self) -> Path:
        return self.root / "probe"

    @property
    def log(self) -> Path:
        return self.root / "launch.log"


@dataclass(frozen=True)
class Inputs:
    """What the script is run with: its arguments and the test keys its results must hold."""

    args: list[str]
    expected_keys: list[str]


def _run_in(workdir: Path, options: Options, report: Report, say: Callable[[str], object]) -> None:
    """The pipeline: sandbox → inputs → probe → launch → collect → checks (into ``report``)."""
    threading.Thread(target=_warm_torch, daemon=True).start()
    box = Sandbox(workdir)
    script = _sandbox(box, options, report, say)
    inputs = _inputs(box, script, options, report, say)
    plan = launch.plan(
        script,
        inputs.args,
        ranks=options.ranks,
        nodes=options.nodes,
        probe_dir=box.probe,
        cwd=box.code,
        cuda_devices=launch.cuda_device_count(),
        extra_env=_probe_settings(options),
    )
    report.plan = plan
    notice = f" ({plan.notice})" if plan.notice else ""
    say(f"launching {options.ranks * options.nodes} rank(s) on {plan.device}{notice}")
    report.outcome = launch.run(
        plan,
        timeout=options.timeout,
        log=box.log,
        probe_dir=box.probe,
        expected=options.ranks * options.nodes,
    )
    say("checking the results")
    lines = _collect(box, report)
    report.rows = checks.evaluate(
        _run_data(box, report, options, inputs, lines), _expectations(report, options, inputs)
    )
    if options.health:
        report.health = health.findings(report.records)
    target = report.target
    if options.compare_single and target is not None and options.max_steps is None:
        if report.passed:
            from patcher.verify import compare

            say("running the test phase in one process on the saved checkpoint")
            results = [r.path for r in target.results]
            report.rows.append(
                compare.compare(
                    script, inputs.args, box.output, results, cwd=box.code, timeout=options.timeout
                )
            )


def _sandbox(box: Sandbox, options: Options, report: Report, say: Callable[[str], object]) -> Path:
    """Copy the script's directory into the sandbox and patch the copy (unless --original);
    returns the copy of the script."""
    say(f"copying {options.script.parent} into the sandbox")
    shutil.copytree(options.script.parent, box.code, ignore=COPY_IGNORE, symlinks=True)
    for directory in (box.data, box.output, box.probe):
        directory.mkdir()
    if not options.original:
        say("patching the copy")
        report.fixes = _patch_copy(box.code, options.rules)
    return box.code / options.script.name


def _inputs(
    box: Sandbox, script: Path, options: Options, report: Report, say: Callable[[str], object]
) -> Inputs:
    """The tiny model of the run's family, the target's synthetic data, and the arguments:
    the user's (capped), with the target's paths and harness flags merged in."""
    target = report.target
    expected_keys: list[str] = []
    args = cmdline.shrink(options.script_args)
    source = script.read_text(encoding="utf-8", errors="replace")
    chosen = families.family(args, source, target.model_type if target is not None else None)
    report.family = chosen
    model_dir: Path | None = None
    if chosen is not None:
        width = target.hidden_size if target is not None else 0
        wide = f", {width} wide" if width else ""
        say(f"building a tiny {chosen} model{wide} (cached after the first run)")
        model_dir, report.model_cached = ensure_model(chosen, width)
        args = families.substitute_models(args, str(model_dir))
    if target is not None:
        assert model_dir is not None
        say(f"writing synthetic {target.dataset} data")
        expected_keys = generators()[target.dataset](box.data)
        if target.data_at:
            _place_data(box, target.data_at)
        own = target.script_args(model=model_dir, data=box.data, output=box.output)
        if (
            chosen is not None
            and chosen != target.model_type
            and not families.flag_values(args, ("--model_type",))
        ):
            own = cmdline.set_value(own, "--model_type", families.model_type_value(chosen))
        declared = declared_flags(script)
        digest = hashlib.sha256(options.script.read_bytes()).hexdigest()  # the user's, unpatched
        if declared and digest != target.sha256:
            # a fork or a sibling script: the target's flags it does not declare would stop it
            # at argparse; the user's own flags stay whatever they are. (No flags declared in
            # the file: it parses elsewhere, CodeT5's configs.py; nothing is dropped.)
            own = cmdline.only_declared(own, declared)
        args = cmdline.merge(args, own, target.harness_flags)
    report.script_args = args
    return Inputs(args, expected_keys)


def _place_data(box: Sandbox, relative: str) -> None:
    """Make the synthetic data visible where the script reads it without a flag (a link to
    ``data/``); a directory the copied code already has there is an error, not overwritten."""
    link = Path(os.path.normpath(box.code / relative))
    if link.exists() or link.is_symlink():
        raise SetupError(f"the target puts its data at {relative}: the sandbox has that path")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(box.data, target_is_directory=True)


def _probe_settings(options: Options) -> dict[str, str]:
    """What the probe in every rank is asked to record, and when to stop (its environment)."""
    settings = {protocol.ENV_HEALTH: "1" if options.health else "0"}
    if options.health and options.sentinel:
        settings[protocol.ENV_SENTINEL] = "1"
    if options.max_steps is not None:
        settings[protocol.ENV_MAX_STEPS] = str(options.max_steps)
    return settings


def _collect(box: Sandbox, report: Report) -> list[str]:
    """Read back what every process recorded, and the launch log's lines."""
    report.records = read_records(box.probe)
    lines = box.log.read_text(errors="replace").splitlines() if box.log.exists() else []
    report.log_tail = "\n".join(lines[-25:])
    return lines


def _expectations(report: Report, options: Options, inputs: Inputs) -> checks.Expectations:
    """What the target promises; with --max-steps or without a target, only the rank, exit,
    hang, replica (and health) checks have something to hold the run to."""
    target = report.target
    full_run = target is not None and options.max_steps is None
    return checks.Expectations(
        ranks=options.ranks * options.nodes,
        checkpoints=target.checkpoints if full_run and target else (),
        results=tuple(
            checks.Results(r.path, r.format, tuple(inputs.expected_keys)) for r in target.results
        )
        if full_run and target
        else (),
        evaluation=full_run,
        health=options.health,
    )


def _run_data(
    box: Sandbox, report: Report, options: Options, inputs: Inputs, lines: list[str]
) -> checks.Run:
    outcome = report.outcome
    assert outcome is not None
    return checks.Run(
        records=report.records,
        returncode=outcome.returncode,
        timed_out=outcome.timed_out,
        timeout=options.timeout,
        output_dir=box.output,
        stacks=outcome.stacks,
        log_tail="\n".join(lines[-200:]),
        load_checkpoint=_load_checkpoint,
        script_args=tuple(inputs.args),
    )
