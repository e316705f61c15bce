"""DDP016 proven by running on UniXcoder's code-summarization shape: a DataParallel-only script
whose dev evaluation writes dev.output/dev.gold, reads them back to score, saves the best
checkpoint, and stops after two epochs without improvement (``if patience == 2: break``, live).

DDP016 used to report such a script: every rank would rewrite the dev files and read them back
for its own patience counter. It is now converted (``patches/_early_stop.py``): the evaluation
runs on global rank 0 (with the unwrapped model, DDP004), the ``break`` becomes a flag rank 0
sets, and every rank receives it by ``broadcast_object_list`` before leaving the loop. The score
never improves after the first epoch, so the stop fires after the third of six epochs: under 2
gloo ranks every rank must leave there together (a rank that went on would wait alone in its next
gradient all-reduce), with the same parameters, each dev and test file written by rank 0 alone.
Unpatched, each process trains alone and writes every file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, run_alone

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "dataparallel_live_early_stop.py"
ARGS = ["--do_train", "--do_eval", "--do_test", "--train_batch_size", "8"]
FILES = ("dev.output", "dev.gold", "pytorch_model.bin", "test.output")
STOPPED_AFTER, DEV_SAMPLE = 3, 8  # of 6 epochs; 8 dev examples decoded in each evaluation
RANK0 = 'int(os.environ.get("RANK", args.local_rank)) in [-1, 0]'


def _states(output: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(output.glob("state-*.json"))]


def _traces(output: Path) -> list[list[str]]:
    """Each process's evaluation events (one trace file per process that evaluated)."""
    return [p.read_text().splitlines() for p in sorted(output.glob("state-trace-*.txt"))]


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_patch_decides_the_stop_on_rank_zero_and_broadcasts_it(patched_source: str) -> None:
    assert "torch.distributed.init_process_group(" in patched_source
    assert "model = torch.nn.parallel.DistributedDataParallel(" in patched_source
    assert f"_ddpfix_stop = [False]\n            if args.do_eval and {RANK0}:" in patched_source
    assert "if patience == 2:\n                        _ddpfix_stop[0] = True\n" in patched_source
    assert (
        "            if args.local_rank != -1:\n"
        "                torch.distributed.broadcast_object_list(_ddpfix_stop, src=0)\n"
        "            if _ddpfix_stop[0]:\n"
        "                break\n"
    ) in patched_source
    assert f"if args.do_test and {RANK0}:" in patched_source
    assert patched(patched_source) == patched_source  # settled


def test_original_processes_train_alone_and_write_twice(tmp_path: Path) -> None:
    """Both processes evaluate and rewrite the same dev files. They race on them: a process
    that reads dev.gold back while the other truncates it fails (the bug itself), so only what
    the race cannot change is asserted of every run."""
    run = launch(SCRIPT.read_text(), ARGS, tmp_path / "original")
    assert len(run.records) == 2 and all(r.dist_rank is None for r in run.records), run.explain()
    assert len(_traces(run.output)) == 2  # both evaluated
    writers = run.writers()
    assert all(len(writers.get(name, ())) == 2 for name in ("dev.output", "dev.gold")), writers
    states = _states(run.output)
    assert all(s["epochs"] == STOPPED_AFTER for s in states)  # each alone, the same stop
    failed = [r for r in run.records if r.exit_code != 0]
    if not failed:
        assert len(states) == 2
        assert all(len(writers.get(name, ())) == 2 for name in FILES), writers
    else:  # a file the other process was rewriting under it, read back: an exception, no hang
        assert not run.outcome.timed_out, run.explain()
        assert all(r.exception is not None for r in failed), run.explain()


