"""DDP003 at run time: a rank-0 evaluation that reaches a barrier in dead code (issue 9, class 7).

``runtime_scripts/template_dead_cache_barrier.py`` is the HF template with a fork's
``load_and_cache_examples(args, tokenizer, split)``: its barrier pair still tests ``not
evaluate``, but ``evaluate`` is no parameter there any more, it is the module's function
``evaluate()``, always truthy, so both barriers are dead code. evaluate() loads its data through
that function, so DDP003 must see that rank 0 evaluating alone reaches no collective and rewrite
the template's ``local_rank == -1 and args.evaluate_during_training`` gate (instead of reporting
a hang); DDP004 passes the unwrapped model and DDP005 makes evaluate()'s sampler a
SequentialSampler. Patched, 2 gloo ranks under ``accelerate launch`` must finish, agree on their
parameters, write predictions.txt from rank 0 alone and score each of the 37 examples once, in
order; patched without DDP005, rank 0 scores a shuffled shard.

``rank_zero_functions`` (``patches/_gates.py``) once counted the bare name in ``not evaluate``
as a reference through which evaluate() escapes, and DDP005 then left the shard choice; the
last tests fail on that version.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, Ranked, launch, patched

from patcher.engine import fix_text
from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SOURCE = (SCRIPTS / "template_dead_cache_barrier.py").read_text()
ARGS = ["--evaluate_during_training"]
EXAMPLES = 37  # N_TEST in the script
LONE_GATE = "if args.local_rank == -1 and args.evaluate_during_training:"
RANK_ZERO_GATE = "if args.local_rank in [-1, 0] and args.evaluate_during_training:"
GLOBAL_GATE = (
    'if int(os.environ.get("RANK", args.local_rank)) in [-1, 0] and args.evaluate_during_training:'
)
SHARD_CHOICE = (
    "SequentialSampler(eval_dataset) if args.local_rank == -1 else DistributedSampler(eval_dataset)"
)
DEAD_BARRIERS = (
    "    if args.local_rank not in [-1, 0] and not evaluate:\n        torch.distributed.barrier()",
    "    if args.local_rank == 0 and not evaluate:\n        torch.distributed.barrier()",
)

_runs: dict[str, Ranked] = {}


def _launch_once(source: str, name: str, factory: pytest.TempPathFactory) -> Ranked:
    """One run per distinct text: while DDP005 misses, two of the fixtures are the same script."""
    if source not in _runs:
        _runs[source] = launch(source, ARGS, Path(factory.mktemp(name)))
    return _runs[source]


def _predicted_ids(run: Ranked) -> list[int]:
    lines = (run.output / "predictions.txt").read_text().splitlines()
    return [int(line.split("\t")[0]) for line in lines]


def _assert_runs_and_writes_once(run: Ranked) -> None:
    assert run.ok, run.explain()  # every rank exited 0, no hang
    hashes = run.param_hashes()
    assert set(hashes) == {"0", "1"}, run.explain()
    assert len(set(hashes.values())) == 1, hashes
    writers = run.writers()
    assert set(writers) == {"predictions.txt"}, writers
    (pid,) = writers["predictions.txt"]
    assert {r.env_rank for r in run.records if r.pid == pid} == {0}, run.explain()


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SOURCE)


@pytest.fixture(scope="module")
def without_ddp005_source() -> str:
    others = [rule.code for rule in all_rules() if rule.code != "DDP005"]
    source = patched(SOURCE, select=others)
    assert SHARD_CHOICE in source  # the shard choice is still there
    return source


@pytest.fixture(scope="module")
def fixed(patched_source: str, tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    return _launch_once(patched_source, "patched", tmp_path_factory)


@pytest.fixture(scope="module")
def without_ddp005(without_ddp005_source: str, tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    return _launch_once(without_ddp005_source, "without-ddp005", tmp_path_factory)


def test_ddp003_rewrites_the_single_process_gate(patched_source: str) -> None:
    assert LONE_GATE in SOURCE
    by_ddp003 = patched(SOURCE, select=["DDP003"])
    assert LONE_GATE not in by_ddp003 and RANK_ZERO_GATE in by_ddp003
    _, findings = fix_text(SOURCE, all_rules())
    assert [f.fixed for f in findings if f.code == "DDP003"] == [True], findings  # not reported
    # with every rule: on the global rank (DDP008), the unwrapped model (DDP004)
    assert LONE_GATE not in patched_source and GLOBAL_GATE in patched_source
    assert 'evaluate(args, model.module if hasattr(model, "module") else model)' in patched_source
    for barrier in DEAD_BARRIERS:  # the dead barrier pair is left as it is
        assert barrier in SOURCE and barrier in patched_source


def test_ddp005_gives_evaluate_a_sequential_sampler(patched_source: str) -> None:
    assert SHARD_CHOICE not in patched_source
    assert "eval_sampler = SequentialSampler(eval_dataset)\n" in patched_source


def test_patched_script_runs_on_two_ranks(fixed: Ranked) -> None:
    """Rank 0 evaluates alone through the dead barriers: no hang, one writer."""
    _assert_runs_and_writes_once(fixed)


def test_patched_script_scores_every_example_once_in_order(fixed: Ranked) -> None:
    assert _predicted_ids(fixed) == list(range(EXAMPLES))


def test_without_ddp005_rank_zero_scores_a_shard(without_ddp005: Ranked) -> None:
    """The check above can fail: the run succeeds, predictions.txt is incomplete and shuffled."""
    assert without_ddp005.ok, without_ddp005.explain()
    ids = _predicted_ids(without_ddp005)
    assert len(ids) == (EXAMPLES + 1) // 2  # rank 0's shard of a DistributedSampler
    assert ids != sorted(ids)
