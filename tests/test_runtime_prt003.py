"""PRT003 proven by running: a device test that skips the process group on CPU machines.

``if args.local_rank == -1 or args.no_cuda or not torch.cuda.is_available():`` takes the
single-process branch on a CPU although the rank (read from LOCAL_RANK by DDP001) still picks a
``DistributedSampler`` and the DDP wrap: every rank crashes without a process group. PRT003 drops
the CUDA term; the distributed branch then falls back to gloo and the CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "cpu_escape_device_test.py"
ARGS = ["--do_eval"]
ESCAPE = "or not torch.cuda.is_available():"


def test_the_cuda_term_goes() -> None:
    assert ESCAPE in SCRIPT.read_text()
    assert ESCAPE not in patched(SCRIPT.read_text())


def test_patched_ranks_join_and_agree(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes


def test_with_the_cuda_term_no_rank_has_a_process_group(tmp_path: Path) -> None:
    codes = [rule.code for rule in all_rules() if rule.code != "PRT003"]
    source = patched(SCRIPT.read_text(), codes)
    assert ESCAPE in source
    run = launch(source, ARGS, tmp_path / "escape")
    assert not run.ok
    assert all(r.dist_rank is None for r in run.records), run.explain()
    assert any(r.exception is not None for r in run.records), run.explain()
