"""The verdict: each check is a row (pass/fail + evidence), computed from plain data.

Checks take what the probe recorded, how the launch ended and what the target promises, and
nothing else, so each is testable with crafted records. The verdict names the first failing
check in the order below, which is the order causes come in: ranks that never joined explain a
crash, a crash explains a missing checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from patcher.verify import artifacts, health
from patcher.verify.records import Exception_, RankRecord


@dataclass(frozen=True)
class Row:
    name: str
    ok: bool
    evidence: str

    def to_json(self) -> dict[str, object]:
        return {"check": self.name, "ok": self.ok, "evidence": self.evidence}


@dataclass(frozen=True)
class Results:
    """A results file the run must produce: one line per test example, in dataset order."""

    path: str  # relative to the output directory
    format: str  # "tsv:N" (first N tab-separated columns) or "jsonl:FIELD"
    expected: tuple[str, ...]  # keys of the test examples, in file order


@dataclass(frozen=True)
class Expectations:
    ranks: int
    checkpoints: tuple[str, ...] = ()
    results: tuple[Results, ...] = ()
    evaluation: bool = True
    health: bool = True  # the training-health check (``--no-health`` drops its row)


@dataclass
class Run:
    """Everything the checks look at."""

    records: list[RankRecord]
    returncode: int | None
    timed_out: bool
    timeout: float
    output_dir: Path
    stacks: dict[int, str] = field(default_factory=dict)
    log_tail: str = ""
    load_checkpoint: Callable[[Path], str | None] | None = None  # None when it loads
    script_args: tuple[str, ...] = ()  # what verify passed to the script


def _ranks_text(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


def ranks_joined(run: Run, expect: Expectations) -> Row:
    n = expect.ranks
    records = run.records
    name = "ranks joined"
    if len(records) != n:
        return Row(name, False, f"{len(records)} of {n} processes started")
    if n == 1:
        return Row(name, True, "1 process")
    alone = [r for r in records if r.dist_rank is None]
    if len(alone) == len(records):
        early = _setup_failure(alone, run)
        if early is not None:
            return Row(name, False, early)
        return Row(
            name,
            False,
            f"{n} processes, torch.distributed never initialised: every process ran as rank -1 "
            "(the script does not read LOCAL_RANK)",
        )
    if alone:
        who = ", ".join(r.label for r in alone)
        return Row(name, False, f"{len(alone)} of {n} processes never joined: {who}")
    ranks = sorted(r.rank for r in records)
    worlds = sorted({r.dist_world_size for r in records}, key=lambda w: w or 0)
    if ranks != list(range(n)) or worlds != [n]:
        found = f"ranks {_ranks_text(ranks)} with world sizes {worlds}"
        return Row(name, False, f"{found}, not 0..{n - 1}")
    backends = ", ".join(sorted({r.backend or "?" for r in records}))
    steps = [r.steps for r in records if r.steps is not None]
    stepped = "" if len(steps) < len(records) else f", {_ranks_text(steps)} optimizer steps"
    joined = f"{n} processes, ranks {_ranks_text(ranks)}, world size {n} ({backends})"
    return Row(name, True, joined + stepped)


def _error_line(log_tail: str) -> str | None:
    """The script's own last error message in the log (argparse and friends)."""
    for line in reversed(log_tail.splitlines()):
        text = line.strip()
        if "error:" in text and not text.startswith(("torch.distributed", "[")):
            return text
    return None


#: Import names whose package is called otherwise on the package index.
PACKAGES = {
    "sklearn": "scikit-learn",
    "tree_sitter": "tree-sitter",
    "yaml": "pyyaml",
    "cv2": "opencv-python",
    "bs4": "beautifulsoup4",
    "Levenshtein": "python-Levenshtein",
    "tensorboardX": "tensorboardX",
    "sentencepiece": "sentencepiece",
    "apex": "NVIDIA apex, built from source",
}


def install_hint(summary: str) -> str:
    """``(pip install fairseq)`` for a missing module; empty for other errors."""
    if not summary.startswith(("ModuleNotFoundError", "ImportError")):
        return ""
    match = re.search(r"No module named '([\w.]+)'", summary)
    if match is None:
        return ""
    top = match.group(1).split(".")[0]
    package = PACKAGES.get(top)
    if package is None:
        guess = top.replace("_", "-")
        return f" (pip install {guess}, or a module of the script's repository not beside it)"
    return f" ({package})" if " " in package else f" (pip install {package})"


