"""DDP018 proven by running: rank 0 joins the cache barrier the other ranks wait in.

``runtime_scripts/one_sided_cache_barrier.py`` (WebQuery's shape) kept only the waiting half of
the template's barrier pair around its cached dataset. Reading LOCAL_RANK alone wakes it up:
rank 1 waits in that barrier while rank 0 wraps its model in DDP (hang). With DDP018 rank 0
joins it after building and caching the dataset and before ``train()``: DDP001's read is kept,
every rank exits 0 with the same parameters, and the cache is written once, by rank 0, and read
by the other rank. When the waiting half also checks the cache (``and not
os.path.exists(cached)``), a copy of that check in rank 0's half is False once rank 0 has written
the cache: that copy hangs, so DDP018 reports instead and DDP001's read is withdrawn.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, run_alone

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "one_sided_cache_barrier.py"
READ = 'args.local_rank = int(os.environ["LOCAL_RANK"])'
HALF = (
    "    train_dataset = TextDataset(args, args.data_dir)\n"
    "    if args.local_rank == 0:\n"
    "        torch.distributed.barrier()\n"
    "    model = train(args, train_dataset, model)\n"
)
UNPAIRED = "".join(
    line for line in HALF.splitlines(True) if "barrier" not in line and "== 0" not in line
)


def _sources(output: Path) -> dict[str, str]:
    """RANK → whether that process built its features or loaded rank 0's cache."""
    found = {}
    for path in output.glob("features-*.json"):
        state = json.loads(path.read_text())
        found[str(state["rank"])] = state["source"]
    return found


def test_patch_pairs_the_barrier_and_keeps_the_local_rank_read() -> None:
    output = patched(SCRIPT.read_text())
    assert HALF in output
    assert READ in output


def test_without_ddp018_the_read_is_withdrawn() -> None:
    """The engine's post-condition: the unpaired barrier is a hang DDP001 must not wake."""
    codes = [rule.code for rule in all_rules() if rule.code != "DDP018"]
    output = patched(SCRIPT.read_text(), codes)
    assert READ not in output
    assert "    if args.local_rank == 0:\n        torch.distributed.barrier()\n    model =" not in (
        output
    )


def test_woken_without_rank_zero_half_hangs(tmp_path: Path) -> None:
    source = patched(SCRIPT.read_text())
    unpaired = source.replace(HALF, UNPAIRED)
    assert READ in unpaired and HALF not in unpaired
    run = launch(unpaired, [], tmp_path / "unpaired", timeout=40)
    assert run.outcome.timed_out or run.outcome.returncode != 0, run.explain()


def test_patched_ranks_train_together_on_one_cache(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), [], tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert sorted(hashes) == ["0", "1"] and len(set(hashes.values())) == 1, hashes
    writers = run.writers()
    assert len(writers["cached_train_features"]) == 1, writers
    assert _sources(run.output) == {"0": "built", "1": "loaded"}


def test_patched_still_runs_alone(tmp_path: Path) -> None:
    output = run_alone(patched(SCRIPT.read_text()), [], tmp_path / "alone")
    assert _sources(output) == {"None": "built"}
    assert len(list(output.glob("state-*.json"))) == 1


# The waiting half also checks the cache (``and not os.path.exists(cached)``): rank 0 writes that
# cache before its half, so a copy of the check there turns rank 0's half off while rank 1 waits.
GATE = (
    "    if args.local_rank not in [-1, 0]:\n"
    "        torch.distributed.barrier()  # Barrier to make sure only the first process"
)
CACHED = "    cached = os.path.join(args.data_dir, 'cached_train_features')\n"
CHECKED_GATE = GATE.replace("[-1, 0]:", "[-1, 0] and not os.path.exists(cached):")
CHECKED_HALF = HALF.replace("== 0:", "== 0 and not os.path.exists(cached):")


def test_cache_checked_barrier_is_reported_and_the_read_withdrawn() -> None:
    source = SCRIPT.read_text()
    assert GATE in source
    output = patched(source.replace(GATE, CACHED + CHECKED_GATE))
    assert READ not in output
    assert "== 0 and not os.path.exists(cached)" not in output


def test_copying_the_cache_check_into_rank_zeros_half_hangs(tmp_path: Path) -> None:
    """What DDP018 wrote before it copied only steady terms: rank 0's copy of the check is
    False once it has written the cache, so it goes on to DDP while rank 1 waits."""
    woken = patched(SCRIPT.read_text())
    assert READ in woken and HALF in woken and GATE in woken
    copied = woken.replace(GATE, CACHED + CHECKED_GATE).replace(HALF, CHECKED_HALF)
    run = launch(copied, [], tmp_path / "copied", timeout=40)
    assert run.outcome.timed_out or run.outcome.returncode != 0, run.explain()
