"""A rank-0 gate in a script whose rank stays dormant splits the processes with no barrier to
order them, proven by running.

``runtime_scripts/dormant_rank_gates_reload.py`` shards its data but never wraps its model, so
DDP001 does not read LOCAL_RANK: under a modern launcher every process keeps ``local_rank == -1``
and no process group exists. Each process trains, saves ``checkpoint-best-acc/model.bin`` and
``model_best.pt`` itself, then reads them back. Gating the saves on the launcher's ``RANK``
(DDP008 in train(), DDP011 on the ``do_eval`` block) leaves process RANK=1 reading files only
RANK 0 writes, and DDP012's ``if torch.distributed.is_initialized(): barrier()`` never runs
there: FileNotFoundError or a half-written file. The post-condition judges that barrier as the
dormant run has it (absent), so both gates are withdrawn and reported.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, Ranked, launch

from patcher.engine import fix_text
from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")

SCRIPT = SCRIPTS / "dormant_rank_gates_reload.py"
ARGS = ["--do_eval"]
#: The files every process reads back after writing them.
READ_BACK = ("model.bin", "model_best.pt")
RANK_GATE = 'int(os.environ.get("RANK", args.local_rank)) in [-1, 0]'


def _every_reader_wrote(run: Ranked) -> bool:
    """Every process wrote each file it read back before reading it (the script reads each one
    right after its own last save), and none found a file missing. The two lone copies still
    race on one path, as the original does: a process may read the other's half-written copy
    and fail (a torn read), which this does not forbid; it never hangs."""
    pids = {record.pid for record in run.records}
    writers = run.writers()
    missing = [r for r in run.records if r.exception and "FileNotFoundError" in r.exception.summary]
    return (
        not run.outcome.timed_out
        and len(run.records) == 2
        and not missing
        and all(writers.get(name) == pids for name in READ_BACK)
    )


def test_gates_are_withdrawn_and_reported() -> None:
    output, findings = fix_text(SCRIPT.read_text(), all_rules())
    assert RANK_GATE not in output
    withdrawn = {
        (f.code, f.message.split("not rewritten: ")[1])
        for f in findings
        if not f.fixed and "not rewritten: " in f.message
    }
    assert withdrawn == {
        (
            "DDP008",
            "'model.bin' is written by rank 0 only and read by every rank with no barrier "
            "between (FileNotFoundError or a half-written file; the rank stays dormant here: "
            "no process group, so an is_initialized() barrier never runs)",
        ),
        (
            "DDP011",
            "'model_best.pt' is written by rank 0 only and read by every rank with no barrier "
            "between (FileNotFoundError or a half-written file; the rank stays dormant here: "
            "no process group, so an is_initialized() barrier never runs)",
        ),
    }
    ddp001 = [f for f in findings if f.code == "DDP001"]
    assert ddp001 and not any(f.fixed for f in ddp001)  # the rank stays dormant
    assert fix_text(output, all_rules())[0] == output


@pytest.mark.slow
def test_patched_processes_read_only_files_they_wrote(tmp_path: Path) -> None:
    source = SCRIPT.read_text()
    original = launch(source, ARGS, tmp_path / "original")
    assert _every_reader_wrote(original), original.explain()
    patched, _ = fix_text(source, all_rules())
    run = launch(patched, ARGS, tmp_path / "patched")
    assert _every_reader_wrote(run), run.explain() + f"\nwriters: {run.writers()}"
    finished = sum(1 for code in run.exit_codes if code == 0)
    assert len(run.param_hashes()) == finished  # lone copies, each that finished to the end


@pytest.mark.slow
def test_gating_without_the_post_condition_leaves_a_reader_that_never_wrote(
    tmp_path: Path,
) -> None:
    """What the engine used to apply (the gates, and a barrier that cannot run here)."""
    naive, _ = fix_text(SCRIPT.read_text(), all_rules(), checks=[])
    assert naive.count(RANK_GATE) == 2
    run = launch(naive, ARGS, tmp_path / "naive")
    assert not _every_reader_wrote(run), run.explain()
