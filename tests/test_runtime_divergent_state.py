"""The rank model's divergent-state post-condition proven by running: a wrap (DDP014) or a
LOCAL_RANK read (DDP001) that would make every step a collective, in a script whose loop exit
reads state only rank 0 updates, hangs or crashes; ddpfix withdraws it and reports why.

``runtime_scripts/multitask_rank0_early_stop.py`` (CodeT5 run_multi_gen's shape) shards its data
but never wraps its model; rank 0 alone marks tasks finished and every rank skips finished
tasks. ``runtime_scripts/rank0_patience_break.py`` (ToD-BERT's shape) is dormant under a modern
launcher; rank 0 alone counts patience and every rank breaks on it. For each: the rewrite without
the post-conditions (as a blind codemod would make it) fails under 2 gloo ranks; ddpfix's output
keeps the wrap out (resp. the read), says why, and every rank exits 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.engine import fix_text
from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

MULTITASK = SCRIPTS / "multitask_rank0_early_stop.py"
PATIENCE = SCRIPTS / "rank0_patience_break.py"
WRAP = "DistributedDataParallel("
READ = 'os.environ["LOCAL_RANK"]'


def _withdrawn(source: str, code: str) -> str:
    """The message of ``code``'s finding that was withdrawn by the post-condition."""
    _, findings = fix_text(source, all_rules())
    messages = [f.message for f in findings if f.code == code and not f.fixed]
    assert len(messages) == 1, [(f.code, f.line, f.message) for f in findings]
    return messages[0]


def test_wrap_is_withdrawn_naming_the_state() -> None:
    source = MULTITASK.read_text()
    assert WRAP not in patched(source)
    assert WRAP in patched(source, postconditions=False)  # DDP014 would wrap it
    message = _withdrawn(source, "DDP014")
    assert "not rewritten: 'finished' is updated on rank 0 only (`finished[name] = 1`)" in message
    assert "`if finished[name]:`" in message


def test_read_is_withdrawn_naming_the_state() -> None:
    source = PATIENCE.read_text()
    assert READ not in patched(source)
    assert READ in patched(source, postconditions=False)  # DDP001 would read it
    message = _withdrawn(source, "DDP001")
    assert "'patience' is updated on rank 0 only (`patience += 1`)" in message
    assert "`if patience > args.patience:`" in message


@pytest.mark.parametrize("script", [MULTITASK, PATIENCE], ids=["multitask", "patience"])
def test_unguarded_rewrite_fails(script: Path, tmp_path: Path) -> None:
    """What the post-condition prevents: rank 0 leaves (or skips) alone, the other rank waits
    in its next gradient all-reduce."""
    run = launch(patched(script.read_text(), postconditions=False), [], tmp_path, timeout=60)
    assert not run.ok, run.explain()
    # rank 0 left; rank 1 waited in backward's all-reduce (hang, or "Connection closed by peer")
    assert run.outcome.timed_out or "backward" in run.log, run.explain()


def test_patched_multitask_every_rank_exits(tmp_path: Path) -> None:
    run = launch(patched(MULTITASK.read_text()), [], tmp_path)
    assert run.ok, run.explain()  # every rank joined the group and exited 0, nothing hung


def test_patched_patience_every_process_exits(tmp_path: Path) -> None:
    """The read withdrawn, the script stays dormant: each process trains alone (local rank -1,
    no process group) and exits 0, as the original does under this launcher."""
    run = launch(patched(PATIENCE.read_text()), [], tmp_path)
    assert not run.outcome.timed_out and run.outcome.returncode == 0, run.explain()
    assert [r.exit_code for r in run.records] == [0, 0], run.explain()
    assert "local_rank -1" in run.log and "local_rank 0" not in run.log, run.log
