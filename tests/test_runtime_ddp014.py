"""DDP014 proven by running: a script that shards its data but never wraps the model in DDP.

Under 2 gloo ranks the original joins a process group and gives each rank half the data, so the
two ranks end with different parameters (and the prediction file is written from one of two
different models). Patched, the model is wrapped after its DataParallel block, ``generate`` is
taken from the module inside the wrapper, and both ranks end with identical parameters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, with_launcher_rank

from patcher.engine import fix_text
from patcher.registry import all_rules, select_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "sharded_without_ddp.py"
WRAP = (
    "    if args.local_rank != -1:\n"
    "        model = torch.nn.parallel.DistributedDataParallel(\n"
    "            model, device_ids=[args.local_rank] if torch.cuda.is_available() else None\n"
    "        )\n"
)


def test_patch_wraps_after_the_dataparallel_block_and_unwraps_generate() -> None:
    output = patched(SCRIPT.read_text())
    assert "        model = torch.nn.DataParallel(model)\n" + WRAP in output
    assert (
        'preds.extend((model.module if hasattr(model, "module") else model)'
        ".generate(source.to(args.device)).tolist())" in output
    )
    assert patched(output) == output  # idempotent


def _as_legacy_launcher_runs_it() -> str:
    return with_launcher_rank(SCRIPT.read_text())


def test_without_ddp014_ranks_train_separate_models(tmp_path: Path) -> None:
    codes = [rule.code for rule in all_rules() if rule.code != "DDP014"]
    source = patched(_as_legacy_launcher_runs_it(), codes)  # CPU fixes, set_epoch, rank-0 gates
    assert "DistributedDataParallel" not in source
    run = launch(source, [], tmp_path / "unwrapped")
    assert run.ok, run.explain()  # it runs: the bug is silent
    assert all(r.dist_rank is not None for r in run.records)  # a process group exists ...
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 2, hashes  # ... and two models


def test_without_its_rank_the_script_reports_instead_of_reading_it() -> None:
    """DDP001 alone would make it half distributed: it reports; with DDP014 both apply."""
    codes = [rule.code for rule in all_rules() if rule.code != "DDP014"]
    _, findings = fix_text(SCRIPT.read_text(), select_rules(all_rules(), codes))
    assert [f.fixed for f in findings if f.code == "DDP001"] == [False]
    _, findings = fix_text(SCRIPT.read_text(), all_rules())
    assert [f.fixed for f in findings if f.code == "DDP001"] == [True]  # no stale report


def test_patched_ranks_train_one_model(tmp_path: Path) -> None:
    run = launch(patched(_as_legacy_launcher_runs_it()), [], tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    run = launch(patched(SCRIPT.read_text()), [], tmp_path / "patched-env")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes
    assert {name: len(pids) for name, pids in run.writers().items()} == {
        "test.output": 1,
        "pytorch_model.bin": 1,
    }
    lines = (run.output / "test.output").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(i) for i in range(12)]
