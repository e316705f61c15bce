"""DDP011 proven by running: an in-loop evaluation block that also resets accumulation state.

The seq2seq template's dev evaluation resets ``tr_loss``/``nb_tr_steps``/``eval_flag`` and then
decodes and writes. Gating the whole block to rank 0 (what DDP011 did before the rank model)
makes rank 0 alone reset ``nb_tr_steps``: the ranks then step on different iterations and their
parameters drift apart silently. The patched script keeps the resets on every rank.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "seq2seq_eval_resets_state.py"
ARGS = ["--do_train", "--do_eval"]
INNER = '            if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:\n'


def _whole_block_gated(source: str) -> str:
    """What gating the whole block looks like: the resets move under the rank test too."""
    head = "                # Eval model with dev dataset\n"
    resets = (
        "                tr_loss = 0\n"
        "                nb_tr_steps = 0\n"
        "                eval_flag = False\n"
    )
    assert head + resets + INNER.replace("            if", "                if") in source
    moved = source.replace(
        resets + INNER.replace("            if", "                if"),
        INNER.replace("            if", "                if")
        + resets.replace("                ", "                    "),
    )
    assert moved != source
    return moved


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_patch_keeps_the_resets_on_every_rank(patched_source: str) -> None:
    block = patched_source.split("# Eval model with dev dataset\n", 1)[1]
    resets, gated = block.split('if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:', 1)
    assert "nb_tr_steps = 0" in resets and "eval_flag = False" in resets
    assert (
        "nb_tr_steps = 0" not in gated
        and 'open(os.path.join(args.output_dir, "dev.output")' in gated
    )


def test_patched_ranks_stay_in_sync_and_write_once(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes
    writers = run.writers()
    assert writers["dev.output"] and writers["best.bin"]
    assert all(len(pids) == 1 for pids in writers.values()), writers


def test_gating_the_whole_block_desynchronises_the_ranks(
    patched_source: str, tmp_path: Path
) -> None:
    """The check above can fail: the naive rewrite exits cleanly with different parameters."""
    run = launch(_whole_block_gated(patched_source), ARGS, tmp_path / "naive")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 2, hashes
