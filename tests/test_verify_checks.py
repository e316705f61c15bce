"""Every verify check against crafted probe records: no processes, no torch."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from patcher.verify import checks
from patcher.verify.records import Exception_, RankRecord, apply_event, read_records

KEYS = tuple(f"{i}" for i in range(8))


def _rank(
    rank: int, *, writes=(), steps=4, evals=0, exit_code=0, exception=None, checksum="c0ffee"
) -> RankRecord:
    return RankRecord(
        pid=1000 + rank,
        env_rank=rank,
        env_local_rank=rank,
        env_world_size=2,
        dist_rank=rank,
        dist_world_size=2,
        backend="gloo",
        writes=list(writes),
        steps=steps,
        eval_calls=evals,
        exit_code=exit_code,
        exception=exception,
        checksum=checksum,
        checksum_step=steps if checksum else None,
        checksum_tensors=41,
        checksum_values=142_722,
    )


def _healthy(out: Path) -> list[RankRecord]:
    (out / "ckpt").mkdir()
    (out / "ckpt" / "model.bin").write_bytes(b"weights")
    (out / "predictions.txt").write_text("".join(f"{k}\t1\n" for k in KEYS))
    rank0 = _rank(
        0,
        writes=[
            (str(out / "ckpt" / "model.bin"), "torch.save"),
            (str(out / "predictions.txt"), "open"),
        ],
        evals=2,
    )
    return [rank0, _rank(1)]


def _run(out: Path, records, **kwargs) -> checks.Run:
    values: dict[str, Any] = {
        "returncode": 0,
        "timed_out": False,
        "timeout": 60.0,
        "output_dir": out,
    }
    values.update(kwargs)
    return checks.Run(records=records, **values)


EXPECT = checks.Expectations(
    ranks=2,
    checkpoints=("ckpt/model.bin",),
    results=(checks.Results("predictions.txt", "tsv:1", KEYS),),
)


def _rows(run: checks.Run) -> dict[str, checks.Row]:
    return {row.name: row for row in checks.evaluate(run, EXPECT)}


def test_healthy_run_passes(tmp_path: Path) -> None:
    rows = checks.evaluate(_run(tmp_path, _healthy(tmp_path)), EXPECT)
    assert all(row.ok for row in rows), rows
    assert checks.verdict(rows) == "PASS: all 8 checks passed"
    by_name = {row.name: row for row in rows}
    assert by_name["ranks joined"].evidence == (
        "2 processes, ranks 0, 1, world size 2 (gloo), 4, 4 optimizer steps"
    )
    assert by_name["results complete"].evidence == (
        "predictions.txt: 8 of 8 lines, in order (rank 0)"
    )
    assert by_name["replicas in sync"].evidence == (
        "ranks 0, 1 hold identical parameters after optimizer step 4 (41 tensors, 142,722 values)"
    )


def _alone(out: Path) -> list[RankRecord]:
    """The healthy run's processes, none of which ever joined a process group."""
    records = _healthy(out)
    for record in records:
        record.dist_rank = record.dist_world_size = record.backend = None
    return records


def test_every_process_ran_as_rank_minus_one(tmp_path: Path) -> None:
    records = _alone(tmp_path)
    rows = checks.evaluate(_run(tmp_path, records), EXPECT)
    assert checks.verdict(rows) == (
        "FAIL: ranks joined: 2 processes, torch.distributed never initialised: every process "
        "ran as rank -1 (the script does not read LOCAL_RANK)"
    )


def test_alone_processes_that_trained_then_crashed_blame_local_rank(tmp_path: Path) -> None:
    # Both processes trained as rank -1 and saved the same model.bin; one read it while the other
    # was still writing it (torch.load of an empty file raises a bare EOFError).
    records = _alone(tmp_path)
    records[1].exception = Exception_("EOFError", "", "tb", time=5.0)
    records[1].exit_code = 1
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert rows["ranks joined"].evidence.endswith("(the script does not read LOCAL_RANK)")
    assert rows["every rank exited 0"].evidence == (
        "pid 1001 (LOCAL_RANK=1, ran as rank -1) raised EOFError (a file read while another "
        "process was still writing it: two writers?)"
    )


