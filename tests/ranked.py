"""Run a legacy-style script, original and patched, under 2 gloo ranks and say what every rank did.

The rules' runtime proofs (``tests/test_runtime_*.py``) use this: a small script of ours that
reproduces one structure of the real scripts is patched with the engine, both versions run under
the real ``accelerate launch`` (``ACCELERATE_USE_CPU=1 --multi_gpu``, as ``ddpfix verify`` does,
with its probe recording every process's writes and fate), and the test asserts what a user cares
about: every rank exits 0, nothing hangs, the ranks' parameters agree, every example is scored
once, every file has one writer.

The scripts report their own end state: each process writes ``state-<pid>.json`` (its ``RANK``,
a hash of its model's parameters) into the output directory; :func:`param_hashes` reads them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from patcher.engine import fix_text
from patcher.registry import all_rules, every_rule, select_rules
from patcher.verify.launch import Outcome, plan, run
from patcher.verify.records import RankRecord, read_records

SCRIPTS = Path(__file__).resolve().parent / "runtime_scripts"

#: What the scripts call to leave their end state; pasted into each of them, so the scripts stay
#: single files a user could run.
STATE_SNIPPET = '''
def dump_state(output_dir, model):
    """Leave this process's end state for the test: its rank and a hash of its parameters."""
    import hashlib
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    path = os.path.join(output_dir, "state-%d.json" % os.getpid())
    with open(path, "w") as handle:
        json.dump({"rank": os.environ.get("RANK"), "params": digest.hexdigest()}, handle)
'''


@dataclass
class Ranked:
    """One multi-rank run."""

    outcome: Outcome
    records: list[RankRecord]
    output: Path
    log: str
    processes: int = 2  # how many were launched (nodes x ranks)

    @property
    def exit_codes(self) -> list[int | None]:
        return [record.exit_code for record in self.records]

    @property
    def ok(self) -> bool:
        """Every rank joined the process group and exited 0, and nothing hung."""
        return (
            not self.outcome.timed_out
            and (self.outcome.returncode == 0 or self.teardown_abort)
            and len(self.records) == self.processes
            and all(r.exit_code == 0 and r.dist_rank is not None for r in self.records)
        )

    @property
    def teardown_abort(self) -> bool:
        """gloo (torch 2.13) sometimes aborts a process after the script's own exit, while it
        tears down a process group nobody destroyed ("terminate called without an active
        exception"); the probe saw every rank exit 0 first. Not the script's doing."""
        return "terminate called without an active exception" in self.log

    def param_hashes(self) -> dict[str, str]:
        """RANK → parameter hash, from the ``state-<pid>.json`` files the processes left."""
        hashes = {}
        for path in sorted(self.output.glob("state-*.json")):
            state = json.loads(path.read_text())
            hashes[str(state["rank"])] = state["params"]
        return hashes

    def writers(self) -> dict[str, set[int]]:
        """File name (relative to the output directory) → pids of the processes that wrote it;
        the per-process state files are left out."""
        found: dict[str, set[int]] = {}
        for record in self.records:
            for path, _how in record.writes:
                name = Path(path).name
                if not name.startswith("state-"):
                    found.setdefault(name, set()).add(record.pid)
        return found

    def explain(self) -> str:
        lines = [f"returncode={self.outcome.returncode} timed_out={self.outcome.timed_out}"]
        for record in self.records:
            why = record.exception.summary if record.exception else ""
            lines.append(f"  {record.label}: exit {record.exit_code} {why}")
        return "\n".join(lines) + "\n--- log tail ---\n" + self.log[-3000:]


def patched(
    source: str, select: Sequence[str] | None = None, *, postconditions: bool = True
) -> str:
    """``source`` as ``ddpfix apply`` leaves it (the default rules, or ``select``: ``ALL`` and
    opt-in codes as on the command line). ``postconditions=False`` is the rewrite without the
    rank model's checks, as a ``sed`` one-liner would make it: what a rule left out would break
    shows up instead of being withdrawn."""
    rules = all_rules() if select is None else select_rules(every_rule(), select)
    output, _ = fix_text(source, rules, checks=None if postconditions else [])
    return output


def with_launcher_rank(source: str) -> str:
    """``source`` with its rank, as ``python -m torch.distributed.launch`` gave it (the
    ``--local_rank`` argument), read here from the environment the modern launchers set: the
    original script's behaviour under the launcher it was written for."""
    parse = "    args = parser.parse_args()\n"
    assert parse in source
    return source.replace(
        parse, parse + "    args.local_rank = int(os.environ.get('LOCAL_RANK', -1))\n"
    )


def run_alone(source: str, args: Sequence[str], workdir: Path) -> Path:
    """Write ``source`` to ``workdir/run.py`` and run it with plain ``python`` (one process, no
    launcher) with ``--output_dir workdir/output`` after ``args``; the output directory. The
    patched script must still run as the original does outside a launcher."""
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "run.py"
    script.write_text(source)
    output = workdir / "output"
    output.mkdir(exist_ok=True)
    done = subprocess.run(
        [sys.executable, str(script), *args, "--output_dir", str(output)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return output


def launch(
    source: str,
    args: Sequence[str],
    workdir: Path,
    *,
    ranks: int = 2,
    timeout: float = 120,
    nodes: int = 1,
    extra_files: dict[str, str] | None = None,
) -> Ranked:
    """Write ``source`` to ``workdir/run.py`` and run it with ``ranks`` gloo ranks; the script
    gets ``--output_dir workdir/output`` after ``args``. ``extra_files`` (name → source) are
    written next to it first: the modules of a multi-file project that run.py imports.
    ``nodes`` > 1 simulates that many machines of ``ranks`` processes each (each has its own
    local rank 0)."""
    workdir.mkdir(parents=True, exist_ok=True)
    for name, text in (extra_files or {}).items():
        (workdir / name).write_text(text)
    script = workdir / "run.py"
    script.write_text(source)
    output = workdir / "output"
    output.mkdir(exist_ok=True)
    probe = workdir / "probe"
    probe.mkdir(exist_ok=True)
    steps = plan(
        script,
        [*args, "--output_dir", str(output)],
        ranks=ranks,
        probe_dir=probe,
        cwd=workdir,
        cuda_devices=0,
        nodes=nodes,
    )
    log = workdir / "launch.log"
    outcome = run(steps, timeout=timeout, log=log, probe_dir=probe, expected=ranks * nodes)
    records = read_records(probe)
    return Ranked(outcome, records, output, log.read_text(errors="replace"), ranks * nodes)
