"""DDP007 at runtime: a sampler built inside the epoch loop is reshuffled, and nothing raises.

Issue 9, class 2: DDP007 used to insert ``train_sampler.set_epoch(epoch)`` at the top of an epoch
loop that builds its sampler further down, so epoch 0 raised ``UnboundLocalError`` in every run,
a single process included. ``runtime_scripts/sampler_in_epoch_loop.py`` has that structure; it is
patched with every rule and run under the real ``accelerate launch`` with 2 gloo ranks, and in a
single process without a launcher.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ranked import SCRIPTS, Ranked, launch, patched

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "sampler_in_epoch_loop.py"
EPOCHS = ["--num_train_epochs", "2"]
EXAMPLES = 32  # load_shard's size


@pytest.fixture(scope="module")
def source() -> str:
    return SCRIPT.read_text()


@pytest.fixture(scope="module")
def fixed(source: str, tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    """The script as ``ddpfix apply`` leaves it, on 2 ranks (one launch for several tests)."""
    return launch(patched(source), EPOCHS, tmp_path_factory.mktemp("ddp007-fixed"))


def _orders(run: Ranked) -> dict[str, list[list[int]]]:
    """RANK → the example indices each epoch visited, from the ``orders-<pid>.json`` files."""
    found = {}
    for path in sorted(run.output.glob("orders-*.json")):
        state = json.loads(path.read_text())
        found[str(state["rank"])] = state["orders"]
    return found


def test_patched_script_trains_on_two_ranks(fixed: Ranked) -> None:
    assert fixed.ok, fixed.explain()
    hashes = fixed.param_hashes()
    assert sorted(hashes) == ["0", "1"], fixed.explain()
    assert len(set(hashes.values())) == 1, hashes  # DDP kept the replicas equal
    writers = fixed.writers()
    assert "pytorch_model.bin" in writers
    assert all(len(pids) == 1 for pids in writers.values()), writers


def test_epochs_get_different_shuffles(fixed: Ranked) -> None:
    assert fixed.ok, fixed.explain()
    orders = _orders(fixed)
    assert sorted(orders) == ["0", "1"]
    for rank, (first, second) in orders.items():
        assert first != second, f"rank {rank} visited the data in the same order twice"
    for epoch in range(2):  # each epoch still splits the data between the ranks, once each
        seen = orders["0"][epoch] + orders["1"][epoch]
        assert sorted(seen) == list(range(EXAMPLES))


def test_without_ddp007_every_epoch_repeats_the_shuffle(source: str, tmp_path: Path) -> None:
    """The control: the same run without DDP007 repeats epoch 0's order, so the test above
    measures the rule and not the script."""
    others = [rule.code for rule in all_rules() if rule.code != "DDP007"]
    run = launch(patched(source, select=others), EPOCHS, tmp_path)
    assert run.ok, run.explain()
    for rank, (first, second) in _orders(run).items():
        assert first == second, f"rank {rank}: the control reshuffled without set_epoch"


def _epoch_loop(tree: ast.Module) -> ast.For:
    for node in ast.walk(tree):
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name):
            if node.target.id == "epoch":
                return node
    raise AssertionError("no epoch loop")


def _binds(statement: ast.stmt, name: str) -> bool:
    return isinstance(statement, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == name for t in statement.targets
    )


def _calls_set_epoch(statement: ast.stmt) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "set_epoch"
        for n in ast.walk(statement)
    )


def test_set_epoch_comes_after_the_sampler_is_bound(source: str) -> None:
    """The old failure, checked statically: in the loop body, the sampler is bound, then the
    DataLoader is built from it, then set_epoch is called, then the data is iterated."""
    body = _epoch_loop(ast.parse(patched(source))).body
    where = {
        "sampler": [i for i, s in enumerate(body) if _binds(s, "train_sampler")],
        "loader": [i for i, s in enumerate(body) if _binds(s, "train_dataloader")],
        "set_epoch": [i for i, s in enumerate(body) if _calls_set_epoch(s)],
        "iterate": [i for i, s in enumerate(body) if isinstance(s, ast.For)],
    }
    assert all(len(found) == 1 for found in where.values()), where
    order = [where[k][0] for k in ("sampler", "loader", "set_epoch", "iterate")]
    assert order == sorted(order), where


def test_patched_script_runs_in_a_single_process(source: str, tmp_path: Path) -> None:
    """Plain ``python run.py``: the RandomSampler path, where the old insertion raised."""
    script = tmp_path / "run.py"
    script.write_text(patched(source))
    output = tmp_path / "output"
    output.mkdir()
    launched = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launched}
    env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run(
        [sys.executable, str(script), "--output_dir", str(output), *EPOCHS],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (orders,) = [json.loads(p.read_text())["orders"] for p in output.glob("orders-*.json")]
    assert [sorted(epoch) for epoch in orders] == [list(range(EXAMPLES))] * 2
