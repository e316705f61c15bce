"""PRT003 follows a backend passed by name to the literal it comes from, proven by running.

``args.dist_backend = 'nccl'`` then ``init_process_group(backend=args.dist_backend)`` (eighth
batch C4, FreeYOLO's ``init_distributed_mode``): PRT003 knew only the literal in the call, so
on a machine without CUDA every rank still died with "Distributed package doesn't have NCCL
built in". Patched, the choice falls back to gloo there and both ranks train one model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

SOURCE = (SCRIPTS / "backend_held_in_args.py").read_text()
CHOICE = "    args.dist_backend = 'nccl' if torch.cuda.is_available() else 'gloo'\n"


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SOURCE)


def test_the_named_choice_falls_back_to_gloo(patched_source: str) -> None:
    assert CHOICE in patched_source
    assert "backend=args.dist_backend" in patched_source  # the call itself is left as it was


def test_patched_both_ranks_train_one_model(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, [], tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert set(hashes) == {"0", "1"}, run.explain()
    assert len(set(hashes.values())) == 1, hashes


def test_the_original_fails_on_every_rank_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("NCCL works on this machine")
    run = launch(SOURCE, [], tmp_path / "original", timeout=90)
    assert not run.ok
    assert not run.param_hashes(), run.explain()
    assert "NCCL" in run.log, run.explain()
