"""DDP016 on a loss with in-batch negatives, proven by running: the converted DDP job trains the
same model as one process with the global batch.

The script (``runtime_scripts/in_batch_negatives.py``) scores each query against every code of
its batch, as GraphCodeBERT's and UniXcoder's code search do. Split over two processes without
more, each would score against 4 codes instead of 8 and the objective would change. Converted,
each process gathers the codes of both (an autograd-aware gather added to the script, whose
backward sums the processes' gradients) and offsets its labels to its own block, and DDP
averages the gradients: the update is the one of the global batch. The training set is one
global batch (8 pairs), so every step sees the same 8 pairs in both runs whatever order the
samplers draw them in; the loss does not depend on that order. The script has no dropout and
uses plain SGD (no Adam normalisation to hide a wrongly scaled gradient).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, run_alone

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "in_batch_negatives.py"
ARGS = ["--do_train", "--do_eval", "--train_batch_size", "8"]
#: float32 sums in another order (8 rows in one matrix vs 2 x 4 gathered); measured 7.5e-7
TOLERANCE = 1e-5
GATHER = "DdpfixAllGather.apply(code_vec)"
OFFSET = " + torch.distributed.get_rank() * code_vec.size(0)"


def _states(output: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(output.glob("state-*.json"))]


def _plain(source: str, workdir: Path) -> dict:
    """Run ``source`` with plain python (one process, no launcher); its end state."""
    (state,) = _states(run_alone(source, ARGS, workdir))
    return state


def _difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(abs(x - y) for name in a for x, y in zip(a[name], b[name], strict=True))


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The original, one process, global batch 8."""
    return _plain(SCRIPT.read_text(), tmp_path_factory.mktemp("single") / "original")


def test_patched_ddp_job_trains_the_single_process_model(tmp_path: Path, single: dict) -> None:
    source = patched(SCRIPT.read_text())
    assert GATHER in source and OFFSET in source
    run = launch(source, ARGS, tmp_path)
    assert run.ok, run.explain()
    states = _states(run.output)
    assert [s["batch_sizes"] for s in states] == [[4], [4]]  # 8 global = 4 per process x 2
    assert len({s["params"] for s in states}) == 1  # replicas identical
    assert single["batch_sizes"] == [8]
    difference = _difference(states[0]["values"], single["values"])
    assert difference <= TOLERANCE, difference
    assert {name: len(pids) for name, pids in run.writers().items()} == {
        "model.bin": 1,
        "eval_results.txt": 1,
    }


def test_without_the_gather_the_ddp_job_trains_another_model(tmp_path: Path, single: dict) -> None:
    """The comparison above can fail: the same DDP job scoring against local codes only (what
    a plain conversion would do) ends far from the single-process model."""
    source = patched(SCRIPT.read_text()).replace(GATHER, "code_vec").replace(OFFSET, "")
    run = launch(source, ARGS, tmp_path)
    assert run.ok, run.explain()
    states = _states(run.output)
    assert len({s["params"] for s in states}) == 1
    assert _difference(states[0]["values"], single["values"]) > 100 * TOLERANCE


def test_patched_script_without_a_launcher_is_the_original(tmp_path: Path, single: dict) -> None:
    state = _plain(patched(SCRIPT.read_text()), tmp_path / "patched")
    assert state["batch_sizes"] == [8]
    assert state["params"] == single["params"]  # bit for bit: the original expressions ran