def test_patched_ranks_leave_the_loop_together(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()  # every rank joined and exited 0, nothing hung
    assert len(set(run.param_hashes().values())) == 1, run.explain()
    states = _states(run.output)
    assert [s["batch_sizes"] for s in states] == [[4], [4]]  # 8 global = 4 a process x 2
    assert [s["epochs"] for s in states] == [STOPPED_AFTER, STOPPED_AFTER]  # the same epoch
    (trace,) = _traces(run.output)  # one process evaluated: rank 0
    evaluations = [line for line in trace if line.startswith("evaluation")]
    assert evaluations == [f"evaluation {e}" for e in range(STOPPED_AFTER)]
    assert trace.count("decoded") == STOPPED_AFTER * DEV_SAMPLE  # the dev sample scored once
    writers = run.writers()
    assert {name: len(writers.get(name, ())) for name in FILES} == dict.fromkeys(FILES, 1)
    assert len((run.output / "dev.output").read_text().splitlines()) == DEV_SAMPLE
    lines = (run.output / "test.output").read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(i) for i in range(10)]


def test_without_the_broadcast_rank_one_trains_on_alone(
    patched_source: str, tmp_path: Path
) -> None:
    """The broadcast is what keeps the ranks together: with rank 0's flag kept to itself, rank
    0 leaves after the third epoch and rank 1 starts a fourth, whose gradient all-reduce nobody
    joins."""
    broadcast = "                torch.distributed.broadcast_object_list(_ddpfix_stop, src=0)\n"
    assert broadcast in patched_source
    run = launch(
        patched_source.replace(broadcast, "                pass\n"), ARGS, tmp_path / "cut"
    )
    assert not run.ok
    assert run.outcome.timed_out or sorted(run.exit_codes, key=str) != [0, 0], run.explain()


def test_without_a_launcher_the_patched_script_runs_as_before(
    patched_source: str, tmp_path: Path
) -> None:
    """Plain ``python``: one process, the full batch, the same stop, parameters and files."""
    outputs = {
        name: run_alone(source, ARGS, tmp_path / name)
        for name, source in (("original", SCRIPT.read_text()), ("patched", patched_source))
    }
    original, after = (_states(outputs[n]) for n in ("original", "patched"))
    assert original == after and after[0]["epochs"] == STOPPED_AFTER
    assert _traces(outputs["original"]) == _traces(outputs["patched"])
    for name in ("dev.output", "dev.gold", "test.output"):
        assert (outputs["original"] / name).read_bytes() == (outputs["patched"] / name).read_bytes()


# The same decision in a train() helper that receives the model as ``net``, whose evaluation
# first resets the running loss the training loop reads (kept on every rank, the rest on rank 0).
HELPER = SCRIPTS / "dataparallel_live_early_stop_helper.py"
HELPER_ARGS = ["--do_eval", "--train_batch_size", "8"]
HELPER_STOP = 3  # of 8 epochs: the first scores best, two more without improvement
STEPS = HELPER_STOP * 4  # 32 examples, a global batch of 8


def test_helper_keeps_the_resets_on_every_rank_and_decides_on_rank_zero(tmp_path: Path) -> None:
    source = patched(HELPER.read_text())
    assert (
        "        if args.do_eval:\n"
        "            tr_loss = 0.0\n"
        "            nb_tr_steps = 0\n"
        f"            if {RANK0}:\n"
        "                net.eval()\n"
    ) in source
    assert '(net.module if hasattr(net, "module") else net)(dev_set' in source  # DDP004
    assert "                        _ddpfix_stop[0] = True\n" in source
    run = launch(source, HELPER_ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1, run.explain()
    states = _states(run.output)
    assert [(s["epochs"], s["steps"]) for s in states] == [(HELPER_STOP, STEPS)] * 2
    (trace,) = _traces(run.output)
    assert trace == [f"evaluation {e}" for e in range(HELPER_STOP)]
    assert len(run.writers().get("dev_predictions.txt", ())) == 1


def test_helper_without_a_launcher_runs_as_before(tmp_path: Path) -> None:
    outputs = {
        name: run_alone(source, HELPER_ARGS, tmp_path / name)
        for name, source in (
            ("original", HELPER.read_text()),
            ("patched", patched(HELPER.read_text())),
        )
    }
    original, after = (_states(outputs[n]) for n in ("original", "patched"))
    assert original == after and after[0]["epochs"] == HELPER_STOP
    assert _traces(outputs["original"]) == _traces(outputs["patched"])
