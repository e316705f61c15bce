"""DDP011 proven by running on CodeT5 ``run_gen.py``'s shape: a half-distributed trainer (data
sharded by ``--local_rank``, the model only in DataParallel, so DDP014 wraps it) whose dev
evaluation computes the perplexity through the model, writes ``test_e<epoch>.output``/``.gold``,
reads them back to score, and stops on two patience counters (a ``break`` in the middle of the
evaluation, another at its end).

DDP011 used to keep that evaluation on every rank (gating only its writes) and report the
hazard: every rank rewrote the prediction files and read them back, so a rank that read another's
half-written copy could stop alone, and once DDP014 wrapped the model the others would hang in
their next all-reduce. It now runs the evaluation on global rank 0 with the unwrapped model
(``patches/_early_stop.py``): each ``break`` becomes a flag rank 0 sets (what followed the
mid-evaluation ``break`` runs under ``if not <flag>:``), and every rank receives the flag by
``broadcast_object_list`` before leaving the loop. The perplexity only grows after the first
epoch and the score never improves, so the stop fires mid-evaluation in the third epoch of
eight, before that epoch's decoding: both ranks must leave there, with the same parameters,
each prediction file written by rank 0 alone. The same evaluation gated on a flag of its own
(``if args.do_eval_bleu:``, which is no DDP011 block) is rewritten alike by DDP014; one that
first resets the running loss keeps that reset on every rank (DDP011 used to move its ``break``
under the rank-0 test with the rest of the block: rank 0 left the loop alone).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched, run_alone, with_launcher_rank

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "sharded_scored_early_stop.py"
ARGS = ["--do_train", "--do_eval", "--do_test"]
STOPPED_AFTER = 3  # of 8 epochs: the third evaluation stops on the perplexity
DECODED = ("e0", "e1")  # the third evaluation stops before decoding
PREDICTIONS = tuple(
    f"test_{c}.{kind}" for c in (*DECODED, "best-ppl") for kind in ("output", "gold")
)
RANK0 = 'int(os.environ.get("RANK", args.local_rank)) in [-1, 0]'
BROADCAST = "                torch.distributed.broadcast_object_list(_ddpfix_stop, src=0)\n"


def _states(output: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(output.glob("state-*.json"))]


def _traces(output: Path) -> list[list[str]]:
    """Each process's evaluation events (one trace file per process that evaluated)."""
    return [p.read_text().splitlines() for p in sorted(output.glob("state-trace-*.txt"))]


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_patch_decides_the_stop_on_rank_zero_and_broadcasts_it(patched_source: str) -> None:
    assert "model = torch.nn.parallel.DistributedDataParallel(" in patched_source  # DDP014
    assert f"_ddpfix_stop = [False]\n            if args.do_eval and {RANK0}:" in patched_source
    assert (
        'eval_ppl = eval_ppl_epoch(args, dev_data, model.module if hasattr(model, "module") '
        "else model)" in patched_source
    )  # DDP004: its forward on rank 0 alone goes to the inner module
    assert (
        '                        fa.write("[%d] Early stop on ppl\\n" % cur_epoch)\n'
        "                        _ddpfix_stop[0] = True\n"
        "\n"
        "                if not _ddpfix_stop[0]:\n"
        "                    result = eval_bleu_epoch("
    ) in patched_source  # what the mid-evaluation break skipped, the flag skips
    assert (
        "            if torch.distributed.is_available() and torch.distributed.is_initialized():\n"
        + BROADCAST
        + "            if _ddpfix_stop[0]:\n"
        "                break\n"
    ) in patched_source
    assert f"if args.do_test and {RANK0}:" in patched_source
    assert patched(patched_source) == patched_source  # settled


def test_original_ranks_evaluate_and_write_the_same_files(tmp_path: Path) -> None:
    """Under the launcher it was written for (on the CPU: PRT003's fixes alone), both ranks
    evaluate and rewrite the same prediction files, racing on them: a rank that reads one back
    while the other truncates it fails (the bug), so only what the race cannot change is
    asserted of every run."""
    original = patched(with_launcher_rank(SCRIPT.read_text()), ["PRT003"])
    assert "DistributedDataParallel" not in original
    run = launch(original, ARGS, tmp_path / "original")
    assert len(run.records) == 2 and all(r.dist_rank is not None for r in run.records)
    assert len(_traces(run.output)) == 2, run.explain()  # both evaluated
    writers = run.writers()
    assert len(writers.get("test_e0.output", ())) == 2, writers
    failed = [r for r in run.records if r.exit_code != 0]
    if not failed:  # each rank its own model: two different parameter sets
        assert len(set(run.param_hashes().values())) == 2, run.explain()
    else:  # a file the other rank was rewriting, read back: an exception, no hang
        assert not run.outcome.timed_out, run.explain()
        assert all(r.exception is not None for r in failed), run.explain()


