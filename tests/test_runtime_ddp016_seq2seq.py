"""DDP016 proven by running on the GraphCodeBERT seq2seq shape: a DataParallel-only script that
trains, evaluates and tests inside ``main()`` and declares a ``--local_rank`` it never reads.

The declared option used to stop the conversion (it looked like distribution), and ``main()`` has
no ``args`` parameter: under 2 gloo ranks the processes kept training alone, each decoding the
whole dev set and writing every file. Patched, the ranks form one DDP job with the same global
batch; the dev evaluation (loss, decoding, reading dev.output back to score it) and the test run
on rank 0 with the unwrapped model, the accumulation counters it resets stay on every rank, and
every file has one writer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, run_alone

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "dataparallel_seq2seq.py"
ARGS = ["--do_train", "--do_eval", "--do_test", "--train_batch_size", "8"]
ACCUMULATE = [*ARGS, "--gradient_accumulation_steps", "2"]
FILES = ("dev.output", "dev.gold", "test_0.output", "test_0.gold", "test_1.output", "test_1.gold")
DEV_DECODED = 2 * 8  # two epochs, a sample of 8 dev examples each


def _states(output: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(output.glob("state-*.json"))]


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_patch_converts_main(patched_source: str) -> None:
    assert "torch.distributed.init_process_group(" in patched_source
    assert "RandomSampler(train_data) if args.local_rank == -1 else DistributedSampler(" in (
        patched_source
    )
    assert "model = torch.nn.parallel.DistributedDataParallel(" in patched_source
    assert 'if args.do_test and int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:' in (
        patched_source
    )
    # the setup reads the rank; no second read of LOCAL_RANK after parse_args
    assert patched_source.count('os.environ["LOCAL_RANK"]') == 1


def test_original_processes_train_alone_and_write_twice(tmp_path: Path) -> None:
    run = launch(SCRIPT.read_text(), ARGS, tmp_path / "original")
    assert all(r.dist_rank is None for r in run.records), run.explain()  # nobody joined
    states = _states(run.output)
    assert [s["batch_sizes"] for s in states] == [[8], [8]]  # each took the whole global batch
    assert [s["decoded"] for s in states] == [DEV_DECODED, DEV_DECODED]  # dev scored twice
    writers = run.writers()
    assert all(len(writers.get(name, ())) == 2 for name in FILES), writers


@pytest.mark.parametrize("args", [ARGS, ACCUMULATE], ids=["plain", "accumulate2"])
def test_patched_ranks_form_one_ddp_job(
    patched_source: str, tmp_path: Path, args: list[str]
) -> None:
    run = launch(patched_source, args, tmp_path / "patched")
    assert run.ok, run.explain()  # every rank joined and exited 0, nothing hung
    assert len(set(run.param_hashes().values())) == 1, run.explain()
    states = _states(run.output)
    per_process = 4 if args is ARGS else 2  # 8 global = 4 a process x 2 (/ 2 accumulated)
    assert [s["batch_sizes"] for s in states] == [[per_process], [per_process]]
    assert sum(s["decoded"] for s in states) == DEV_DECODED  # the dev sample scored once
    writers = run.writers()
    assert {name: len(writers.get(name, ())) for name in FILES} == dict.fromkeys(FILES, 1)
    assert len(writers["pytorch_model.bin"]) == 1  # checkpoint-last, -best-ppl, -best-bleu
    for idx in (0, 1):
        lines = (run.output / f"test_{idx}.output").read_text().splitlines()
        assert [line.split("\t")[0] for line in lines] == [str(i) for i in range(10)]
    assert len((run.output / "dev.output").read_text().splitlines()) == 8


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
    for name in (*FILES, "checkpoint-best-ppl/pytorch_model.bin"):
        assert (outputs["original"] / name).read_bytes() == (outputs["patched"] / name).read_bytes()
