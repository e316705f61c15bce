"""DDP008 at run time, on simulated nodes: gates that share names, and per-node feature caches.

Issue 9, class 5: ``runtime_scripts/shared_logger_gates.py`` binds its logger and checkpoint
handler under one ``local_rank in [-1, 0]`` gate and reads them under later ones. Patched, 2
simulated nodes of 1 rank each (every node has its own local rank 0) must finish; the old
behaviour (only the first gate on the global rank) raises ``UnboundLocalError`` on the second
node.

Issue 9, class 15: ``runtime_scripts/cached_features_barrier.py`` caches its features between
the halves of a per-node barrier pair (the HF template's ``load_and_cache_examples``). Patched,
2 nodes of 2 ranks each with a cache directory per node must write each node's cache once and
let the node's other rank load it complete; with ``shared_cache = true`` and one shared
directory, the whole job writes it once.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

from ranked import SCRIPTS, Ranked, launch, patched  # noqa: E402

from patcher.engine import fix_text  # noqa: E402
from patcher.registry import all_rules  # noqa: E402
from patcher.verify.records import RankRecord  # noqa: E402

LOGGER = (SCRIPTS / "shared_logger_gates.py").read_text()
CACHE = (SCRIPTS / "cached_features_barrier.py").read_text()
GLOBAL = re.compile(r"""int\(os\.environ\.get\(["']RANK["'], args\.local_rank\)\)""")
GLOBAL_RANK = 'int(os.environ.get("RANK", args.local_rank))'
CACHE_FILE = "cached_train_features"


def _by_rank(run: Ranked) -> dict[int | None, RankRecord]:
    return {record.env_rank: record for record in run.records}


def _writers(run: Ranked, name: str) -> dict[str, set[int | None]]:
    """Directory → ``RANK`` of the processes that wrote ``name`` there."""
    found: dict[str, set[int | None]] = {}
    for record in run.records:
        for path, _how in record.writes:
            if Path(path).name == name:
                found.setdefault(Path(path).parent.name, set()).add(record.env_rank)
    return found


def _features(run: Ranked) -> dict[int, dict[str, str]]:
    """RANK → where its features came from (``built``/``loaded``) and the cache directory."""
    found = {}
    for path in sorted(run.output.glob("features-*.json")):
        state = json.loads(path.read_text())
        found[int(state["rank"])] = state
    return found


def _naive(source: str) -> str:
    """The old behaviour: only the gates that save are on the global rank; the gates that read
    what the first one bound (marked ``# log`` and ``# close`` in the script) stay per node."""
    lines = []
    for line in source.splitlines(keepends=True):
        if line.rstrip().endswith(("# log", "# close")):
            line = GLOBAL.sub("args.local_rank", line)
        lines.append(line)
    return "".join(lines)


@pytest.fixture(scope="module")
def logger_fixed(tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    source = patched(LOGGER)
    assert len(GLOBAL.findall(source)) == 4  # the three gates of train(), the final save
    return launch(source, [], tmp_path_factory.mktemp("logger-fixed"), ranks=1, nodes=2)


def test_gates_that_share_names_run_on_two_nodes(logger_fixed: Ranked) -> None:
    run = logger_fixed
    assert run.ok, run.explain()  # every rank exited 0, no hang
    assert {r.env_local_rank for r in run.records} == {0}  # each node's local rank 0
    hashes = run.param_hashes()
    assert sorted(hashes) == ["0", "1"], run.explain()
    assert len(set(hashes.values())) == 1, hashes
    writers = run.writers()
    for name in ("train.log", "args.json", "checkpoint-last.bin", "pytorch_model.bin"):
        assert name in writers, writers
    assert all(len(pids) == 1 for pids in writers.values()), writers
    rank0 = _by_rank(run)[0].pid
    assert writers["train.log"] == {rank0}


def test_only_the_first_gate_global_is_unbound_on_the_second_node(tmp_path: Path) -> None:
    """The control: the old rewrite (the gate that saves on the global rank, the gates that
    read its names per node) dies on the second node's local rank 0."""
    source = _naive(patched(LOGGER))
    assert len(GLOBAL.findall(source)) == 2
    run = launch(source, [], tmp_path, ranks=1, nodes=2, timeout=90)
    assert not run.ok
    second = _by_rank(run)[1]
    raised = second.exception
    assert raised is not None, run.explain()
    assert raised.type == "UnboundLocalError", run.explain()
    assert "tb_logger" in raised.message


def test_feature_cache_is_written_once_per_node(tmp_path: Path) -> None:
    source = patched(CACHE)
    cache_gate = '        if args.local_rank in [-1, 0]:\n            logger.info("Saving'
    assert cache_gate in source  # the cache save stays per node, as the barrier pair
    assert "    if args.local_rank == 0 and not evaluate:\n" in source
    run = launch(source, [], tmp_path, ranks=2, nodes=2, timeout=180)
    assert run.ok, run.explain()  # nobody read a missing or half-written cache
    hashes = run.param_hashes()
    assert sorted(hashes) == ["0", "1", "2", "3"], run.explain()
    assert len(set(hashes.values())) == 1, hashes
    assert _writers(run, CACHE_FILE) == {"node-0": {0}, "node-1": {2}}  # each node's local 0
    features = _features(run)
    assert {rank: f["source"] for rank, f in features.items()} == {
        0: "built",
        1: "loaded",  # after the barrier, from its own node's cache
        2: "built",
        3: "loaded",
    }
    assert features[1]["data_dir"] == features[0]["data_dir"] != features[3]["data_dir"]
    assert run.writers()["pytorch_model.bin"] == {_by_rank(run)[0].pid}


def test_cache_save_on_the_global_rank_leaves_the_second_node_without_cache(
    tmp_path: Path,
) -> None:
    """The control: the old rewrite (the cache save on the global rank, the barrier pair per
    node) never writes the second node's cache; its other rank builds the features again."""
    source = patched(CACHE)
    gate = '        if args.local_rank in [-1, 0]:\n            logger.info("Saving'
    assert gate in source
    source = source.replace(gate, gate.replace("args.local_rank", GLOBAL_RANK))
    run = launch(source, [], tmp_path, ranks=2, nodes=2, timeout=180)
    assert run.ok, run.explain()
    assert _writers(run, CACHE_FILE) == {"node-0": {0}}
    assert _features(run)[3]["source"] == "built"


def test_shared_feature_cache_is_written_once_per_job(tmp_path: Path) -> None:
    source, _ = fix_text(CACHE, all_rules(), {"DDP008": {"shared_cache": True}})
    load = source[source.index("def load_and_cache_examples") : source.index("def main")]
    assert len(GLOBAL.findall(load)) == 3  # both halves of the pair and the save, together
    shared = tmp_path / "shared"
    run = launch(source, ["--data_dir", str(shared)], tmp_path, ranks=1, nodes=2, timeout=120)
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert sorted(hashes) == ["0", "1"] and len(set(hashes.values())) == 1, hashes
    assert _writers(run, CACHE_FILE) == {"shared": {0}}
    features = _features(run)
    assert {rank: f["source"] for rank, f in features.items()} == {0: "built", 1: "loaded"}
