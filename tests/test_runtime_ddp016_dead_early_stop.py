"""DDP016 proven by running on UniXcoder's code-generation shape: a DataParallel-only script whose
dev evaluation writes dev.output/dev.gold, reads them back to score, saves the best checkpoint, and
guards an early stop with ``patience == -1`` on a counter that only starts at 0, is reset to 0 or
grows by 1 (``patches/_counters.py``): the break is dead code, there is no early stop.

DDP016 used to report such a script (an early stop decided from files every rank rewrites). With
the dead break left out, it is converted: under 2 gloo ranks the processes form one DDP job with
the same global batch, the dev evaluation (loss, decoding, scoring from the files, the best
checkpoint) and the test run on rank 0 with the unwrapped model, every rank runs every epoch, and
every file has one writer. Unpatched, each process trains alone and writes every file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, run_alone

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "dataparallel_dead_early_stop.py"
ARGS = ["--do_train", "--do_eval", "--do_test", "--train_batch_size", "8"]
FILES = ("dev.output", "dev.gold", "pytorch_model.bin", "predictions.txt")
EPOCHS, DEV_DECODED = 3, 3 * 8  # three epochs, a sample of 8 dev examples decoded in each


def _states(output: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(output.glob("state-*.json"))]


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_patch_converts_main(patched_source: str) -> None:
    assert "torch.distributed.init_process_group(" in patched_source
    assert "model = torch.nn.parallel.DistributedDataParallel(" in patched_source
    assert "RandomSampler(train_data) if args.local_rank == -1 else DistributedSampler(" in (
        patched_source
    )
    rank0 = 'int(os.environ.get("RANK", args.local_rank)) in [-1, 0]'
    assert f"if args.do_eval and {rank0}:" in patched_source
    assert f"if args.do_test and {rank0}:" in patched_source
    assert "if patience == -1:\n                        break" in patched_source  # as it was


def test_original_processes_train_alone_and_write_twice(tmp_path: Path) -> None:
    run = launch(SCRIPT.read_text(), ARGS, tmp_path / "original")
    assert all(r.dist_rank is None for r in run.records), run.explain()  # nobody joined
    states = _states(run.output)
    assert [s["decoded"] for s in states] == [DEV_DECODED, DEV_DECODED]  # dev scored twice
    writers = run.writers()
    assert all(len(writers.get(name, ())) == 2 for name in FILES), writers


def test_patched_ranks_form_one_ddp_job(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()  # every rank joined and exited 0, nothing hung
    assert len(set(run.param_hashes().values())) == 1, run.explain()
    states = _states(run.output)
    assert [s["batch_sizes"] for s in states] == [[4], [4]]  # 8 global = 4 a process x 2
    assert [s["epochs"] for s in states] == [EPOCHS, EPOCHS]  # nobody stopped early
    assert sum(s["decoded"] for s in states) == DEV_DECODED  # the dev sample scored once
    writers = run.writers()
    assert {name: len(writers.get(name, ())) for name in FILES} == dict.fromkeys(FILES, 1)
    assert len((run.output / "dev.output").read_text().splitlines()) == 8
    lines = (run.output / "predictions.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(i) for i in range(10)]


def test_without_a_launcher_the_patched_script_runs_as_before(
    patched_source: str, tmp_path: Path
) -> None:
    """Plain ``python``: one process, the full batch, the same parameters and files."""
    outputs = {
        name: run_alone(source, ARGS, tmp_path / name)
        for name, source in (("original", SCRIPT.read_text()), ("patched", patched_source))
    }
    original, after = (_states(outputs[n]) for n in ("original", "patched"))
    assert original == after and after[0]["batch_sizes"] == [8]
    for name in ("dev.output", "dev.gold", "predictions.txt"):
        assert (outputs["original"] / name).read_bytes() == (outputs["patched"] / name).read_bytes()
