"""DDP020 proven by running: checkpoints saved every few steps by every rank of a DDP run, into a
step directory made with ``os.makedirs`` (no ``exist_ok``), outside any rank test.

Unpatched, the slower rank dies on FileExistsError (or, when the directory race goes its way,
both ranks write the same checkpoint). Patched, the save run is behind a global rank-0 test:
nothing reads the checkpoints during the run, so no rank waits for them; every rank exits 0,
each checkpoint has one writer and the ranks end with the same parameters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "every_rank_checkpoints.py"
ARGS = ["--save_steps", "4"]


def _with_rank() -> str:
    """The script with its rank, as ``python -m torch.distributed.launch`` gave it."""
    return SCRIPT.read_text().replace(
        "    args = parser.parse_args()\n",
        "    args = parser.parse_args()\n"
        "    args.local_rank = int(os.environ.get('LOCAL_RANK', -1))\n",
    )


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
