"""DDP006 moves only the reads of the results into the evaluation gate, proven by running.

``runtime_scripts/results_read_after_logging.py`` logs the loss between the evaluation gate and
the comparison with the best results (an NER fork of the HF template, eighth batch B1). DDP006
used to move the logging into the gate too: without ``--evaluate_during_training`` the patched
run then logged nothing. (A statement left behind that writes a file or calls anything but a
logger or a getter keeps the old behaviour: the whole run moves, fixture
``DDP006/reader_copies_a_save_left_behind``.) Now the loss log runs on rank 0 whatever the
flag, the comparison only after an evaluation, and the original's UnboundLocalError is gone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, with_launcher_rank

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

SOURCE = (SCRIPTS / "results_read_after_logging.py").read_text()
LOGGED = '"logged loss at step %d: %.4f"'


def _indent(source: str, text: str) -> int:
    line = source[: source.index(text)].rsplit("\n", 1)[1]
    return len(line) - len(line.lstrip())


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SOURCE)


def test_only_the_comparison_moves(patched_source: str) -> None:
    assert LOGGED in SOURCE and LOGGED in patched_source
    assert _indent(SOURCE, LOGGED) == _indent(patched_source, LOGGED)  # not moved into the gate
    gate = patched_source.index("args.evaluate_during_training:")
    assert (
        gate < patched_source.index('if results["acc"] >= best_acc:') < patched_source.index(LOGGED)
    )


def test_without_evaluation_the_loss_is_logged_by_one_rank(
    patched_source: str, tmp_path: Path
) -> None:
    run = launch(patched_source, [], tmp_path / "patched")
    assert run.ok, run.explain()
    steps = re.findall(r"logged loss at step (\d+):", run.log)
    assert sorted(steps) == ["4", "8"], run.log[-2000:]  # 16 steps a rank, every 4, rank 0 only
    assert all(len(pids) == 1 for pids in run.writers().values()), run.writers()
    assert not (run.output / "model_best.bin").exists()
    assert len(set(run.param_hashes().values())) == 1


def test_with_evaluation_rank_zero_saves_the_best(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, ["--evaluate_during_training"], tmp_path / "evaluated")
    assert run.ok, run.explain()
    assert (run.output / "model_best.bin").exists()
    assert all(len(pids) == 1 for pids in run.writers().values()), run.writers()


def test_the_original_fails_without_evaluation(tmp_path: Path) -> None:
    run = launch(with_launcher_rank(SOURCE), [], tmp_path / "original", timeout=90)
    assert not run.ok
    assert any(
        r.exception is not None and "UnboundLocalError" in r.exception.summary for r in run.records
    ), run.explain()
