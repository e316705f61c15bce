"""DDP019 proven by running: a local-rank branch that wraps in apex DDP gets its process group.

``runtime_scripts/apex_branch_without_group.py`` reproduces UniXcoder's code completion: under
``--local_rank`` it wraps the model in apex's ``DistributedDataParallel`` but never sets up a
process group, so under ``accelerate launch`` the rank is never read and both processes train
alone on all the data and both write the checkpoint and predictions.txt. Patched, DDP019 sets up
the group (gloo on the CPU) before ``args.device = device``, DDP001 then reads LOCAL_RANK, PRT006
falls back to torch's DDP, and DDP011/DDP004 evaluate and predict on rank 0: the two ranks train
one model and each file has one writer. Without DDP019 the read would crash, so DDP001 reports
instead and the processes stay alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

from ranked import SCRIPTS, Ranked, launch, patched, run_alone  # noqa: E402

from patcher.engine import fix_text  # noqa: E402
from patcher.registry import all_rules  # noqa: E402
from patches.ddp001_local_rank_from_env import NO_PROCESS_GROUP  # noqa: E402
from patches.ddp019_process_group_for_ddp_branch import MARKER  # noqa: E402

SCRIPT = (SCRIPTS / "apex_branch_without_group.py").read_text()
ARGS = ["--do_train", "--do_eval", "--do_test"]
FILES = ("model.bin", "predictions.txt")
DEV_EXAMPLES = 12


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    return launch(SCRIPT, ARGS, Path(tmp_path_factory.mktemp("apex-original")))


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    return launch(patched(SCRIPT), ARGS, Path(tmp_path_factory.mktemp("apex-patched")))


def test_the_setup_goes_before_the_device_line_and_the_rank_is_read() -> None:
    output, findings = fix_text(SCRIPT, all_rules())
    assert MARKER in output
    setup = output.index(MARKER)
    assert output.index("torch.distributed.init_process_group(", setup) < output.index(
        "    args.device = device\n", setup
    )
    assert [f.fixed for f in findings if f.code in ("DDP001", "DDP019")] == [True, True, True]


def test_original_processes_train_alone_and_both_write(original: Ranked) -> None:
    """What the rule fixes: no process has a group, and every file has two writers."""
    assert len(original.records) == 2 and all(r.exit_code == 0 for r in original.records)
    assert all(r.dist_rank is None for r in original.records), original.explain()
    writers = original.writers()
    assert all(len(writers.get(name, ())) == 2 for name in FILES), writers


def test_patched_ranks_join_train_one_model_and_write_once(fixed: Ranked) -> None:
    assert fixed.ok, fixed.explain()
    assert {r.dist_rank for r in fixed.records} == {0, 1}
    hashes = fixed.param_hashes()
    assert set(hashes) == {"0", "1"} and len(set(hashes.values())) == 1, hashes
    writers = fixed.writers()
    rank0 = {r.pid for r in fixed.records if r.dist_rank == 0}
    assert all(writers.get(name) == rank0 for name in FILES), writers
    lines = (fixed.output / "predictions.txt").read_text().splitlines()
    assert len(lines) == DEV_EXAMPLES  # every dev example predicted once


def test_without_the_rule_the_rank_stays_dormant() -> None:
    """DDP019 withdrawn: DDP001 reports (reading the rank would crash with no group)."""
    codes = [rule.code for rule in all_rules() if rule.code != "DDP019"]
    source = patched(SCRIPT, codes)
    assert "init_process_group" not in source and 'os.environ["LOCAL_RANK"]' not in source
    _, findings = fix_text(SCRIPT, [r for r in all_rules() if r.code in codes])
    assert [f.message for f in findings if f.code == "DDP001"] == [NO_PROCESS_GROUP]


def _params(output: Path) -> str:
    (state,) = output.glob("state-*.json")
    return str(json.loads(state.read_text())["params"])


def test_a_single_process_runs_as_before(tmp_path: Path) -> None:
    """Started with plain python (local rank -1): the same model and predictions."""
    before = run_alone(SCRIPT, ARGS, tmp_path / "original")
    after = run_alone(patched(SCRIPT), ARGS, tmp_path / "patched")
    assert (before / "predictions.txt").read_text() == (after / "predictions.txt").read_text()
    assert _params(before) == _params(after)
