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
