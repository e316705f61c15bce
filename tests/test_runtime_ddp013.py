"""DDP013 proven by running: rank 0 evaluates, saves and returns alone at ``--train_steps``.

The script trains by steps like CodeReviewer's fine-tuning scripts and ends training behind
``if args.global_rank == 0 and global_step == args.train_steps:``. Under 2 gloo ranks the
original's rank 0 returns while rank 1 trains on and loses it in the next gradient all-reduce.
Patched, the gate is split: every rank returns at the same step, rank 0 alone evaluates and
saves first (through the unwrapped model, DDP004: the wrapper's forward would broadcast the
model's buffer to ranks that have left). Both ranks exit 0 with the same parameters, and rank 0
writes the checkpoint once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "step_limit_rank0_return.py"
SPLIT = (
    "            if global_step == args.train_steps:\n"
    "                if args.global_rank == 0:\n"
    "                    # end training\n"
    "                    acc = eval_epoch_acc(args, valid_dataloader, "
    'model.module if hasattr(model, "module") else model)\n'
    '                    output_dir = os.path.join(args.output_dir, "checkpoints-last")\n'
    "                    save_model(model, output_dir)\n"
    '                    print("Reach max steps %d, acc %.3f" % (args.train_steps, acc))\n'
    "                return\n"
)


def test_patch_splits_the_gate_and_is_idempotent() -> None:
    output = patched(SCRIPT.read_text())
    assert SPLIT in output
    assert patched(output) == output


def test_original_rank_1_loses_rank_0(tmp_path: Path) -> None:
    run = launch(SCRIPT.read_text(), [], tmp_path / "original", timeout=90)
    assert not run.ok
    by_rank = {r.dist_rank: r for r in run.records}
    assert by_rank[0].exit_code == 0, run.explain()  # rank 0 returned and left
    assert run.outcome.timed_out or by_rank[1].exit_code != 0, run.explain()
    assert len(run.param_hashes()) == 1  # rank 1 never got to the end of training


def test_without_ddp004_rank_0_evaluates_through_the_wrapper(tmp_path: Path) -> None:
    codes = [rule.code for rule in all_rules() if rule.code != "DDP004"]
    source = patched(SCRIPT.read_text(), codes)
    assert "if args.global_rank == 0:\n" in source  # split, but evaluated through DDP
    run = launch(source, [], tmp_path / "wrapped", timeout=90)
    assert not run.ok
    rank0 = next(r for r in run.records if r.dist_rank == 0)
    assert rank0.exception is not None, run.explain()
    assert "_broadcast_coalesced" in rank0.exception.traceback, run.explain()


def test_patched_every_rank_returns_and_rank_0_saves_once(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), [], tmp_path / "patched", timeout=90)
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert sorted(hashes) == ["0", "1"] and len(set(hashes.values())) == 1
    rank0 = next(r.pid for r in run.records if r.dist_rank == 0)
    assert run.writers() == {"pytorch_model.bin": {rank0}}
    assert (run.output / "checkpoints-last" / "pytorch_model.bin").is_file()
    assert "Reach max steps 3" in run.log
