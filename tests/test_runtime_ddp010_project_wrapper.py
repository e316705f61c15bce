"""DDP010 leaves a project's own ``init_process_group`` alone, proven by running.

The script imports ``init_process_group`` from its own module, a helper that takes no
arguments and sets up gloo itself. DDP010 used to add ``timeout=`` to every call of that name:
every rank then failed with TypeError before training (seventh unseen batch, a DeBERTa
fine-tuning project). Only ``torch.distributed``'s function gets the timeout now: patched, the
script runs as before, one model on both ranks and one writer of its checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

PROJECT = SCRIPTS / "project_dist"
HELPER = {"dist_utils.py": (PROJECT / "dist_utils.py").read_text()}
CALL = "    init_process_group()\n"


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched((PROJECT / "train.py").read_text())


def test_the_project_call_keeps_its_arguments(patched_source: str) -> None:
    assert CALL in patched_source
    assert "timeout" not in patched_source


def test_patched_runs_one_model_with_one_writer(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, [], tmp_path / "patched", extra_files=HELPER)
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    assert len(run.writers()["model.bin"]) == 1


def test_the_old_rewrite_fails_on_every_rank(patched_source: str, tmp_path: Path) -> None:
    source = "import datetime\n" + patched_source.replace(
        CALL, "    init_process_group(timeout=datetime.timedelta(minutes=180))\n"
    )
    run = launch(source, [], tmp_path / "old", extra_files=HELPER)
    assert not run.ok
    failed = [r for r in run.records if r.exception is not None]
    assert len(failed) == 2, run.explain()
    assert all("TypeError" in r.exception.summary for r in failed if r.exception)