def _setup_failure(alone: list[RankRecord], run: Run) -> str | None:
    """Why no process joined, when it died before it could set up distribution: an import, the
    argument parser, or another exception before any training step. None when the processes
    really ran (and trained) as rank -1.

    A process that took optimizer steps trained alone, so its later failure (often one process
    reading a checkpoint another is still writing) is a consequence, reported by its own row.
    """
    for record in sorted(alone, key=lambda r: r.env_rank if r.env_rank is not None else 1 << 30):
        if record.steps:
            continue
        who = f"rank {record.env_rank}" if record.env_rank is not None else record.label
        if record.exception is not None:
            summary = record.exception.summary.splitlines()[0][:240]
            if record.exception.type in ("ModuleNotFoundError", "ImportError"):
                return f"{who} failed at import: {record.exception.message}{install_hint(summary)}"
            return (
                f"{who} raised {summary} before it could set up distribution"
                f"{_library_hint(record.exception) or _hint(summary)}"
            )
        if record.exit_code not in (0, None):
            said = _error_line(run.log_tail)
            if said and record.exit_code == 2:  # argparse's exit: its message is the cause
                flags = sorted({a.partition("=")[0] for a in run.script_args if a.startswith("--")})
                return said + (f" (verify passed {', '.join(flags)})" if flags else "")
            return f"{who} exited with code {record.exit_code} before joining" + (
                f": {said}" if said else ""
            )
    return None


def no_hang(run: Run, expect: Expectations) -> Row:
    name = "no hang"
    if not run.timed_out:
        return Row(name, True, f"finished within {run.timeout:g} s")
    where = []
    for record in run.records:
        stack = run.stacks.get(record.pid)
        if stack:
            lines = (line.strip() for line in stack.splitlines())
            frames = [line for line in lines if line.startswith("File")]
            if frames:
                where.append(f"{record.label} at {frames[0]}")
    detail = f"; {'; '.join(where)}" if where else ""
    return Row(name, False, f"still running after {run.timeout:g} s, killed{detail}")


_COLLECTIVE_SIGNS = ("Connection closed by peer", "collective", "Connection reset by peer")


def _library_hint(exception: Exception_ | None) -> str:
    """Where a failure came from when it is the library's, not the script's rank handling."""
    if exception is not None and "transformers/masking_utils.py" in exception.traceback:
        return (
            " (in transformers' mask builder: transformers 5 reads the script's own attention "
            "mask as a [batch, length] padding mask; not a rank problem)"
        )
    return ""


def _hint(summary: str) -> str:
    torn = ("PytorchStreamReader failed", "failed reading zip archive", "legacy .tar format")
    if any(sign in summary for sign in torn):  # torch.load met a zip archive cut short
        return " (a checkpoint read while another process was writing it: two writers?)"
    if summary == "EOFError" or summary.startswith("EOFError: Ran out of input"):
        return " (a file read while another process was still writing it: two writers?)"
    if summary.startswith("FileExistsError"):
        return " (two processes creating the same output: two writers?)"
    if summary.startswith(("ModuleNotFoundError", "ImportError")):
        return install_hint(summary)
    if "Torch not compiled with CUDA enabled" in summary:
        return (
            " (the script puts the model or its tensors on a GPU whatever the machine has: "
            "`.cuda()`, `.to(local_rank)`; verify runs on the CPU; PRT013 rewrites the placements "
            "it is sure of and reports the others)"
        )
    if any(sign in summary for sign in _COLLECTIVE_SIGNS):
        return (
            " (a collective the other ranks never joined: does rank 0 evaluate through the "
            "DDP wrapper? see DDP004)"
        )
    return ""


def _peer_hint(run: Run, root: RankRecord, summary: str) -> str:
    """Why a rank lost its peer in a collective. When it was in a training step's backward (DDP's
    gradient all-reduce) and every other process had exited 0, those left the training loop
    alone (a rank-gated return or break), not a crash; otherwise see :func:`_hint`."""
    others = [r for r in run.records if r is not root]
    exception = root.exception
    in_backward = exception is not None and "run_backward" in exception.traceback
    if in_backward and others and all(r.exit_code == 0 and r.exception is None for r in others):
        who = ", ".join(r.label for r in others)
        return (
            f" ({who} had exited 0 while it still trained: a rank-gated return or break left "
            "the loop on one rank only; see DDP013)"
        )
    return _hint(summary)


