"""A ``RANK`` gate in a script whose rank stays dormant must not split its early stop, proven by
running.

``runtime_scripts/dormant_rank_early_stop.py`` shards its data but never wraps its model, so
DDP001 does not read LOCAL_RANK: under a modern launcher every process keeps ``local_rank ==
-1``, no process group exists, and each process is a lone copy of one run (same seed, same
order). Each evaluates "only when single GPU" (``args.local_rank == -1``), counts evaluations
without improvement, and returns from train() at the early stop; then each saves
``model.bin``. DDP003 turns the evaluation gate into ``local_rank in [-1, 0]`` (the same test
here) and DDP008 would put it and the logging gate around it on the launcher's ``RANK``: RANK 0
alone would evaluate and stop, RANK 1 would train every epoch and save its over-trained model
over RANK 0's. The rank model's exit post-condition judges the dormant version as it runs (lone
copies that ``RANK`` tells apart): both ``RANK`` gates are withdrawn and reported, while the
checkpoint gate, a pure side effect, still goes on ``RANK``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, Ranked, launch, patched

from patcher.engine import fix_text
from patcher.registry import all_rules

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

SCRIPT = SCRIPTS / "dormant_rank_early_stop.py"
ARGS = ["--evaluate_during_training"]
FULL_RUN = 20 * 16  # epochs x steps (64 examples, batch 4): a process that never stops early
RANK_GATE = 'int(os.environ.get("RANK", args.local_rank)) in [-1, 0]'
SPLIT = (
    "only rank 0 returns here, out of code that trains on after it: the rank stays dormant "
    "under the launcher (local_rank -1 and no process group: every process is a lone run, "
    "which only RANK tells apart), so no other process takes it: they train on past rank 0's "
    "early stop and overwrite its saves; decide it on every process"
)


def _states(run: Ranked) -> dict[str, dict]:
    """RANK → the end state the process left (optimizer steps, parameter hash)."""
    states = [json.loads(p.read_text()) for p in run.output.glob("state-*.json")]
    return {str(state["rank"]): state for state in states}


def _saved(run: Ranked) -> str:
    """The hash of the parameters in ``model.bin`` on disk, as the script hashes its own."""
    digest = hashlib.sha256()
    for tensor in torch.load(run.output / "model.bin").values():
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _all_exited(run: Ranked) -> bool:
    return (
        not run.outcome.timed_out
        and len(run.records) == 2
        and all(code == 0 for code in run.exit_codes)
    )


def test_exit_gates_are_withdrawn_and_reported() -> None:
    output, findings = fix_text(SCRIPT.read_text(), all_rules())
    # both gates around the early stop stay on the local rank (every process, dormant)
    assert "if args.local_rank in [-1, 0] and global_step % args.logging_steps == 0:" in output
    assert "if args.local_rank in [-1, 0] and args.evaluate_during_training:" in output
    # the checkpoint gate, which no process reads back, goes on RANK
    assert f"if {RANK_GATE} and global_step % args.save_steps == 0:" in output
    assert output.count(RANK_GATE) == 1
    withdrawn = [
        (f.code, f.line, f.message.split("not rewritten: ")[1])
        for f in findings
        if not f.fixed and "not rewritten: " in f.message and f.code == "DDP008"
    ]
    assert withdrawn == [("DDP008", 65, SPLIT), ("DDP008", 67, SPLIT)]
    # the script's return, as DDP013 sees it: a hang only once the rank is read
    (ddp013,) = [f for f in findings if f.code == "DDP013"]
    assert ddp013.line == 75
    assert ddp013.message.startswith("once the script reads its rank from LOCAL_RANK")
    assert ddp013.message.endswith("(hang)")
    assert fix_text(output, all_rules())[0] == output


@pytest.mark.slow
def test_patched_processes_stop_where_the_original_stops(tmp_path: Path) -> None:
    source = SCRIPT.read_text()
    original = launch(source, ARGS, tmp_path / "original")
    assert _all_exited(original), original.explain()
    before = _states(original)
    (stop,) = {state["steps"] for state in before.values()}
    assert stop < FULL_RUN  # the early stop fires, on both processes
    (early,) = {state["params"] for state in before.values()}
    assert _saved(original) == early

    run = launch(patched(source), ARGS, tmp_path / "patched")
    assert _all_exited(run), run.explain()
    after = _states(run)
    assert sorted(after) == ["0", "1"]
    assert {state["steps"] for state in after.values()} == {stop}
    assert {state["params"] for state in after.values()} == {early}
    assert _saved(run) == early  # the early-stopped model is the one on disk
    checkpoints = {name: pids for name, pids in run.writers().items() if name == "checkpoint.bin"}
    assert [len(pids) for pids in checkpoints.values()] == [1]  # RANK 0 alone saves them


@pytest.mark.slow
def test_gating_without_the_post_condition_lets_process_one_train_on(tmp_path: Path) -> None:
    """What the engine used to apply: the gates around the early stop on RANK."""
    source = SCRIPT.read_text()
    naive = patched(source, postconditions=False)
    assert naive.count(RANK_GATE) == 3
    run = launch(naive, ARGS, tmp_path / "naive")
    assert _all_exited(run), run.explain()  # nothing fails: the damage is silent
    states = _states(run)
    assert states["0"]["steps"] < FULL_RUN
    assert states["1"]["steps"] == FULL_RUN  # it never evaluates, so it never stops
    assert states["1"]["params"] != states["0"]["params"]
    rank1 = next(r.pid for r in run.records if r.env_rank == 1)
    assert rank1 in run.writers()["model.bin"]  # and saves its over-trained model there too
