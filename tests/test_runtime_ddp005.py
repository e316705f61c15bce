"""DDP005 at run time: evaluate() called on every rank and on rank 0 alone (issue 9, class 12).

``runtime_scripts/evaluate_every_rank_and_rank0.py`` evaluates once before training on every
rank (through the DDP wrapper) and after each epoch behind a rank-0 gate; evaluate() builds the
template's ``SequentialSampler if local_rank == -1 else DistributedSampler`` choice and writes
predictions.txt (examples in dataset order zipped with the ids the loader scored). Patched, two
gloo ranks under ``accelerate launch`` must finish, agree on their parameters and leave every
example scored once, in order; patched without DDP005, rank 0 scores a shuffled shard.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

from ranked import SCRIPTS, Ranked, launch, patched  # noqa: E402

from patcher.registry import all_rules  # noqa: E402

SOURCE = (SCRIPTS / "evaluate_every_rank_and_rank0.py").read_text()
ARGS = ["--evaluate_during_training"]
EXAMPLES = 37  # N_EXAMPLES in the script


def predictions(run: Ranked) -> list[tuple[int, int]]:
    """(example id written, example id scored) per line of predictions.txt."""
    lines = (run.output / "predictions.txt").read_text().splitlines()
    return [(int(line.split("\t")[0]), int(line.split("\t")[1])) for line in lines]


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    return launch(patched(SOURCE), ARGS, Path(tmp_path_factory.mktemp("patched")))


@pytest.fixture(scope="module")
def without_ddp005(tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    others = [rule.code for rule in all_rules() if rule.code != "DDP005"]
    source = patched(SOURCE, select=others)
    assert "else DistributedSampler(eval_dataset)" in source  # the shard choice is still there
    return launch(source, ARGS, Path(tmp_path_factory.mktemp("without-ddp005")))


def test_patched_script_runs_on_two_ranks(fixed: Ranked) -> None:
    assert fixed.ok, fixed.explain()  # every rank exited 0, no hang
    hashes = fixed.param_hashes()
    assert set(hashes) == {"0", "1"}, fixed.explain()
    assert len(set(hashes.values())) == 1, hashes


def test_patched_script_scores_every_example_once_in_order(fixed: Ranked) -> None:
    rows = predictions(fixed)
    assert [written for written, _ in rows] == list(range(EXAMPLES))
    assert [scored for _, scored in rows] == list(range(EXAMPLES))  # labels on the right pairs


def test_without_ddp005_rank_zero_scores_a_shard(without_ddp005: Ranked) -> None:
    """The old behaviour, so the test above can fail: the run succeeds, the results do not."""
    assert without_ddp005.ok, without_ddp005.explain()
    rows = predictions(without_ddp005)
    assert len(rows) == (EXAMPLES + 1) // 2  # rank 0's shard of a DistributedSampler
    assert [scored for _, scored in rows] != [written for written, _ in rows]
