"""DDP016 proven by running on CodeBERT LongCoder's shape: a DataParallel-only script whose
train() calls an evaluate() helper after each epoch; the helper writes dev.output/dev.gold itself
and returns the scores that decide checkpoint-best-acc.

DDP016 used to gate only the checkpoint writes in train() and leave the evaluation on every rank:
each process decoded the dev set and wrote dev.output/dev.gold through the helper. Patched, the
helper call and the block that reads its result run on global rank 0 alone, with the unwrapped
model (the script's model holds a buffer, so a DDP-wrapped forward would broadcast it: a
collective rank 1 never joins); the best score they decide is read nowhere else, so nothing the
other ranks need is gated away.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, run_alone

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "dataparallel_eval_helper.py"
ARGS = ["--do_train", "--do_test", "--train_batch_size", "8"]
FILES = ("dev.output", "dev.gold", "test.output", "test.gold", "model.bin")
DEV = [f"validation:{i}" for i in range(8)]
TEST = [f"test:{i}" for i in range(8)]


def _states(output: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(output.glob("state-*.json"))]


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_patch_runs_the_helper_evaluation_on_rank_zero(patched_source: str) -> None:
    gate = '        if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:\n'
    call = (
        '            results = evaluate(args, model.module if hasattr(model, "module") else '
        'model, "validation", output_file_prefix="dev")\n'
    )
    assert gate + call in patched_source
    assert "            if results['eval_acc'] > best_acc:\n" in patched_source
    assert "model = torch.nn.parallel.DistributedDataParallel(" in patched_source


def test_original_processes_train_alone_and_write_twice(tmp_path: Path) -> None:
    run = launch(SCRIPT.read_text(), ARGS, tmp_path / "original")
    assert all(r.dist_rank is None for r in run.records), run.explain()  # nobody joined
    states = _states(run.output)
    assert [s["scored"] for s in states] == [DEV + DEV + TEST] * 2  # everything scored twice
    writers = run.writers()
    assert all(len(writers.get(name, ())) == 2 for name in FILES), writers


def test_patched_ranks_form_one_ddp_job_and_rank_zero_evaluates(
    patched_source: str, tmp_path: Path
) -> None:
    run = launch(patched_source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()  # every rank joined and exited 0, nothing hung
    assert len(set(run.param_hashes().values())) == 1, run.explain()
    states = {s["rank"]: s for s in _states(run.output)}
    assert {r: s["batch_sizes"] for r, s in states.items()} == {"0": [4], "1": [4]}
    # each dev example scored once an epoch, each test example once, all by rank 0
    assert {r: s["scored"] for r, s in states.items()} == {"0": DEV + DEV + TEST, "1": []}
    writers = run.writers()
    assert {name: len(writers.get(name, ())) for name in FILES} == dict.fromkeys(FILES, 1)
    for prefix in ("dev", "test"):
        lines = (run.output / f"{prefix}.output").read_text().splitlines()
        assert [line.split("\t")[0] for line in lines] == [str(i) for i in range(8)]


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
    for name in ("dev.output", "dev.gold", "test.output", "checkpoint-best-acc/model.bin"):
        assert (outputs["original"] / name).read_bytes() == (outputs["patched"] / name).read_bytes()
