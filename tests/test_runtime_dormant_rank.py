"""A fix must not wake up a hazard it cannot fix, proven by running (issue 9).

``runtime_scripts/unmatched_cache_barrier.py`` keeps only the first half of a barrier pair in its
training branch. Under a modern launcher its ``--local_rank`` stays -1: every process trains
alone and exits. Reading LOCAL_RANK alone (what a ``sed`` one-liner does, and DDP001 without the
post-conditions) wakes the unmatched barrier up: rank 1 waits in it while rank 0 wraps the model,
and the run hangs or dies. With the post-conditions the engine judges the unpatched script as the
launcher runs it (the rank is dormant), withdraws DDP001 and says why; the script still runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch

from patcher.engine import fix_text
from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "unmatched_cache_barrier.py"


def test_reading_local_rank_is_withdrawn_with_the_barrier_as_reason() -> None:
    source = SCRIPT.read_text()
    output, findings = fix_text(source, all_rules())
    assert 'os.environ["LOCAL_RANK"]' not in output
    assert sorted({f.code for f in findings if f.fixed}) == [
        "DDP002",
        "DDP007",
        "DDP010",
        "PRT003",
        "PRT004",
    ]  # the rest of the rewrite stands: none of it wakes the rank
    (ddp001,) = [f for f in findings if f.code == "DDP001"]
    assert not ddp001.fixed
    assert "not rewritten: torch.distributed.barrier is a collective and only ranks other " in (
        ddp001.message
    )
    assert fix_text(output, all_rules())[0] == output


def test_naive_read_hangs_and_the_patched_script_runs(tmp_path: Path) -> None:
    source = SCRIPT.read_text()
    naive, _ = fix_text(source, all_rules(), checks=[])
    assert 'os.environ["LOCAL_RANK"]' in naive
    woken = launch(naive, [], tmp_path / "naive", timeout=40)
    assert woken.outcome.timed_out or woken.outcome.returncode != 0, woken.explain()

    output, _ = fix_text(source, all_rules())
    run = launch(output, [], tmp_path / "patched", timeout=120)
    assert not run.outcome.timed_out and run.outcome.returncode == 0, run.explain()
    assert [r.exit_code for r in run.records] == [0, 0], run.explain()
    assert len(run.param_hashes()) == 2  # two lone copies, each trained to the end
