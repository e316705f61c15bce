"""The access paths the divergent-state post-condition compares (``patches/_divergence.py``)."""

from __future__ import annotations

import libcst as cst
import pytest

from patches._divergence import _complete, _overlap, path


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("patience", ("patience",)),
        ("self.best", ("self", ".best")),
        ("state['is_early_stop'][task]", ("state", "['is_early_stop']", "[*]")),
        ("is_early_stop[task]['x']", ("is_early_stop", "[*]", "['x']")),
        ("scores[0]", ("scores", "[0]")),
        ("make()[0]", None),
    ],
)
def test_path(code: str, expected: tuple[str, ...] | None) -> None:
    assert path(cst.parse_expression(code)) == expected


def test_a_non_literal_index_may_name_any_key() -> None:
    written = _complete(("is_early_stop", "[*]", "['x']"))
    assert written == ("is_early_stop",)
    assert _overlap(written, ("is_early_stop",))
    assert _overlap(("state", "['is_early_stop']"), ("state",))  # the whole dict is read
    assert not _overlap(("state", "['is_early_stop']"), ("state", "['skip_cnt']"))
    assert not _overlap(("args", ".best"), ("args", ".patience"))


_LOOP = """\
import torch


def train(args, model, loader, optimizer):
    {init}
    for epoch in range(args.epochs):
        for batch in loader:
            model(batch).mean().backward()
            optimizer.step()
        {around}if args.local_rank in [-1, 0]:
            {update}
        {every}
        if patience > args.patience:
            break
"""


def _broadcasts(init: str, update: str, around: str = "", every: str = "pass") -> object:
    from patcher.tree import Tree
    from patches._divergence import broadcasts
    from patches._ranks import model

    if around:  # the gate one level deeper
        update = update.replace("\n", "\n    ")
        code = _LOOP.replace("            {update}", "                {update}")
    else:
        code = _LOOP
    code = code.format(init=init, update=update, around=around, every=every)
    code += "\nsampler = torch.utils.data.distributed.DistributedSampler(data)\n"
    plans, refused = broadcasts(model(Tree(cst.parse_module(code), code)))
    return [plan.names for plan in plans] or refused.get("patience")


def test_broadcast_planned_for_a_count_only_rank_zero_moves() -> None:
    assert _broadcasts("patience = 0", "patience += 1") == [("patience",)]


@pytest.mark.parametrize(
    ("init", "update", "around", "every", "why"),
    [
        ("patience = args.start", "patience += 1", "", "pass", "starts from a value each rank"),
        ("patience = 0", "patience += 1", "", "patience += 1", "every rank changes patience"),
        ("patience = 0", "patience += 1", "", "log(patience)", "under another name"),
        ("patience = 0", "patience += 1; return", "", "pass", "leave rank 0's gate"),
        (
            "patience = 0",
            "patience += 1",
            "if model(batch).item() < 1:\n            ",
            "pass",
            "may differ between ranks",
        ),
    ],
    ids=["computed_start", "every_rank_update", "alias", "return_in_gate", "data_test_around"],
)
def test_broadcast_refused_when_not_sure(
    init: str, update: str, around: str, every: str, why: str
) -> None:
    found = _broadcasts(init, update, around, every)
    assert isinstance(found, str) and why in found, found


_RELOAD = """\
import copy
import torch


def train(args, model, loader, optimizer):
    model = torch.nn.parallel.DistributedDataParallel(model)
    best = None
    for epoch in range(args.epochs):
        {load}
        for batch in loader:
            model(batch).mean().backward()
            optimizer.step()
        if args.local_rank in [-1, 0]:
            best = copy.deepcopy(model.state_dict())
    {after}
"""


def _weight_keys(load: str, after: str = "pass") -> list[tuple[str, ...]]:
    from patcher.tree import Tree
    from patches._ranks import violations

    code = _RELOAD.format(load=load, after=after)
    return list(violations(Tree(cst.parse_module(code), code), ("weights",)))


@pytest.mark.parametrize(
    "load",
    [
        "if best is not None:\n            model.load_state_dict(best)",
        "if args.local_rank in [-1, 0]:\n            model.module.load_state_dict(torch.load(f))",
        "if args.local_rank == 0 and epoch:\n            optimizer.load_state_dict(torch.load(f))",
        "if args.local_rank == 0:\n            for _, w in model.named_parameters(): w.copy_(0)",
    ],
    ids=["rank0-value", "rank0-gate", "optimizer", "copy-into-parameters"],
)
def test_a_load_only_rank_0_makes_mid_training_is_a_violation(load: str) -> None:
    assert [key[0] for key in _weight_keys(load)] == ["weights"]


@pytest.mark.parametrize(
    ("load", "after"),
    [
        ("if epoch == 2:\n            model.load_state_dict(torch.load(args.ckpt))", "pass"),
        ("pass", "if args.local_rank in [-1, 0]:\n        model.load_state_dict(best)"),
        ("if args.local_rank in [-1, 0]:\n            evaluator.load_state_dict(best)", "pass"),
        ("if args.local_rank == 0:\n            for w in ema.parameters(): w.copy_(0)", "pass"),
    ],
    ids=["every-rank", "after-training", "not-the-trained-model", "copy-into-another-model"],
)
def test_loads_every_rank_makes_or_after_training_are_not(load: str, after: str) -> None:
    assert _weight_keys(load, after) == []


def test_a_woken_rank_gate_around_an_optimizer_load_is_withdrawn() -> None:
    """Dormant under a modern launcher (every process is rank -1 and loads the optimizer), the
    script trains in step; DDP001's LOCAL_RANK read would leave the load to rank 0 alone."""
    from pathlib import Path

    from patcher.engine import fix_text
    from patcher.registry import all_rules

    fixture = Path(__file__).parent / "fixtures" / "DDP013" / "resume_optimizer_rank0.in.py"
    output, findings = fix_text(fixture.read_text(), all_rules())
    assert 'os.environ["LOCAL_RANK"]' not in output
    (withdrawn,) = [f for f in findings if f.code == "DDP001"]
    assert not withdrawn.fixed
    assert "not rewritten: `optimizer.load_state_dict(" in withdrawn.message
    assert "changes optimizer's state on rank 0 only" in withdrawn.message