def test_patched_ranks_leave_the_loop_together(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()  # every rank joined and exited 0, nothing hung
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, run.explain()
    assert [s["epochs"] for s in _states(run.output)] == [STOPPED_AFTER] * 2  # the same epoch
    (trace,) = _traces(run.output)  # one process evaluated: rank 0
    assert trace == [
        "evaluation 0",
        "decoded e0",
        "evaluation 1",
        "decoded e1",
        "evaluation 2",
        "decoded best-ppl",
    ]
    writers = run.writers()
    files = (*PREDICTIONS, "pytorch_model.bin")
    assert {name: len(writers.get(name, ())) for name in files} == dict.fromkeys(files, 1)
    assert "test_e2.output" not in writers
    log = (run.output / "summary.log").read_text().splitlines()
    assert log == [
        "[0] Best ppl changed into " + log[0].rsplit(" ", 1)[1],
        "[2] Early stop on ppl",
        "[test] bleu-4: 0.00",
    ]  # written by rank 0 alone, once each


def test_without_the_broadcast_rank_one_trains_on_alone(
    patched_source: str, tmp_path: Path
) -> None:
    """The broadcast is what keeps the ranks together (main's rewrite gated only the writes,
    leaving each rank to its own reading of the files): with rank 0's flag kept to itself,
    rank 0 leaves after the third epoch and rank 1 starts a fourth, whose gradient all-reduce
    nobody joins."""
    assert BROADCAST in patched_source
    cut = patched_source.replace(BROADCAST, "                pass\n")
    run = launch(cut, ARGS, tmp_path / "cut", timeout=60)
    assert not run.ok
    assert run.outcome.timed_out or sorted(run.exit_codes, key=str) != [0, 0], run.explain()


def test_without_a_launcher_the_patched_script_runs_as_before(
    patched_source: str, tmp_path: Path
) -> None:
    """Plain ``python``: one process, the same stop, parameters, trace and files."""
    outputs = {
        name: run_alone(source, ARGS, tmp_path / name)
        for name, source in (("original", SCRIPT.read_text()), ("patched", patched_source))
    }
    original, after = (_states(outputs[n]) for n in ("original", "patched"))
    assert original == after and after[0]["epochs"] == STOPPED_AFTER
    assert _traces(outputs["original"]) == _traces(outputs["patched"])
    for name in (*PREDICTIONS, "summary.log"):
        assert (outputs["original"] / name).read_bytes() == (outputs["patched"] / name).read_bytes()


# The same evaluation under a flag of its own (``if args.do_eval_bleu:``, no do_eval block):
# DDP014 runs it on rank 0 and broadcasts its stop itself, as DDP011 does its blocks.
BLEU_FLAG = ["--do_train", "--do_eval_bleu", "--do_test"]


def _bleu_flagged() -> str:
    source = SCRIPT.read_text()
    assert source.count("            if args.do_eval:\n") == 1
    return source.replace("            if args.do_eval:\n", "            if args.do_eval_bleu:\n")


def test_ddp014_decides_an_evaluation_under_its_own_flag(tmp_path: Path) -> None:
    source = patched(_bleu_flagged())
    assert f"_ddpfix_stop = [False]\n            if args.do_eval_bleu and {RANK0}:" in source
    assert patched(source) == source
    run = launch(source, BLEU_FLAG, tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, run.explain()
    assert [s["epochs"] for s in _states(run.output)] == [STOPPED_AFTER] * 2
    (trace,) = _traces(run.output)
    assert [line for line in trace if line.startswith("evaluation")] == [
        f"evaluation {e}" for e in range(STOPPED_AFTER)
    ]
    writers = run.writers()
    assert {name: len(writers.get(name, ())) for name in PREDICTIONS} == dict.fromkeys(
        PREDICTIONS, 1
    )


def _resetting() -> str:
    """The evaluation first resets the running loss the training loop adds to (state every rank
    keeps): DDP011 used to split such a block, its ``break`` under the rank-0 test with the rest,
    and rank 0 left the loop alone."""
    source = SCRIPT.read_text()
    for old, new in (
        ("        for cur_epoch in", "        tr_loss = 0.0\n        for cur_epoch in"),
        (
            "                loss.backward()\n",
            "                tr_loss += loss.item()\n                loss.backward()\n",
        ),
        (
            "            if args.do_eval:\n",
            "            if args.do_eval:\n                tr_loss = 0.0\n",
        ),
    ):
        assert source.count(old) == 1
        source = source.replace(old, new)
    return source


def test_ddp011_keeps_the_reset_on_every_rank_and_decides_on_rank_zero(tmp_path: Path) -> None:
    source = patched(_resetting())
    assert (
        "            _ddpfix_stop = [False]\n"
        "            if args.do_eval:\n"
        "                tr_loss = 0.0\n"
        f"                if {RANK0}:\n"
    ) in source
    assert patched(source) == source
    run = launch(source, ARGS, tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, run.explain()
    assert [s["epochs"] for s in _states(run.output)] == [STOPPED_AFTER] * 2
    (trace,) = _traces(run.output)
    assert trace[-1] == "decoded best-ppl" and trace.count("decoded e1") == 1