def root_cause(records: Sequence[RankRecord]) -> RankRecord | None:
    """The rank whose exception came first; a peer's "connection closed" is a consequence."""
    failed = [r for r in records if r.exception is not None]
    if not failed:
        return None

    def key(record: RankRecord) -> tuple[bool, float]:
        assert record.exception is not None
        consequence = any(sign in record.exception.summary for sign in _COLLECTIVE_SIGNS)
        return consequence, record.exception.time

    return min(failed, key=key)


#: What a rank prints when gloo (torch 2.13) aborts it in the process group's teardown, after the
#: script has exited 0; seen about once in 30 CPU runs, with or without destroy_process_group().
TEARDOWN_ABORT = "terminate called without an active exception"
_TORCH = "a torch/gloo fault after the script's own exit, not the script's"


_ROOT_CAUSE = re.compile(r"Root Cause \(first observed failure\):.*?\(pid: (\d+)\)", re.S)


def _first_failure_pid(run: Run) -> int | None:
    """The process torch elastic saw fail first: a rank killed by a signal comes before the peers
    the launcher then terminated, which also never reached their exit."""
    found = _ROOT_CAUSE.search(run.log_tail)
    return int(found.group(1)) if found else None


def exited_cleanly(run: Run, expect: Expectations) -> Row:
    name = "every rank exited 0"
    root = root_cause(run.records)
    raised = root.exception.summary if root is not None and root.exception is not None else ""
    consequence = root is not None and any(sign in raised for sign in _COLLECTIVE_SIGNS)
    if root is not None and not consequence:
        summary = raised.splitlines()[0][:240]
        hint = _library_hint(root.exception) or _hint(summary)
        return Row(name, False, f"{root.label} raised {summary}{hint}")
    if not run.timed_out:
        first = _first_failure_pid(run)
        for record in sorted(run.records, key=lambda r: r.pid != first):
            if record.exit_code is None and record.exception is None:
                then = f" ({root.label} then lost its peer)" if root is not None else ""
                return Row(name, False, f"{record.label} was killed before it could exit{then}")
    if root is not None:
        summary = raised.splitlines()[0][:240]
        return Row(name, False, f"{root.label} raised {summary}{_peer_hint(run, root, summary)}")
    for record in run.records:
        if record.exit_code not in (0, None):
            said = _error_line(run.log_tail)
            detail = f": {said}" if said else ""
            return Row(name, False, f"{record.label} exited with code {record.exit_code}{detail}")
    if run.timed_out:
        return Row(name, False, "killed after the timeout")
    exited = f"{len(run.records)} of {len(run.records)} exited 0"
    if run.returncode != 0 and TEARDOWN_ABORT in run.log_tail:
        # every rank's own exit was 0 (above); the abort came later, inside gloo's teardown
        return Row(name, True, f"{exited}; then gloo aborted a rank while tearing down ({_TORCH})")
    if run.returncode != 0:
        return Row(name, False, f"the launcher exited with code {run.returncode}")
    return Row(name, True, f"{exited}, no traceback")


def _not_comparable(run: Run, expect: Expectations) -> str | None:
    """Why the ranks' parameters cannot be compared, if they cannot (evidence for "n/a")."""
    records = run.records
    if expect.ranks == 1 or len(records) == 1:
        return "n/a: a single process has no replicas"
    if len(records) != expect.ranks or any(r.dist_rank is None for r in records):
        return "n/a: not every process joined the process group"
    if run.timed_out:
        return "n/a: the run was killed mid-training"
    unfinished = [r for r in records if r.exception is not None or r.exit_code != 0]
    if unfinished:
        return f"n/a: {unfinished[0].label} did not finish training"
    if not any(r.steps for r in records):
        return "n/a: no optimizer step was taken"
    return None


def _step_text(record: RankRecord) -> str:
    return f"step {record.checksum_step if record.checksum_step is not None else record.steps}"