@pytest.mark.parametrize(
    "message",
    [
        "PytorchStreamReader failed reading zip archive: failed finding central directory",
        "Cannot use ``weights_only=True`` with files saved in the legacy .tar format.",
    ],
)
def test_a_checkpoint_cut_short_by_another_writer_is_named(tmp_path: Path, message: str) -> None:
    # Two simulated nodes each save on their local rank 0; one loads while the other writes.
    records = _healthy(tmp_path)
    records[1].exception = Exception_("RuntimeError", message, "tb", time=5.0)
    records[1].exit_code = 1
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert rows["every rank exited 0"].evidence.endswith(
        "(a checkpoint read while another process was writing it: two writers?)"
    )


def test_a_gpu_only_placement_points_at_prt013(tmp_path: Path) -> None:
    # A placement PRT013 was not sure of (reported, not rewritten) dies on verify's CPU ranks.
    records = _healthy(tmp_path)
    records[0].exception = Exception_(
        "AssertionError", "Torch not compiled with CUDA enabled", "tb", time=5.0
    )
    records[0].exit_code = 1
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert rows["every rank exited 0"].evidence.endswith(
        "(the script puts the model or its tensors on a GPU whatever the machine has: `.cuda()`, "
        "`.to(local_rank)`; verify runs on the CPU; PRT013 rewrites the placements it is sure of "
        "and reports the others)"
    )


def test_alone_process_that_crashed_before_training_is_the_cause(tmp_path: Path) -> None:
    records = _alone(tmp_path)
    for record in records:
        record.steps = 0
    records[0].exception = Exception_("ValueError", "bad --model_type", "tb")
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert rows["ranks joined"].evidence == (
        "rank 0 raised ValueError: bad --model_type before it could set up distribution"
    )


def test_a_crash_in_transformers_mask_builder_is_named_as_the_librarys(tmp_path: Path) -> None:
    # UniXcoder's seq2seq decoder gives RoBERTa a [batch, target, source + target] mask
    records = _alone(tmp_path)
    for record in records:
        record.steps = 0
    trace = 'File "/site-packages/transformers/masking_utils.py", line 175, in inner_mask\n'
    records[0].exception = Exception_("IndexError", "index 8 is out of bounds", trace)
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert rows["ranks joined"].evidence == (
        "rank 0 raised IndexError: index 8 is out of bounds before it could set up distribution "
        "(in transformers' mask builder: transformers 5 reads the script's own attention mask as "
        "a [batch, length] padding mask; not a rank problem)"
    )


def test_a_missing_module_is_named_as_the_cause_with_its_package(tmp_path: Path) -> None:
    records = _alone(tmp_path)
    for record in records:
        record.steps = 0
        record.exception = Exception_("ModuleNotFoundError", "No module named 'fairseq'", "tb")
    records[1].exception = Exception_("ModuleNotFoundError", "No module named 'sklearn'", "tb")
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert rows["ranks joined"].evidence == (
        "rank 0 failed at import: No module named 'fairseq' (pip install fairseq, or a module of "
        "the script's repository not beside it)"
    )
    assert checks.verdict(list(rows.values())).startswith("FAIL: ranks joined: rank 0 failed at")


def test_a_process_that_never_started(tmp_path: Path) -> None:
    rows = _rows(_run(tmp_path, _healthy(tmp_path)[:1]))
    assert rows["ranks joined"].evidence == "1 of 2 processes started"


