"""DDP011 keeps a container the block fills on every rank, proven by running.

A test block opens a log per task into ``handles`` (a dict made before the block) and an
every-rank loop after the block closes them. DDP011 used to take ``tasks = [...]`` for the only
state the block sets and gate everything after it on rank 0, so rank 1 closed handles it never
opened (KeyError; the second review of the unseen batch, A4). The filled dict now counts as
state the block carries out: the saves go to rank 0, the filling stays on every rank.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "block_fills_handles.py"
ARGS = ["--do_test"]
RANK0 = 'int(os.environ.get("RANK", args.local_rank)) in [-1, 0]'
FILLING = (
    "        for task in tasks:\n"
    '            handles[task] = open(os.path.join(args.output_dir, task + ".log"), "a+")\n'
)


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_only_the_saves_are_gated(patched_source: str) -> None:
    assert FILLING in patched_source  # where it was, on every rank
    assert f"            if {RANK0}:\n                torch.save(" in patched_source


def test_patched_every_rank_closes_what_it_opened(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    writers = run.writers()
    for task in ("summarize", "translate"):
        assert len(writers.get(task + ".bin", ())) == 1, writers


def test_with_the_filling_on_rank_zero_rank_one_fails(patched_source: str, tmp_path: Path) -> None:
    """What the rule did before: everything after ``tasks = [...]`` behind the rank-0 test."""
    start = patched_source.index('        print("testing"')
    end = patched_source.index("    for task in tasks:\n        handles[task].close()")
    block = patched_source[start:end]
    gated = f"        if {RANK0}:\n" + "".join(
        "    " + line if line.strip() else line for line in block.splitlines(keepends=True)
    )
    run = launch(patched_source[:start] + gated + patched_source[end:], ARGS, tmp_path / "old")
    assert not run.ok
    failed = [r for r in run.records if r.exception is not None]
    assert failed and all(r.dist_rank == 1 for r in failed), run.explain()
    exception = failed[0].exception
    assert exception is not None and "KeyError" in exception.summary