def replicas_in_sync(run: Run, expect: Expectations) -> Row:
    """Every rank holds the same parameters after its last optimizer step.

    DDP makes replicas bit-identical, so a difference means ranks train separate models (a
    DistributedSampler but no DDP wrap) or update differently (a step or schedule gated to one
    rank), which nothing else in the run shows: it exits 0 and writes a checkpoint.
    """
    name = "replicas in sync"
    skip = _not_comparable(run, expect)
    if skip:
        return Row(name, True, skip)
    records = sorted(run.records, key=lambda r: r.rank)
    idle = [r for r in records if not r.steps]
    if idle:
        busy = next(r for r in records if r.steps)
        return Row(
            name,
            False,
            f"{busy.label} took {busy.steps} optimizer steps and {idle[0].label} none: ranks "
            "step on different iterations (an optimizer step gated to one rank?)",
        )
    missing = [r for r in records if r.checksum is None]
    if missing:
        why = missing[0].checksum_error or "no digest recorded"
        return Row(name, True, f"not compared: {missing[0].label} has no parameter digest ({why})")
    groups: dict[str, list[RankRecord]] = {}
    for record in records:
        assert record.checksum is not None  # the missing ones returned above
        groups.setdefault(record.checksum, []).append(record)
    if len(groups) == 1:
        counts = sorted({r.checksum_step or 0 for r in records})
        first = records[0]
        size = f"{first.checksum_tensors} tensors, {first.checksum_values or 0:,} values"
        if len(counts) == 1:
            after = f"after optimizer step {counts[0]}"
        else:  # e.g. an extra step with zero gradients: the parameters still agree
            after = f"after their last optimizer steps ({_ranks_text(counts)})"
        ranks = _ranks_text([r.rank for r in records])
        return Row(name, True, f"ranks {ranks} hold identical parameters {after} ({size})")
    one, other = (members[0] for members in list(groups.values())[:2])
    steps = f"({_step_text(one)} vs {_step_text(other)})"
    distinct = f"; {len(groups)} different parameter sets" if len(groups) > 2 else ""
    if one.checksum_step != other.checksum_step:
        cause = (
            "ranks step on different iterations (an optimizer step gated to one rank, or "
            "gradient accumulation counted per rank)"
        )
        return Row(
            name,
            False,
            f"{one.label} and {other.label} took different numbers of optimizer steps {steps} "
            f"and hold different parameters: {cause}{distinct}",
        )
    cause = (
        "the model is not wrapped in DistributedDataParallel (each rank trains its own), or "
        "ranks update differently (a scheduler or clipping gated to one rank)"
    )
    return Row(
        name,
        False,
        f"{one.label} and {other.label} hold different parameters after their last optimizer "
        f"step {steps}: {cause}{distinct}",
    )


def evaluation_ran(run: Run, expect: Expectations) -> Row:
    name = "evaluation ran"
    evaluated = [r for r in run.records if r.eval_calls]
    if not expect.evaluation:
        return Row(name, True, "not expected for this target")
    if not evaluated:
        return Row(
            name,
            False,
            "no process ever called model.eval(): evaluation was skipped "
            "(gated on local_rank == -1 under a launcher?)",
        )
    who = ", ".join(f"{r.label} ({r.eval_calls}x)" for r in evaluated)
    return Row(name, True, f"on {who}")


def _writers(run: Run, path: Path) -> list[RankRecord]:
    target = str(path.resolve())
    return [
        r
        for r in run.records
        if any(str(Path(p).resolve()) == target or target.startswith(p + "/") for p, _ in r.writes)
    ]


def _one_writer(run: Run, path: Path, shown: str) -> RankRecord | str:
    """The one process that wrote ``path``, or why there is not exactly one (the single-writer
    check every artifact gets)."""
    writers = _writers(run, path)
    if len(writers) == 1:
        return writers[0]
    who = ", ".join(w.label for w in writers) or "no probed process"
    return f"{shown} written by {len(writers)} processes ({who})"


def _checkpoint_path(output_dir: Path, declared: str) -> Path | None:
    """The checkpoint the run wrote for ``declared``: the path itself, or for a pattern
    (``checkpoints-last-*/pytorch_model.bin``: a metric in the directory's name) the first
    match in name order; None when there is none."""
    if any(c in declared for c in "*?["):
        return next(iter(sorted(output_dir.glob(declared))), None)
    path = output_dir / declared
    return path if path.exists() else None


