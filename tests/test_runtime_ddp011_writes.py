"""DDP011 proven by running: an in-training evaluation block that writes checkpoints and decides
an early stop, run by every rank.

Gating the whole block to rank 0 would leave the other ranks without the early-stop decision
(they would train on, alone, into a hang). Patched, only its writes run on rank 0: every rank
evaluates the same model on the same dev set, so every rank takes the same decision; each
checkpoint has one writer and the ranks end with the same parameters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, with_launcher_rank

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "eval_writes_with_early_stop.py"
ARGS = ["--do_eval"]


def _with_rank() -> str:
    return with_launcher_rank(SCRIPT.read_text())


def test_patch_gates_the_writes_not_the_block() -> None:
    output = patched(SCRIPT.read_text())
    assert "            if (step + 1) % 4 == 0 and args.do_eval:\n" in output  # not gated
    assert (
        '                if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:\n'
        "                    if not os.path.exists(last_dir):\n" in output
    )
    assert "                        is_early_stop = True\n" in output  # every rank decides
    assert patched(output) == output


def test_unpatched_ranks_write_every_checkpoint_twice(tmp_path: Path) -> None:
    run = launch(_with_rank(), ARGS, tmp_path / "original")
    two_writers = len(run.writers().get("model.bin", ())) == 2
    raced = any(r.exception and r.exception.type == "FileExistsError" for r in run.records)
    assert two_writers or raced, run.explain()  # both write, or their makedirs race


def test_patched_ranks_agree_and_each_checkpoint_has_one_writer(tmp_path: Path) -> None:
    run = launch(patched(_with_rank()), ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    assert {name: len(pids) for name, pids in run.writers().items()} == {"model.bin": 1}, (
        run.writers()
    )
