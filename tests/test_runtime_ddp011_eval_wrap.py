"""DDP011 and DDP004 (DDP005 in the same apply) proven by running: an evaluation every rank
runs, that wraps the model it is handed in DDP, scores a DistributedSampler shard and writes
predictions.txt checked line by line against the reference (CodeXGLUE token-level completion's
``eval_acc()``, issue 10).

Unpatched, each rank scores its own shuffled shard and writes it to the same path: the reference
check fails, or the last writer wins with half the predictions. Patched, the do_eval block runs
on global rank 0 alone, with a SequentialSampler and without the wrap: every example is scored
once, in order, and the predictions file has one writer. Gating the block without dropping the
wrap leaves rank 0 building a DDP wrapper alone: gloo fails it when the other ranks exit
("Connection closed by peer"), NCCL waits for them until the timeout.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, with_launcher_rank

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "eval_acc_wraps_model.py"
ARGS = ["--do_train", "--do_eval"]
N_TEST = 23  # the script's test blocks
WRAP = (
    "    if args.local_rank != -1:\n"
    "        model = torch.nn.parallel.DistributedDataParallel(model)\n"
    "\n"
    "    model.eval()\n"
)
GATE = '    if args.do_eval and int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:\n'


def _with_rank() -> str:
    return with_launcher_rank(SCRIPT.read_text())


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def _predictions(output: Path) -> list[int]:
    lines = (output / "test_predictions.txt").read_text().splitlines()
    return [int(line.split()[0]) for line in lines]


def test_patch_gates_the_block_and_drops_the_wrap(patched_source: str) -> None:
    assert GATE in patched_source
    assert "    eval_sampler = SequentialSampler(dataset)\n" in patched_source
    assert "# wrap for the distributed run" not in patched_source
    assert "    model.eval()\n" in patched_source and WRAP not in patched_source
    train = patched_source.split("def train(", 1)[1].split("def eval_acc(", 1)[0]
    assert "model = torch.nn.parallel.DistributedDataParallel(model)" in train  # training's own
    assert 'args.local_rank = int(os.environ["LOCAL_RANK"])' in patched_source  # DDP001 kept
    assert patched(patched_source) == patched_source


def test_unpatched_ranks_score_and_write_their_own_shards(tmp_path: Path) -> None:
    run = launch(_with_rank(), ARGS, tmp_path / "original")
    out_of_order = [r for r in run.records if r.exception and "out of order" in r.exception.summary]
    two_writers = len(run.writers().get("test_predictions.txt", ())) == 2
    assert out_of_order or two_writers, run.explain()
    assert not run.ok or _predictions(run.output) != list(range(N_TEST))


def test_patched_ranks_agree_and_one_writes_every_prediction(
    patched_source: str, tmp_path: Path
) -> None:
    run = launch(patched_source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes
    writers = run.writers()
    assert {name: len(pids) for name, pids in writers.items()} == {
        "test_gold.txt": 1,
        "test_predictions.txt": 1,
    }, writers
    assert _predictions(run.output) == list(range(N_TEST))  # each example once, in order


def test_gating_without_dropping_the_wrap_fails_rank_0(patched_source: str, tmp_path: Path) -> None:
    """The checks above can fail: rank 0 alone building the wrapper waits for ranks that exit."""
    naive = patched_source.replace(
        "    model.eval()\n    total, correct = 0, 0\n",
        "    if args.local_rank != -1:\n"
        "        model = torch.nn.parallel.DistributedDataParallel(model)\n"
        "    model.eval()\n    total, correct = 0, 0\n",
    )
    assert naive != patched_source
    run = launch(naive, ARGS, tmp_path / "naive", timeout=60)
    failed = [r for r in run.records if r.dist_rank == 0 and r.exit_code != 0]
    assert not run.ok and (failed or run.outcome.timed_out), run.explain()
    assert not (run.output / "test_predictions.txt").exists(), run.explain()


def test_already_gated_evaluation_loses_its_wrap_too(tmp_path: Path) -> None:
    """A fork that already gates the block on rank 0 hangs in the wrap once the rank is read;
    DDP004 drops the wrap there (and DDP005 makes the sampler sequential)."""
    gated = SCRIPT.read_text().replace(
        "    if args.do_eval:\n", "    if args.do_eval and args.local_rank in [-1, 0]:\n"
    )
    assert gated != SCRIPT.read_text()
    source = patched(gated)
    assert WRAP not in source and "    eval_sampler = SequentialSampler(dataset)\n" in source
    assert 'args.local_rank = int(os.environ["LOCAL_RANK"])' in source
    run = launch(source, ARGS, tmp_path / "gated")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    assert len(run.writers()["test_predictions.txt"]) == 1
    assert _predictions(run.output) == list(range(N_TEST))
