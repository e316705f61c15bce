"""Runtime proof of what DDP022 reports: an early stop decided from each process's own shard
score ends the training loop at different epochs on different ranks.

``runtime_scripts/shard_score_early_stop.py`` lets accelerate prepare its dev loader and
counts hits shard by shard. Under 2 gloo ranks the processes stop at different epochs and the
run fails (the one that trains on waits for the other in its gradient all-reduce); gathering
the hits before counting them (what the report asks for) makes both stop together with the
same parameters, and DDP022 is then silent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch

from patcher.engine import fix_text
from patcher.registry import all_rules

pytestmark = pytest.mark.slow

SOURCE = (SCRIPTS / "shard_score_early_stop.py").read_text()
HITS = "            hits = model(x).argmax(-1) == y\n"
GATHERED = "            hits = accelerator.gather_for_metrics(model(x).argmax(-1) == y)\n"


def _gathered(source: str) -> str:
    assert HITS in source
    return (
        source.replace(HITS, GATHERED)
        .replace("def evaluate(model, loader):", "def evaluate(accelerator, model, loader):")
        .replace("evaluate(model, dev_loader)", "evaluate(accelerator, model, dev_loader)")
    )


def _ddp022(source: str) -> list[int]:
    output, findings = fix_text(source, all_rules())
    assert output == source  # a report: nothing is rewritten
    return [f.line for f in findings if f.code == "DDP022"]


def test_the_shard_decided_break_is_reported_and_the_gathered_one_is_not() -> None:
    break_line = SOURCE.splitlines().index("                break") + 1
    assert _ddp022(SOURCE) == [break_line]
    assert _ddp022(_gathered(SOURCE)) == []


def test_shard_scores_stop_the_ranks_apart(tmp_path: Path) -> None:
    run = launch(SOURCE, [], tmp_path / "shards", timeout=90)
    assert not run.ok, run.explain()
    stops = sorted(line for line in run.log.splitlines() if "stopped at epoch" in line)
    assert len(set(stops)) == 2 or len(stops) < 2, run.explain()


def test_gathered_scores_stop_every_rank_together(tmp_path: Path) -> None:
    run = launch(_gathered(SOURCE), [], tmp_path / "gathered", timeout=90)
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert set(hashes) == {"0", "1"}, run.explain()
    assert len(set(hashes.values())) == 1, hashes