def test_hang_names_where_each_rank_waits(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    records[1].exit_code = None
    stack = 'Thread 0x1 (most recent call first):\n  File "/x/run.py", line 42 in train\n'
    run = _run(tmp_path, records, timed_out=True, returncode=None, stacks={1001: stack})
    rows = _rows(run)
    assert not rows["no hang"].ok
    assert rows["no hang"].evidence == (
        'still running after 60 s, killed; rank 1 at File "/x/run.py", line 42 in train'
    )
    assert checks.verdict(list(rows.values())).startswith("FAIL: no hang: still running")


def test_a_rank_that_died(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    records[1].exception = Exception_("RuntimeError", "Connection closed by peer [1]:2", "tb")
    records[1].exit_code = 1
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert rows["every rank exited 0"].evidence.startswith(
        "rank 1 raised RuntimeError: Connection closed by peer [1]:2 (a collective the other "
        "ranks never joined"
    )


def test_a_rank_training_on_after_its_peer_returned_names_the_early_exit(tmp_path: Path) -> None:
    # CodeReviewer: rank 0 returns at --train_steps; rank 1 takes its next step and loses rank 0
    # in the gradient all-reduce. A peer stuck outside training keeps the DDP004 hint (above).
    records = _healthy(tmp_path)
    trace = 'File "run.py", line 221, in main\n    loss.backward()\n  _engine_run_backward(\n'
    records[1].exception = Exception_("RuntimeError", "Connection closed by peer [1]:2", trace)
    records[1].exit_code = 1
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert rows["every rank exited 0"].evidence == (
        "rank 1 raised RuntimeError: Connection closed by peer [1]:2 (rank 0 had exited 0 while "
        "it still trained: a rank-gated return or break left the loop on one rank only; see "
        "DDP013)"
    )
    records[0].exit_code = None  # rank 0 did not exit cleanly: not an early return
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert "DDP013" not in rows["every rank exited 0"].evidence


def test_a_rank_killed_without_exit(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    records[0].exit_code = None
    rows = _rows(_run(tmp_path, records, returncode=-9))
    assert rows["every rank exited 0"].evidence == "rank 0 was killed before it could exit"


def test_argparse_error_is_quoted_from_the_log(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    for record in records:
        record.dist_rank = None
        record.exit_code = 2
        record.steps = 0
    log = "usage: run.py [-h]\nrun.py: error: unrecognized arguments: --local-rank=0\n"
    rows = _rows(_run(tmp_path, records, returncode=1, log_tail=log))
    assert rows["ranks joined"].evidence == (
        "run.py: error: unrecognized arguments: --local-rank=0"
    )
    run = _run(tmp_path, records, returncode=1, log_tail=log)
    run.script_args = ("--output_dir=/o", "--do_train", "--epoch", "1")
    assert checks.ranks_joined(run, checks.Expectations(ranks=2)).evidence == (
        "run.py: error: unrecognized arguments: --local-rank=0 "
        "(verify passed --do_train, --epoch, --output_dir)"
    )


def test_gloo_teardown_abort_after_clean_exits_is_not_the_scripts(tmp_path: Path) -> None:
    log = "rank 0: last loss 0.1\nterminate called without an active exception\nChildFailedError\n"
    records = _healthy(tmp_path)
    rows = _rows(_run(tmp_path, records, returncode=1, log_tail=log))
    assert rows["every rank exited 0"].ok
    assert rows["every rank exited 0"].evidence.startswith(
        "2 of 2 exited 0; then gloo aborted a rank while tearing down"
    )
    # without that line a failing launcher still fails the row
    rows = _rows(_run(tmp_path, records, returncode=1, log_tail="ChildFailedError\n"))
    assert rows["every rank exited 0"].evidence == "the launcher exited with code 1"


def test_duplicate_checkpoint_writer(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    records[1].writes.append((str(tmp_path / "ckpt" / "model.bin"), "torch.save"))
    rows = _rows(_run(tmp_path, records))
    assert rows["checkpoints"].evidence == (
        "ckpt/model.bin written by 2 processes (rank 0, rank 1)"
    )


def test_checkpoint_that_does_not_load(tmp_path: Path) -> None:
    run = _run(tmp_path, _healthy(tmp_path), load_checkpoint=lambda path: "UnpicklingError: bad")
    assert (
        _rows(run)["checkpoints"].evidence == "ckpt/model.bin does not load: UnpicklingError: bad"
    )


def test_missing_checkpoint(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    (tmp_path / "ckpt" / "model.bin").unlink()
    assert (
        _rows(_run(tmp_path, records))["checkpoints"].evidence == "ckpt/model.bin was not written"
    )


def test_a_checkpoint_pattern_takes_the_directory_named_by_its_metric(tmp_path: Path) -> None:
    # CodeReviewer saves checkpoints-<step>-<accuracy>/: a target names it by a pattern
    records = _healthy(tmp_path)
    saved = tmp_path / "checkpoints-last-0.125" / "pytorch_model.bin"
    saved.parent.mkdir()
    saved.write_bytes(b"weights")
    records[0].writes.append((str(saved), "torch.save"))
    expect = dataclasses.replace(EXPECT, checkpoints=("checkpoints-last-*/pytorch_model.bin",))
    row = checks.checkpoints(_run(tmp_path, records), expect)
    assert row.ok and row.evidence == (
        "checkpoints-last-0.125/pytorch_model.bin (rank 0, loads with weights_only=True)"
    )
    expect = dataclasses.replace(EXPECT, checkpoints=("checkpoints-9-*/pytorch_model.bin",))
    row = checks.checkpoints(_run(tmp_path, records), expect)
    assert not row.ok and row.evidence == "checkpoints-9-*/pytorch_model.bin was not written"


def test_rank_zero_scored_a_shard(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    (tmp_path / "predictions.txt").write_text("".join(f"{k}\t1\n" for k in ("0", "2", "4", "6")))
    row = _rows(_run(tmp_path, records))["results complete"]
    assert row.evidence == (
        "predictions.txt has 4 of 8 lines: rank 0 scored a DistributedSampler shard"
    )


@pytest.mark.parametrize(
    ("keys", "evidence"),
    [
        (["1", "0", *KEYS[2:]], "predictions.txt is out of dataset order from line 1"),
        (["0", "0", *KEYS[2:]], "predictions.txt lists some examples twice"),
        (["x", *KEYS[1:]], "predictions.txt misses 1 test examples"),
    ],
)
def test_incomplete_or_misordered_predictions(tmp_path: Path, keys, evidence) -> None:
    records = _healthy(tmp_path)
    (tmp_path / "predictions.txt").write_text("".join(f"{k}\t1\n" for k in keys))
    assert _rows(_run(tmp_path, records))["results complete"].evidence.startswith(evidence)


def test_results_written_by_two_ranks(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    records[1].writes.append((str(tmp_path / "predictions.txt"), "open"))
    row = _rows(_run(tmp_path, records))["results complete"]
    assert row.evidence == "predictions.txt written by 2 processes (rank 0, rank 1)"


def test_evaluation_never_ran(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    records[0].eval_calls = 0
    row = _rows(_run(tmp_path, records))["evaluation ran"]
    assert not row.ok and row.evidence.startswith("no process ever called model.eval()")


def test_records_are_read_from_probe_lines(tmp_path: Path) -> None:
    (tmp_path / "events-7.jsonl").write_text(
        '{"kind": "start", "env": {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2"}}\n'
        '{"kind": "dist_init", "rank": 1, "world_size": 2, "backend": "gloo"}\n'
        '{"kind": "write", "path": "/o/a.bin", "how": "torch.save"}\n'
        '{"kind": "eval_mode"}\n'
        '{"kind": "exit", "code": 0, "steps": 3}\n'
        '{"kind": "write", "path": "/o/b'  # cut short by a kill
    )
    (record,) = read_records(tmp_path)
    assert (record.pid, record.rank, record.dist_world_size, record.backend) == (7, 1, 2, "gloo")
    assert record.writes == [("/o/a.bin", "torch.save")]
    assert (record.exit_code, record.steps, record.eval_calls) == (0, 3, 1)
    other = RankRecord(pid=1)
    apply_event(other, {"kind": "exception", "type": "E", "message": "m", "traceback": "t"})
    assert other.exception is not None and other.exception.summary == "E: m"


def test_a_killed_rank_is_named_before_its_peers_lost_connection(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    records[1].exit_code = None  # SIGKILLed: no exit event
    records[0].exception = Exception_("RuntimeError", "Connection closed by peer [1]:2", "tb")
    records[0].exit_code = 1
    rows = _rows(_run(tmp_path, records, returncode=1))
    assert rows["every rank exited 0"].evidence == (
        "rank 1 was killed before it could exit (rank 0 then lost its peer)"
    )


def test_the_launchers_first_failure_is_named_when_every_rank_was_killed(tmp_path: Path) -> None:
    # Rank 1 was SIGKILLed; torch elastic then SIGTERMed rank 0 before gloo noticed: neither
    # rank reached its exit, and only the launcher knows which one went first.
    records = _healthy(tmp_path)
    records[0].exit_code = records[1].exit_code = None
    log = (
        "Failures:\n[1]:\n  rank      : 0 (local_rank: 0)\n  exitcode  : -15 (pid: 1000)\n"
        "Root Cause (first observed failure):\n[0]:\n  rank      : 1 (local_rank: 1)\n"
        "  exitcode  : -9 (pid: 1001)  (SIGKILL)\n"
    )
    rows = _rows(_run(tmp_path, records, returncode=1, log_tail=log))
    assert rows["every rank exited 0"].evidence == "rank 1 was killed before it could exit"
    rows = _rows(_run(tmp_path, records, returncode=1))  # no launcher report: the first rank
    assert rows["every rank exited 0"].evidence == "rank 0 was killed before it could exit"


def test_replicas_that_differ_after_the_same_steps_are_not_wrapped(tmp_path: Path) -> None:
    # Each rank trained its own model on its own DistributedSampler shard (no DDP wrap).
    records = _healthy(tmp_path)
    records[1].checksum = "bad5eed"
    rows = checks.evaluate(_run(tmp_path, records), EXPECT)
    assert checks.verdict(rows) == (
        "FAIL: replicas in sync: rank 0 and rank 1 hold different parameters after their last "
        "optimizer step (step 4 vs step 4): the model is not wrapped in DistributedDataParallel "
        "(each rank trains its own), or ranks update differently (a scheduler or clipping gated "
        "to one rank)"
    )


def test_replicas_that_took_different_numbers_of_steps(tmp_path: Path) -> None:
    records = [*_healthy(tmp_path), _rank(2, steps=2, checksum="other")]
    records[1].checksum = "third"
    for record in records:
        record.dist_world_size = 3
    expect = checks.Expectations(ranks=3)
    row = {r.name: r for r in checks.evaluate(_run(tmp_path, records), expect)}["replicas in sync"]
    assert not row.ok
    assert row.evidence.startswith("rank 0 and rank 1 hold different parameters after their")
    assert row.evidence.endswith("; 3 different parameter sets")
    records[1].checksum = "c0ffee"  # ranks 0 and 1 agree, rank 2 stepped half as often
    row = {r.name: r for r in checks.evaluate(_run(tmp_path, records), expect)}["replicas in sync"]
    assert row.evidence == (
        "rank 0 and rank 2 took different numbers of optimizer steps (step 4 vs step 2) and hold "
        "different parameters: ranks step on different iterations (an optimizer step gated to "
        "one rank, or gradient accumulation counted per rank)"
    )


def test_a_rank_that_never_stepped_while_another_did(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    records[1].steps, records[1].checksum, records[1].checksum_step = 0, None, None
    row = _rows(_run(tmp_path, records))["replicas in sync"]
    assert not row.ok
    assert row.evidence == (
        "rank 0 took 4 optimizer steps and rank 1 none: ranks step on different iterations (an "
        "optimizer step gated to one rank?)"
    )


def test_a_missing_checksum_is_said_not_failed(tmp_path: Path) -> None:
    records = _healthy(tmp_path)
    records[1].checksum, records[1].checksum_error = None, "TypeError: sparse tensor"
    row = _rows(_run(tmp_path, records))["replicas in sync"]
    assert row.ok
    assert row.evidence == (
        "not compared: rank 1 has no parameter digest (TypeError: sparse tensor)"
    )


@pytest.mark.parametrize(
    ("spoil", "evidence"),
    [
        ("single", "n/a: a single process has no replicas"),
        ("alone", "n/a: not every process joined the process group"),
        ("crash", "n/a: rank 1 did not finish training"),
        ("hang", "n/a: the run was killed mid-training"),
        ("no steps", "n/a: no optimizer step was taken"),
    ],
)
def test_replicas_are_not_compared_when_meaningless(tmp_path: Path, spoil, evidence) -> None:
    records = _alone(tmp_path) if spoil == "alone" else _healthy(tmp_path)
    records[1].checksum = "would differ"
    expect, kwargs = EXPECT, {}
    if spoil == "single":
        records, expect = records[:1], checks.Expectations(ranks=1)
        records[0].dist_world_size = 1
    elif spoil == "crash":
        records[1].exception = Exception_("RuntimeError", "boom", "tb")
        records[1].exit_code = 1
    elif spoil == "hang":
        kwargs = {"timed_out": True, "returncode": None}
    else:
        for record in records:
            record.steps, record.checksum, record.checksum_step = 0, None, None
    rows = {r.name: r for r in checks.evaluate(_run(tmp_path, records, **kwargs), expect)}
    assert rows["replicas in sync"] == checks.Row("replicas in sync", True, evidence)


def test_the_last_checksum_read_wins(tmp_path: Path) -> None:
    (tmp_path / "events-9.jsonl").write_text(
        '{"kind": "replica", "step": 1, "checksum": "aa", "tensors": 2, "values": 10}\n'
        '{"kind": "replica", "step": 2, "checksum": "bb", "tensors": 2, "values": 10}\n'
        '{"kind": "replica", "step": 3, "checksum": "cc", "tens'  # cut short by a kill
    )
    (record,) = read_records(tmp_path)
    assert (record.checksum, record.checksum_step, record.checksum_tensors) == ("bb", 2, 2)
    assert record.to_json()["parameter_checksum"]["blake2b"] == "bb"
    apply_event(record, {"kind": "replica", "step": 3, "checksum": None, "error": "E: x"})
    assert (record.checksum, record.checksum_step, record.checksum_error) == (None, 3, "E: x")


def _renamed(out: Path, name: str) -> list[RankRecord]:
    """The healthy run, but the script wrote its predictions under ``name``."""
    records = _healthy(out)
    (out / "predictions.txt").rename(out / name)
    records[0].writes[1] = (str(out / name), "open")
    return records


@pytest.mark.parametrize(
    "name", ["predictions_.txt", "test_predictions.txt", "sub/predictions.txt"]
)
def test_a_forks_results_file_is_found_by_what_it_wrote(tmp_path: Path, name: str) -> None:
    (tmp_path / "sub").mkdir()
    records = _renamed(tmp_path, name)
    (tmp_path / "eval_results.txt").write_text("f1 = 0.5\n")  # same suffix, another name
    row = _rows(_run(tmp_path, records))["results complete"]
    assert row.ok, row
    assert row.evidence == (
        f"{name} (the script's name for predictions.txt); {name}: 8 of 8 lines, in order (rank 0)"
    )


def test_of_two_similar_names_the_one_listing_the_test_examples_wins(tmp_path: Path) -> None:
    records = _renamed(tmp_path, "predictions_test.txt")
    (tmp_path / "predictions_.txt").write_text("dev1\t0\ndev2\t1\n")  # the dev set's
    row = _rows(_run(tmp_path, records))["results complete"]
    assert row.ok and row.evidence.startswith("predictions_test.txt (the script's name")


def test_a_results_file_under_another_suffix_or_name_is_not_taken(tmp_path: Path) -> None:
    records = _renamed(tmp_path, "predictions.json")
    (tmp_path / "output.txt").write_text("".join(f"{k}\t1\n" for k in KEYS))
    row = _rows(_run(tmp_path, records))["results complete"]
    assert not row.ok and row.evidence == "predictions.txt was not written"


def test_a_results_pattern_matches_the_numbered_file(tmp_path: Path) -> None:
    records = _renamed(tmp_path, "test_3.output")
    expect = checks.Expectations(
        ranks=2,
        checkpoints=("ckpt/model.bin",),
        results=(checks.Results("test_*.output", "tsv:1", KEYS),),
    )
    rows = {r.name: r for r in checks.evaluate(_run(tmp_path, records), expect)}
    assert rows["results complete"].evidence == (
        "test_3.output (matches test_*.output); test_3.output: 8 of 8 lines, in order (rank 0)"
    )


def test_training_health_is_one_of_the_checks(tmp_path: Path) -> None:
    # the verdict counts what the user sees: the health row is a check like the others
    assert checks.CHECKS[-1] is checks.training_health
    run = _run(tmp_path, _healthy(tmp_path))
    names = [row.name for row in checks.evaluate(run, EXPECT)]
    assert names[-1] == "training health" and len(names) == len(checks.CHECKS)
    without = dataclasses.replace(EXPECT, health=False)  # --no-health
    rows = checks.evaluate(run, without)
    assert "training health" not in [row.name for row in rows]
    assert checks.verdict(rows) == "PASS: all 7 checks passed"


def test_probe_protocol_is_read_by_both_sides(tmp_path: Path) -> None:
    # the probe writes with encode(), verify reads with decode(): one format, one module
    import ast
    import sys

    from patcher.verify.probe import ddpfix_protocol as protocol

    source = Path(protocol.__file__).read_text()
    imported = {
        ((node.module or "") if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(ast.parse(source))
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}  # runs in every rank
    lines = [
        protocol.encode(protocol.START, 41, env={"RANK": "1", "LOCAL_RANK": "1"}),
        protocol.encode(protocol.DIST_INIT, 41, rank=1, world_size=2, backend="gloo"),
        protocol.encode(protocol.EXIT, 41, code=0, steps=3),
    ]
    path = Path(protocol.events_file(str(tmp_path), 41))
    path.write_text("".join(lines) + '{"kind": "wri')  # the last line cut short by a kill
    (record,) = read_records(tmp_path)
    assert (record.pid, record.env_rank, record.rank, record.exit_code) == (41, 1, 1, 0)
    assert (record.dist_world_size, record.backend, record.steps) == (2, "gloo", 3)
