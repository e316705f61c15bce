"""DDP011 at run time: a prediction block that reaches a library collective stays on every rank.

Issue 9, class 1. ``runtime_scripts/accelerate_gather_predict.py`` parses ``--local_rank`` but
lets accelerate prepare the model and a sharded test loader; its ``if args.do_predict:`` block
scores each rank's shard, gathers the predictions with ``accelerator.gather_for_metrics`` (an
``all_gather`` every rank must join) and writes predictions.txt on the main process. DDP011 must
not gate that block: patched, 2 gloo ranks under ``accelerate launch`` finish, agree on their
parameters and leave every test example in predictions.txt once, in order. Gating the whole
block to global rank 0 (what DDP011 does to blocks that only write) leaves rank 0 alone in the
gather: the run fails and nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, Ranked, launch, patched

from patcher.engine import fix_text
from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SOURCE = (SCRIPTS / "accelerate_gather_predict.py").read_text()
ARGS = ["--do_train", "--do_predict"]
EXAMPLES = 37  # N_TEST in the script
BLOCK = "    if args.do_predict:\n"
GATED = '    if args.do_predict and int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:\n'
GATHER = "            idx, preds = accelerator.gather_for_metrics((idx, preds))\n"
MAIN_ONLY = "        if accelerator.is_main_process:\n"


def _block(source: str) -> str:
    """The do_predict block, up to the final save."""
    start = source.index("    if args.do_predict")
    return source[start : source.index("    model_to_save = ", start)]


def _gated_to_rank_zero(source: str) -> str:
    """The rewrite DDP011 gives a block that writes and reaches no collective."""
    assert source.count(BLOCK) == 1
    return source.replace(BLOCK, GATED)


def _unguarded(source: str) -> str:
    """The block with its write on every rank (no ``is_main_process`` test)."""
    block = _block(source)
    head, write = block.split(MAIN_ONLY)
    dedented = "".join(line[4:] if line.strip() else line for line in write.splitlines(True))
    return source.replace(block, head + dedented)


def _predictions(run: Ranked) -> list[int]:
    """The example ids in predictions.txt, line by line."""
    lines = (run.output / "predictions.txt").read_text().splitlines()
    return [int(line.split("\t")[0]) for line in lines]


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SOURCE)


@pytest.fixture(scope="module")
def fixed(patched_source: str, tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    return launch(patched_source, ARGS, Path(tmp_path_factory.mktemp("patched")))


def test_ddp011_leaves_the_gathering_block_ungated(patched_source: str) -> None:
    assert _block(patched_source) == _block(SOURCE)  # byte-identical, no rank test inside either
    _, findings = fix_text(SOURCE, all_rules())
    assert not [f for f in findings if f.code == "DDP011"], findings
    # the rest of the patch still happened: the local rank comes from the environment
    assert 'args.local_rank = int(os.environ["LOCAL_RANK"])' in patched_source


def test_the_collective_is_what_keeps_the_block_ungated() -> None:
    """With the write on every rank, the same block without the gather is gated (so DDP011 does
    look at this script); with the gather it is not."""
    every_rank_writes = _unguarded(SOURCE)
    assert MAIN_ONLY not in every_rank_writes and GATHER in every_rank_writes
    assert GATED in patched(every_rank_writes.replace(GATHER, ""))
    assert BLOCK in patched(every_rank_writes)


def test_patched_script_runs_on_two_ranks(fixed: Ranked) -> None:
    assert fixed.ok, fixed.explain()  # every rank exited 0, no hang
    hashes = fixed.param_hashes()
    assert set(hashes) == {"0", "1"}, fixed.explain()
    assert len(set(hashes.values())) == 1, hashes
    writers = fixed.writers()
    assert set(writers) == {"predictions.txt"}, writers
    assert all(len(pids) == 1 for pids in writers.values()), writers


def test_patched_script_predicts_every_example_once(fixed: Ranked) -> None:
    assert _predictions(fixed) == list(range(EXAMPLES))


def test_gating_the_block_to_rank_zero_breaks_the_gather(
    patched_source: str, tmp_path: Path
) -> None:
    """The check above can fail: rank 0 waits in all_gather for a rank that never comes."""
    run = launch(_gated_to_rank_zero(patched_source), ARGS, tmp_path / "gated", timeout=60)
    assert not run.ok, run.explain()
    assert not (run.output / "predictions.txt").exists(), run.explain()
