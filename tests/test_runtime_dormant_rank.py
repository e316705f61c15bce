"""A fix must not wake up a hazard it cannot fix, proven by running (issue 9).

``runtime_scripts/unmatched_cache_barrier.py`` keeps only the first half of a barrier pair in its
training branch. Under a modern launcher its ``--local_rank`` stays -1: every process trains
alone and exits. Reading LOCAL_RANK alone (what a ``sed`` one-liner does, and DDP001 without the
post-conditions) wakes the unmatched barrier up: rank 1 waits in it while rank 0 wraps the model,
and the run hangs or dies. With the post-conditions the engine judges the unpatched script as the
launcher runs it (the rank is dormant), withdraws DDP001 and says why; the script still runs.
DDP018 now adds rank 0's half of that barrier (tests/test_runtime_ddp018.py runs the result), so
the hazard is one DDP001 cannot fix only with DDP018 left out: these tests leave it out.
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
#: The default rules without the one that pairs the barrier (``--ignore DDP018``).
RULES = [rule for rule in all_rules() if rule.code != "DDP018"]


def test_reading_local_rank_is_withdrawn_with_the_barrier_as_reason() -> None:
    source = SCRIPT.read_text()
    output, findings = fix_text(source, RULES)
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
    assert fix_text(output, RULES)[0] == output


def test_naive_read_hangs_and_the_patched_script_runs(tmp_path: Path) -> None:
    source = SCRIPT.read_text()
    naive, _ = fix_text(source, RULES, checks=[])
    assert 'os.environ["LOCAL_RANK"]' in naive
    woken = launch(naive, [], tmp_path / "naive", timeout=40)
    assert woken.outcome.timed_out or woken.outcome.returncode != 0, woken.explain()

    output, _ = fix_text(source, RULES)
    run = launch(output, [], tmp_path / "patched", timeout=120)
    assert not run.outcome.timed_out and run.outcome.returncode == 0, run.explain()
    assert [r.exit_code for r in run.records] == [0, 0], run.explain()
    assert len(run.param_hashes()) == 2  # two lone copies, each trained to the end
