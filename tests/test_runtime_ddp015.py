"""DDP015 proven by running: a metrics writer created on rank 0, used where every rank runs.

With the rank read from the environment (as ``python -m torch.distributed.launch`` gave it), rank
1 reaches ``tb_writer.add_scalar`` without a writer: ``UnboundLocalError``. Patched, the call runs
behind the test that created the writer: both ranks exit 0, train the same model, and one process
writes the metrics file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "rank_zero_logger.py"
GUARDED = (
    "        if args.data_num == -1:\n"
    "            if args.local_rank in [-1, 0] and args.data_num == -1:\n"
    '                tb_writer.add_scalar("dev_loss", dev_loss, epoch)\n'
)


def test_patch_guards_the_call_with_the_creation_test() -> None:
    output = patched(SCRIPT.read_text())
    assert GUARDED in output
    assert patched(output) == output


def test_without_ddp015_rank_1_has_no_writer(tmp_path: Path) -> None:
    codes = [rule.code for rule in all_rules() if rule.code != "DDP015"]
    source = patched(SCRIPT.read_text(), codes, postconditions=False)  # sed-style: no checks
    run = launch(source, [], tmp_path / "unguarded")
    assert not run.ok
    causes = {r.dist_rank: r.exception.type for r in run.records if r.exception is not None}
    assert causes[1] == "UnboundLocalError", run.explain()  # rank 0 then loses its peer
    assert causes.get(0) in (None, "RuntimeError"), run.explain()


def test_patched_ranks_exit_and_agree_with_one_writer(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), [], tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    assert {name: len(pids) for name, pids in run.writers().items()} == {"metrics.jsonl": 1}
    lines = (run.output / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2  # one scalar per epoch
