"""In a script whose rank stays dormant, no evaluation goes behind a RANK gate while the lone
copies train on, proven by running (eighth batch A1, xtreme's ``run_tag.py``).

DDP001 withholds the LOCAL_RANK read in ``runtime_scripts/dormant_rank_gated_evaluation.py``
(a rank-0 early stop), so under the launcher every process is a lone run of the same job.
DDP003 + DDP008 used to put the logging step's evaluation on ``RANK`` 0: its DataLoader draws
from the global random generator, so process 0's stream parted from process 1's and the copies
trained different models (different weights, different early stops) over the same files.
The rank model's lone-copies post-condition withdraws that gate now: both processes train the
same model, as in the original.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, Ranked, launch, patched

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

SOURCE = (SCRIPTS / "dormant_rank_gated_evaluation.py").read_text()
ARGS = ["--evaluate_during_training"]
GATE = "                if args.local_rank == -1 and args.evaluate_during_training:\n"
RANK_GATE = (
    '                if int(os.environ.get("RANK", args.local_rank)) in [-1, 0] '
    "and args.evaluate_during_training:\n"
)


def _states(run: Ranked) -> list[tuple[str, int]]:
    return sorted(
        (state["params"], state["steps"])
        for state in (json.loads(p.read_text()) for p in run.output.glob("state-*.json"))
    )


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SOURCE)


def test_the_logging_evaluation_stays_on_every_process(patched_source: str) -> None:
    assert 'os.environ["LOCAL_RANK"]' not in patched_source  # the rank stays dormant
    assert GATE in patched_source


def test_patched_lone_copies_train_the_same_model(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, ARGS, tmp_path / "patched")
    assert not run.outcome.timed_out and run.exit_codes == [0, 0], run.explain()  # lone runs
    states = _states(run)
    assert len(states) == 2 and states[0] == states[1], states


def test_the_rank_gated_evaluation_splits_them(patched_source: str, tmp_path: Path) -> None:
    """The check above can fail: with the evaluation on RANK 0, the copies part."""
    source = patched_source.replace(GATE, RANK_GATE)
    assert source != patched_source
    run = launch(source, ARGS, tmp_path / "split")
    states = _states(run)
    assert len(states) == 2 and states[0] != states[1], (states, run.explain())
