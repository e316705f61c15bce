"""DDP017 proven by running: a distributed evaluation gives one process's results, exactly.

``runtime_scripts/eval_clone_pairs.py`` is a BigCloneBench-style script whose evaluate() and
test() run behind rank-0 gates. Patched with ``--select ALL`` (the default rules and DDP017), it
trains on two gloo ranks, both ranks evaluate their shard during training and at the end, and rank
0 writes the results. The checkpoint the two ranks saved is then evaluated again by one plain
``python`` process (patched and original): the predictions file and the metrics must be
byte-identical. Evaluation sets of 7 examples (not divisible by 2) and of 1 (fewer examples than
ranks: rank 1 scores nothing) are both run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SOURCE = (SCRIPTS / "eval_clone_pairs.py").read_text()
TRAIN = ["--do_train", "--evaluate_before_training", "--evaluate_during_training"]
TRAIN += ["--do_eval", "--do_test"]
RESULTS = ("predictions.txt", "eval_results.json")
CHECKPOINT = Path("checkpoint-best-f1") / "model.bin"


def sizes(n: int) -> list[str]:
    return ["--eval_size", str(n), "--test_size", str(n)]


def expected_pairs(n: int) -> list[str]:
    """The pairs of predictions.txt, in dataset order (PairDataset's urls)."""
    return [f"a/{i}.java\tb/{i * 7}.java" for i in range(n)]


def single(source: str, workdir: Path, checkpoint: Path, args: list[str]) -> Path:
    """Run ``source`` as one plain process (no launcher, no process group) on ``checkpoint``:
    ``--do_eval --do_test`` only; returns its output directory."""
    workdir.mkdir(parents=True)
    script = workdir / "run.py"
    script.write_text(source)
    output = workdir / "output"
    (output / CHECKPOINT).parent.mkdir(parents=True)
    shutil.copy(checkpoint, output / CHECKPOINT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, str(script), "--do_eval", "--do_test", *args]
    done = subprocess.run(
        [*command, "--output_dir", str(output)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return output


@pytest.fixture(scope="module")
def source() -> str:
    return patched(SOURCE, ["ALL"])


@pytest.fixture(scope="module", params=[7, 1], ids=["7-examples", "1-example"])
def runs(request, source: str, tmp_path_factory: pytest.TempPathFactory):
    n = request.param
    base = Path(tmp_path_factory.mktemp(f"ddp017-{n}"))
    ranked = launch(source, [*TRAIN, *sizes(n)], base / "two-ranks")
    assert ranked.ok, ranked.explain()
    checkpoint = ranked.output / CHECKPOINT
    patched_single = single(source, base / "patched-single", checkpoint, sizes(n))
    original_single = single(SOURCE, base / "original-single", checkpoint, sizes(n))
    return n, ranked, patched_single, original_single


def test_the_rule_makes_evaluation_distributed(source: str) -> None:
    assert source.count("= _ddpfix_eval_shard(eval_dataset)") == 2  # evaluate() and test()
    assert "_ddpfix_gather_rows(eval_sampler, logits, y_trues)" in source
    assert "if args.do_eval:\n" in source and "if args.do_test:\n" in source  # every rank
    assert "results = evaluate(args, model.module if hasattr(model, " in source  # unwrapped
    assert "DistributedSampler(eval_dataset)" not in source


def test_every_rank_exits_and_the_replicas_agree(runs) -> None:
    _, ranked, _, _ = runs
    assert ranked.ok, ranked.explain()
    hashes = ranked.param_hashes()
    assert set(hashes) == {"0", "1"}, ranked.explain()
    assert len(set(hashes.values())) == 1, hashes


def test_every_example_is_scored_once_in_dataset_order(runs) -> None:
    n, ranked, _, _ = runs
    lines = (ranked.output / "predictions.txt").read_text().splitlines()
    assert [line.rsplit("\t", 1)[0] for line in lines] == expected_pairs(n)
    assert all(line.rsplit("\t", 1)[1] in ("0", "1") for line in lines)
    assert f'"eval_examples": {n}' in (ranked.output / "eval_results.json").read_text()


def test_results_are_byte_identical_to_one_process(runs) -> None:
    _, ranked, patched_single, original_single = runs
    for name in RESULTS:
        distributed = (ranked.output / name).read_bytes()
        assert distributed == (patched_single / name).read_bytes(), name
        assert distributed == (original_single / name).read_bytes(), name  # as before


def test_one_writer_per_file(runs) -> None:
    _, ranked, _, _ = runs
    writers = ranked.writers()
    for name in (*RESULTS, "model.bin"):
        assert len(writers.get(name, ())) == 1, writers


def test_the_ranks_shared_the_evaluation(runs) -> None:
    """Rank 1 evaluated as often as rank 0 (before and during training, --do_eval, --do_test)."""
    _, ranked, _, _ = runs
    calls = {r.dist_rank: r.eval_calls for r in ranked.records}
    assert calls[0] == calls[1] == 5, calls  # epoch 0 + 2 epochs + do_eval + do_test


def test_with_the_default_rules_rank_one_waits(tmp_path: Path) -> None:
    """The default rules' rank-0 evaluation, for contrast: the same results, rank 1 idle."""
    ranked = launch(patched(SOURCE), [*TRAIN, *sizes(7)], tmp_path / "default")
    assert ranked.ok, ranked.explain()
    calls = {r.dist_rank: r.eval_calls for r in ranked.records}
    assert calls[1] == 1 and calls[0] == 5, calls  # rank 1: the every-rank score only
    lines = (ranked.output / "predictions.txt").read_text().splitlines()
    assert [line.rsplit("\t", 1)[0] for line in lines] == expected_pairs(7)


def test_default_rules_leave_evaluation_on_rank_zero() -> None:
    """Opt-in: without --select, DDP017 does not run."""
    default = patched(SOURCE)
    assert "_ddpfix_eval_shard" not in default
    assert 'if args.do_eval and int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:' in default
