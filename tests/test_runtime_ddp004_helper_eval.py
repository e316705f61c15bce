"""DDP004 on an evaluation known by what it does, proven by running (second unseen-batch review,
C1: GAN-CodeBERT's ``results = valid_acc(args, model, ...)`` in the rank-0 save gate).

``runtime_scripts/rank_zero_helper_evaluates.py`` wraps its model (which has a buffer, as
RoBERTa's position_ids) in DDP and has local rank 0 alone score the dev set every 3 steps with
``valid_acc()``: no evaluate-like name, but it trains nothing and runs the model it is handed
forward. With the rank (as ``torch.distributed.launch`` gave it), rank 0's forward through the
wrapper broadcasts buffers the other rank never receives: gloo fails it or it waits. Patched,
valid_acc gets ``model.module`` and DDP005 its SequentialSampler: both ranks exit 0 with equal
parameters, and rank 0 alone writes every dev score over all 21 examples.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, with_launcher_rank

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "rank_zero_helper_evaluates.py"
N_DEV = 21  # the script's dev examples
EVALUATIONS = 4  # 12 steps per rank (48 examples, 2 ranks, batches of 4, 2 epochs), every 3rd
WRAPPED = "results = valid_acc(args, model, valid_dataset, eval_when_training=True)"
UNWRAPPED = (
    'results = valid_acc(args, model.module if hasattr(model, "module") else model, '
    "valid_dataset, eval_when_training=True)"
)


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_patch_hands_valid_acc_the_unwrapped_model(patched_source: str) -> None:
    assert WRAPPED in SCRIPT.read_text()
    assert UNWRAPPED in patched_source and WRAPPED not in patched_source
    assert "    eval_sampler = SequentialSampler(eval_dataset)\n" in patched_source  # DDP005
    assert patched(patched_source) == patched_source


def test_unpatched_rank_0_evaluates_through_the_wrapper_alone(tmp_path: Path) -> None:
    run = launch(with_launcher_rank(SCRIPT.read_text()), [], tmp_path / "original", timeout=90)
    failed = [r for r in run.records if r.dist_rank == 0 and r.exit_code != 0]
    assert not run.ok and (failed or run.outcome.timed_out), run.explain()


def test_patched_without_the_unwrap_fails_the_same_way(patched_source: str, tmp_path: Path) -> None:
    """The checks below can fail: the rest of the patch alone does not save rank 0."""
    naive = patched_source.replace(UNWRAPPED, WRAPPED)
    assert naive != patched_source
    run = launch(naive, [], tmp_path / "naive", timeout=90)
    failed = [r for r in run.records if r.dist_rank == 0 and r.exit_code != 0]
    assert not run.ok and (failed or run.outcome.timed_out), run.explain()


def test_patched_ranks_finish_agree_and_rank_0_scores_the_whole_dev_set(
    patched_source: str, tmp_path: Path
) -> None:
    run = launch(patched_source, [], tmp_path / "patched")
    assert run.ok, run.explain()  # every rank exited 0, nothing hung
    hashes = run.param_hashes()
    assert set(hashes) == {"0", "1"} and len(set(hashes.values())) == 1, hashes
    writers = run.writers()
    assert set(writers) == {"dev_scores.txt"}, writers
    (pid,) = writers["dev_scores.txt"]
    assert {r.env_rank for r in run.records if r.pid == pid} == {0}, run.explain()
    lines = (run.output / "dev_scores.txt").read_text().splitlines()
    assert [int(line.split()[0]) for line in lines] == [3, 6, 9, 12]
    assert len(lines) == EVALUATIONS
    assert {int(line.split()[1]) for line in lines} == {N_DEV}  # every dev example, once each
