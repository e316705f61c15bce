"""The broadcast DDP014 carries with its wrap, proven by running: state that rank 0 alone updates
and every rank leaves training on is sent from rank 0 right after its gate, so the wrap stands
and every rank stops at the same epoch. The broadcast runs when rank 0's gate may have run (its
test without the rank term, which every rank computes alike).

``runtime_scripts/sharded_rank0_patience.py`` shards its data but never wraps its model; rank 0
alone counts the epochs without improvement and every rank breaks on that count. ddpfix wraps
the model and broadcasts the count after rank 0's evaluation gate: every rank exits 0, stops
after the same epoch, and holds the same parameters. The same output without the broadcast
(the wrap alone) fails: rank 0 leaves, the other rank waits in its next gradient all-reduce.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, run_alone

from patcher.engine import fix_text
from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "sharded_rank0_patience.py"
MULTITASK = SCRIPTS / "multitask_rank0_early_stop.py"
BROADCAST = """\
        if (epoch + 1) % args.eval_epochs == 0 and (
            torch.distributed.is_available() and torch.distributed.is_initialized()
        ):
            _ddpfix_shared = [patience]
            torch.distributed.broadcast_object_list(_ddpfix_shared, src=0)
            patience = _ddpfix_shared[0]
"""
WRAP = "model = torch.nn.parallel.DistributedDataParallel("


def _stops(log: str) -> dict[str, int]:
    """RANK → the epoch that rank stopped after, from the script's own lines."""
    found = re.findall(r"rank (\d) stopped after epoch (\d+)", log)
    return {rank: int(epoch) for rank, epoch in found}


def test_wrap_stands_with_the_broadcast_after_rank_zeros_gate() -> None:
    output = patched(SCRIPT.read_text())
    assert WRAP in output
    gate_end = "                patience += 1\n"
    assert gate_end + BROADCAST + "        if patience > args.patience:\n" in output


def test_patched_every_rank_stops_together(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), [], tmp_path)
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert set(hashes) == {"0", "1"} and len(set(hashes.values())) == 1, hashes
    # rank 0 evaluates after epochs 1, 3, 5 (0-based): no improvement after the first, patience
    # 1, so its count passes 1 after epoch 5 and reaches both ranks there
    assert _stops(run.log) == {"0": 5, "1": 5}, run.log[-2000:]


def test_without_the_broadcast_the_wrap_fails(tmp_path: Path) -> None:
    """What the broadcast prevents: rank 0 leaves alone, rank 1 waits in backward."""
    output = patched(SCRIPT.read_text())
    assert BROADCAST in output
    run = launch(output.replace(BROADCAST, ""), [], tmp_path, timeout=60)
    assert not run.ok, run.explain()
    assert run.outcome.timed_out or "backward" in run.log, run.explain()


def test_patched_alone_runs_as_before(tmp_path: Path) -> None:
    output = run_alone(patched(SCRIPT.read_text()), [], tmp_path)
    assert len(list(output.glob("state-*.json"))) == 1


def test_no_broadcast_where_the_skip_reads_a_per_rank_key() -> None:
    """CodeT5 run_multi_gen's shape: the loop top skips on ``finished[name]`` for a task each rank
    draws itself, so ranks may reach rank 0's gate at different times: no broadcast, the wrap is
    withdrawn, and the report says why."""
    source = MULTITASK.read_text()
    assert "broadcast_object_list" not in patched(source)
    _, findings = fix_text(source, all_rules())
    messages = [f.message for f in findings if f.code == "DDP014" and not f.fixed]
    assert len(messages) == 1, messages
    assert "(ddpfix does not: ranks may leave the loop around rank 0's gate" in messages[0]
    assert "finished[name] is read at a key that may differ" in messages[0]
