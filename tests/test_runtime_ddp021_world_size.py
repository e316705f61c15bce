"""DDP021 takes the world size from the launcher, proven by running.

The script takes ``torch.cuda.device_count()`` as the number of processes: it splits the batch
by it and divides every all-reduced loss by it. On a machine without GPUs that count is 0 and
every rank dies in its first division; where it differs from the processes launched, every
averaged loss is off by the ratio. Patched, the count is ``WORLD_SIZE``: each of the 2 ranks
takes half the batch, the averaged loss is the mean of the ranks' own losses, and the replicas
agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "device_count_world_size.py"
WORLD = '    args.nprocs = int(os.environ.get("WORLD_SIZE", torch.cuda.device_count()))\n'


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_the_count_reads_world_size(patched_source: str) -> None:
    assert WORLD in patched_source
    assert "torch.cuda.device_count()" not in patched_source.replace(WORLD, "")


def test_original_dies_in_its_first_division(tmp_path: Path) -> None:
    run = launch(SCRIPT.read_text(), [], tmp_path / "original")
    assert not run.ok
    assert len(run.records) == 2, run.explain()
    for record in run.records:
        assert record.exception is not None, run.explain()
        assert "ZeroDivisionError" in record.exception.summary, run.explain()


def test_patched_averages_over_the_processes_launched(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, [], tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    ranks = [json.loads((run.output / f"losses-{r}.json").read_text()) for r in (0, 1)]
    assert [r["batch_size"] for r in ranks] == [4, 4]
    steps = len(ranks[0]["local"])
    assert steps == 2 and len(ranks[1]["local"]) == steps
    for step in range(steps):
        mean = (ranks[0]["local"][step] + ranks[1]["local"][step]) / 2
        for r in ranks:
            assert r["averaged"][step] == pytest.approx(mean)
