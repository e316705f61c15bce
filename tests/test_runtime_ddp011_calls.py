"""DDP011 at run time: a do_test block whose writes happen in the function it calls.

Issue 9, class 11. ``runtime_scripts/seq2seq_test_function_writes.py`` ends with ``if
args.do_test: test(args, model, device)``; the block itself writes nothing, test() decodes the
test set and writes test_0.output and test_0.gold. DDP011 follows the call and gates the block on
global rank 0 (DDP004 passes the unwrapped model). Patched, 2 gloo ranks under ``accelerate
launch`` must finish, agree on their parameters, write each file from one process, and
test_0.output must hold every test example once, in order, matching test_0.gold. With the rank
clause taken out of the gate (a rule that counts only the block's own writes), both ranks write
both files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, Ranked, launch, patched

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SOURCE = (SCRIPTS / "seq2seq_test_function_writes.py").read_text()
ARGS = ["--do_train", "--do_test"]
EXAMPLES = 37  # N_TEST in the script
RANK_CLAUSE = ' and int(os.environ.get("RANK", args.local_rank)) in [-1, 0]'
GATED = f"    if args.do_test{RANK_CLAUSE}:\n"
FILES = ("test_0.output", "test_0.gold")


def _ungated(source: str) -> str:
    """The patch without the rank clause on the do_test block."""
    assert source.count(GATED) == 1
    return source.replace(GATED, "    if args.do_test:\n")


def _ids(run: Ranked, name: str) -> list[int]:
    return [int(line.split("\t")[0]) for line in (run.output / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SOURCE)


@pytest.fixture(scope="module")
def fixed(patched_source: str, tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    return launch(patched_source, ARGS, Path(tmp_path_factory.mktemp("patched")))


def test_patch_gates_the_do_test_block_on_global_rank_zero(patched_source: str) -> None:
    assert "    if args.do_test:\n        test(args, model, device)\n" in SOURCE
    assert (
        GATED + '        test(args, model.module if hasattr(model, "module") else model, device)\n'
    ) in patched_source
    # test() itself is untouched: its writes stay where they are
    body = SOURCE[SOURCE.index("def test(") : SOURCE.index("def main(")]
    assert body in patched_source


def test_patched_ranks_agree_and_write_each_file_once(fixed: Ranked) -> None:
    assert fixed.ok, fixed.explain()  # every rank exited 0, no hang
    hashes = fixed.param_hashes()
    assert set(hashes) == {"0", "1"}, fixed.explain()
    assert len(set(hashes.values())) == 1, hashes
    writers = fixed.writers()
    assert set(writers) == set(FILES), writers
    assert all(len(pids) == 1 for pids in writers.values()), writers
    assert writers["test_0.output"] == writers["test_0.gold"]
    (pid,) = writers["test_0.output"]
    assert {r.env_rank for r in fixed.records if r.pid == pid} == {0}, fixed.explain()


def test_patched_output_has_every_test_example_once(fixed: Ranked) -> None:
    assert _ids(fixed, "test_0.output") == list(range(EXAMPLES))
    assert _ids(fixed, "test_0.gold") == list(range(EXAMPLES))


def test_without_the_rank_clause_both_ranks_write(patched_source: str, tmp_path: Path) -> None:
    """The check above can fail: every rank runs test() and writes the same files."""
    run = launch(_ungated(patched_source), ARGS, tmp_path / "ungated")
    assert run.ok, run.explain()
    writers = run.writers()
    assert all(len(writers[name]) == 2 for name in FILES), writers
