"""DDP020 proven by running: checkpoints saved every few steps by every rank of a DDP run, into a
step directory made with ``os.makedirs`` (no ``exist_ok``), outside any rank test.

Unpatched, the slower rank dies on FileExistsError (or, when the directory race goes its way,
both ranks write the same checkpoint). Patched, the save run is behind a global rank-0 test:
nothing reads the checkpoints during the run, so no rank waits for them; every rank exits 0,
each checkpoint has one writer and the ranks end with the same parameters.

Second shape: loss logs written after ``main()`` returns, from module-level lists, by every
process; the evaluation losses are only collected on rank 0. Unpatched, both processes write
eval_loss.txt (the other rank's copy is empty). Patched, rank 0 alone writes both logs, its
eval_loss.txt has every evaluation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, with_launcher_rank

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "every_rank_checkpoints.py"
ARGS = ["--save_steps", "4"]


def _with_rank() -> str:
    return with_launcher_rank(SCRIPT.read_text())


def test_patch_gates_the_save_run() -> None:
    output = patched(SCRIPT.read_text())
    assert (
        '                if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:\n'
        "                    os.makedirs(step_dir)\n" in output
    )
    # the path name stays on every rank; the loop and its counter are untouched
    assert '                step_dir = os.path.join(args.output_dir, "{}steps"' in output
    assert patched(output) == output


def test_unpatched_ranks_race_on_the_step_directory(tmp_path: Path) -> None:
    run = launch(_with_rank(), ARGS, tmp_path / "original")
    raced = any(r.exception and r.exception.type == "FileExistsError" for r in run.records)
    two_writers = any(len(pids) == 2 for pids in run.writers().values())
    assert raced or two_writers, run.explain()


def test_patched_ranks_finish_and_each_checkpoint_has_one_writer(tmp_path: Path) -> None:
    run = launch(patched(_with_rank()), ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    writers = {name: len(pids) for name, pids in run.writers().items()}
    assert writers == {"model.bin": 1}, run.writers()
    saved = sorted(p.parent.name for p in run.output.glob("*steps/model.bin"))
    assert saved == ["12steps", "16steps", "4steps", "8steps"], saved


LOSSES = SCRIPTS / "losses_after_main.py"


def _losses_with_rank() -> str:
    return with_launcher_rank(LOSSES.read_text())


def test_patch_gates_the_writes_after_main_on_the_env_rank() -> None:
    output = patched(LOSSES.read_text())
    assert (
        '    main()\n    if int(os.environ.get("RANK", 0)) == 0:\n'
        '        with open("train_loss.txt", "w") as file:\n' in output
    )
    assert patched(output) == output


def test_unpatched_ranks_both_write_the_loss_logs(tmp_path: Path) -> None:
    run = launch(_losses_with_rank(), [], tmp_path / "original")
    assert run.ok, run.explain()
    assert len(run.writers().get("eval_loss.txt", ())) == 2, run.writers()


def test_patched_rank_zero_writes_its_complete_eval_losses(tmp_path: Path) -> None:
    run = launch(patched(_losses_with_rank()), [], tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    writers = {name: len(pids) for name, pids in run.writers().items()}
    assert writers == {"train_loss.txt": 1, "eval_loss.txt": 1}, run.writers()
    lines = (run.output / "eval_loss.txt").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["0", "1", "2"], lines
