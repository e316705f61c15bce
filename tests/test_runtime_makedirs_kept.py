"""DDP011 keeps a directory every rank uses on every rank, proven by running.

A test block (CodeT5 multi-task forks' ``do_test``) makes ``summary/`` if it is missing and every
rank opens a log in it right after, then evaluates and saves. DDP011 gates the block's writes on
global rank 0, its evaluation and the state it sets (``args.task``) staying on every rank. It
used to gate the ``makedirs`` too: rank 0, later to the block than the others, had not made the
directory when rank 1 opened its log there (FileNotFoundError; found in three scripts of the
second review of the unseen batch). The directory is now made where it was, on every rank; the
saves run on rank 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "makedirs_then_every_rank_opens.py"
ARGS = ["--do_test"]
RANK0 = 'if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:'
MAKEDIRS = (
    "            if not os.path.exists(summary_dir):\n                os.makedirs(summary_dir)\n"
)


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_the_saves_are_gated_and_the_directory_is_not(patched_source: str) -> None:
    assert f"            {RANK0}\n                torch.save(" in patched_source
    assert MAKEDIRS in patched_source  # where it was, on every rank


def test_patched_every_rank_opens_its_log_and_one_rank_saves(
    patched_source: str, tmp_path: Path
) -> None:
    run = launch(patched_source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    writers = run.writers()
    for task in ("summarize_python", "translate_java"):
        assert len(writers.get(task + ".bin", ())) == 1, writers
        assert len(writers.get(task + ".log", ())) == 2, writers  # each rank's own line
    assert (run.output / "summary" / "summarize_python.log").read_text().count("bleu-4") == 2


def test_with_the_directory_made_on_rank_zero_alone_rank_one_fails(
    patched_source: str, tmp_path: Path
) -> None:
    """What the rule did before: the ``makedirs`` behind the rank-0 gate as well."""
    gated = MAKEDIRS.replace("            ", "                ")
    source = patched_source.replace(MAKEDIRS, f"            {RANK0}\n{gated}")
    assert source != patched_source
    run = launch(source, ARGS, tmp_path / "gated")
    assert not run.ok
    failed = [r for r in run.records if r.exception is not None]
    assert failed and all(r.dist_rank == 1 for r in failed), run.explain()
    exception = failed[0].exception
    assert exception is not None and "FileNotFoundError" in exception.summary