def checkpoints(run: Run, expect: Expectations) -> Row:
    name = "checkpoints"
    if not expect.checkpoints:
        return Row(name, True, "none expected")
    notes = []
    for declared in expect.checkpoints:
        path = _checkpoint_path(run.output_dir, declared)
        if path is None:
            return Row(name, False, f"{declared} was not written")
        relative = str(path.relative_to(run.output_dir))
        writer = _one_writer(run, path, relative)
        if isinstance(writer, str):
            return Row(name, False, writer)
        if run.load_checkpoint is not None:
            problem = run.load_checkpoint(path)
            if problem:
                return Row(name, False, f"{relative} does not load: {problem}")
        notes.append(f"{relative} ({writer.label}, loads with weights_only=True)")
    return Row(name, True, "; ".join(notes))


def read_keys(path: Path, fmt: str) -> list[str]:
    kind, _, arg = fmt.partition(":")
    keys = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        if kind == "tsv":
            keys.append("\t".join(line.split("\t")[: int(arg)]))
        elif kind == "jsonl":
            keys.append(str(json.loads(line).get(arg)))
        else:  # pragma: no cover - manifests are validated on load
            raise ValueError(f"unknown results format {fmt!r}")
    return keys


def _lists_for(results: Results, path: Path) -> bool:
    return _lists(path, results)


def _lists(path: Path, results: Results) -> bool:
    """Whether ``path`` reads as ``results``' format with exactly the expected keys."""
    try:
        return set(read_keys(path, results.format)) == set(results.expected)
    except (ValueError, json.JSONDecodeError, UnicodeDecodeError, OSError):
        return False


def results_complete(run: Run, expect: Expectations) -> Row:
    name = "results complete"
    if not expect.results:
        return Row(name, True, "none expected")
    notes = []
    declared = [r.path for r in expect.results]
    for results in expect.results:
        found = artifacts.find(
            run.output_dir,
            results.path,
            functools.partial(_lists_for, results),
            taken=[d for d in declared if d != results.path],
        )
        if found.path is None:
            return Row(name, False, f"{results.path} was not written")
        path = found.path
        try:
            keys = read_keys(path, results.format)
        except (ValueError, json.JSONDecodeError) as exc:
            return Row(name, False, f"{results.path} cannot be read as {results.format}: {exc}")
        if found.note:
            notes.append(found.note)
            results = dataclasses.replace(results, path=str(path.relative_to(run.output_dir)))
        expected = list(results.expected)
        total = len(expected)
        if len(keys) != total:
            cause = ""
            if len(keys) < total and expect.ranks > 1 and len(keys) * expect.ranks >= total:
                cause = ": rank 0 scored a DistributedSampler shard"
            return Row(name, False, f"{results.path} has {len(keys)} of {total} lines{cause}")
        if len(set(keys)) != len(keys):
            return Row(name, False, f"{results.path} lists some examples twice")
        if set(keys) != set(expected):
            missing = len(set(expected) - set(keys))
            return Row(name, False, f"{results.path} misses {missing} test examples")
        if keys != expected:
            first = next(i for i, (a, b) in enumerate(zip(keys, expected)) if a != b)
            return Row(
                name,
                False,
                f"{results.path} is out of dataset order from line {first + 1} "
                "(predictions matched to the wrong examples)",
            )
        writer = _one_writer(run, path, results.path)
        if isinstance(writer, str):
            return Row(name, False, writer)
        notes.append(f"{results.path}: {total} of {total} lines, in order ({writer.label})")
    return Row(name, True, "; ".join(notes))


def training_health(run: Run, expect: Expectations) -> Row | None:
    """No parameter orphaned, gradient-dead or unchanged (:mod:`patcher.verify.health`); None
    when not asked for."""
    return health.row(run.records) if expect.health else None


CHECKS: tuple[Callable[[Run, Expectations], Row | None], ...] = (
    ranks_joined,
    no_hang,
    exited_cleanly,
    replicas_in_sync,
    evaluation_ran,
    checkpoints,
    results_complete,
    training_health,
)


def evaluate(run: Run, expect: Expectations) -> list[Row]:
    """Every check's row, in :data:`CHECKS` order; a check that returns None was not asked for."""
    return [row for check in CHECKS if (row := check(run, expect)) is not None]


def verdict(rows: Sequence[Row]) -> str:
    failed = next((row for row in rows if not row.ok), None)
    if failed is None:
        return f"PASS: all {len(rows)} checks passed"
    return f"FAIL: {failed.name}: {failed.evidence}"
