"""The lone-copies post-condition (``patches/_divergence.lone_copies``): in a version whose rank
stays dormant and that has no process group, an exit, or the state deciding one, that a ``RANK``
gate keeps from the other processes in a loop that trains on splits identical runs."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from patcher.engine import fix_text
from patcher.registry import every_rule, select_rules
from patcher.rule import Reason
from patcher.tree import Tree
from patches._ranks import LONE, dormant_violations, postcondition

RANK = 'int(os.environ.get("RANK", args.local_rank)) in [-1, 0]'

_SCRIPT = """\
import argparse
import os

import torch


def train(args, model, loader, optimizer):
    bad = 0
    for epoch in range(args.epochs):
        for batch in loader:
            model(batch).mean().backward()
            optimizer.step()
        {gate}
            if evaluate(model) > args.target:
                bad += 1
            {exit}
        {after}
    return model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()
    {setup}
    train(args, *build(args))
"""
_NO_GROUP = 'if args.local_rank != -1:\n        torch.distributed.init_process_group("gloo")'


def _tree(gate: str, exit_: str = "pass", after: str = "pass", setup: str = _NO_GROUP) -> Tree:
    source = _SCRIPT.format(gate=gate, exit=exit_, after=after, setup=setup)
    return Tree(cst.parse_module(source), source)


def _lone(tree: Tree, *, draws: bool = False) -> list[tuple[str, ...]]:
    """The lone-copies violations: the exits and state (or, with ``draws``, the evaluations
    that only rank 0 draws random numbers in; the script's RANK gate holds one)."""
    return [
        key
        for key in dormant_violations(tree)
        if key[-1] == LONE and (key[2] == "random draws") == draws
    ]


def test_an_exit_behind_rank_in_a_loop_that_trains_on_splits_the_copies() -> None:
    tree = _tree(f"if {RANK}:", exit_="if bad == 2:\n                return model")
    assert _lone(tree) == [("exit", "train", "return model", LONE)]
    (reason,) = [
        r for k, r in postcondition(tree).items() if isinstance(k, tuple) and k[0] == "exit"
    ]
    assert isinstance(reason, Reason)
    assert reason.suspects == ("DDP003", "DDP008", "DDP011", "DDP016")
    assert str(reason) == (
        "only rank 0 returns here, out of code that trains on after it: the rank stays dormant "
        "under the launcher (local_rank -1 and no process group: every process is a lone run, "
        "which only RANK tells apart), so no other process takes it: they train on past rank "
        "0's early stop; decide it on every process"
    )


def test_a_patience_behind_rank_that_every_process_breaks_on_splits_the_copies() -> None:
    tree = _tree(f"if {RANK}:", after="if bad == 2:\n            break")
    assert _lone(tree) == [("state", "train", "bad", "if bad == 2", LONE)]


@pytest.mark.parametrize(
    ("gate", "setup"),
    [
        ("if args.local_rank in [-1, 0]:", _NO_GROUP),  # every dormant process runs it
        # a rank the script derives from the dormant local rank: -1 on every process
        ("if args.global_rank in [-1, 0]:", _NO_GROUP),
        # a group on every process: judged as a live rank (a wrap elsewhere may synchronise)
        (f"if {RANK}:", 'torch.distributed.init_process_group("gloo")'),
    ],
)
def test_no_split_without_rank_or_with_a_group(gate: str, setup: str) -> None:
    tree = _tree(gate, after="if bad == 2:\n            break", setup=setup)
    assert _lone(tree) == []


def test_an_exit_after_the_last_training_step_splits_nothing() -> None:
    source = _SCRIPT.format(gate=f"if {RANK}:", exit="pass", after="pass", setup=_NO_GROUP).replace(
        "    return model\n", f"    if {RANK}:\n        return model\n    return None\n"
    )
    assert _lone(Tree(cst.parse_module(source), source)) == []


def test_ddp013_says_what_lone_copies_do_and_when_a_hang_comes() -> None:
    """Its own ``RANK`` gate: the split, as it happens now. A local-rank gate: the hang that
    comes with the rank read, said to come with it."""
    rules = select_rules(every_rule(), ["DDP013"])
    own = _SCRIPT.format(
        gate=f"if {RANK}:", exit="pass", after="if bad == 2:\n            break", setup=_NO_GROUP
    )
    (finding,) = [f for f in fix_text(own, rules)[1] if "'bad'" in f.message]
    assert finding.message.startswith("'bad' is updated on rank 0 only (`bad += 1`) and every ")
    assert finding.message.endswith(
        "so no other process sees it change: they train on past rank 0's early stop; decide it "
        "on every process"
    )
    local = textwrap.dedent(own).replace(RANK, "args.local_rank in [-1, 0]")
    local = local.replace(
        "    bad = 0\n",
        "    bad = 0\n    model = torch.nn.parallel.DistributedDataParallel(model)\n",
    )
    (finding,) = [f for f in fix_text(local, rules)[1] if "'bad'" in f.message]
    assert finding.message.startswith(
        "once the script reads its rank from LOCAL_RANK (as DDP001 asks; until then every "
        "process keeps local_rank -1 and does the same here): 'bad' is updated on rank 0 only"
    )
    assert "(hang)" in finding.message


def test_an_evaluation_behind_rank_in_a_loop_that_trains_on_parts_the_random_streams() -> None:
    """Only rank 0 evaluates (a DataLoader takes a seed from the global generator): the copies
    train different models from there. Behind a local-rank gate every dormant process
    evaluates; after the last training step nothing trains on."""
    assert _lone(_tree(f"if {RANK}:"), draws=True) == [
        ("state", "train", "random draws", "if evaluate(model) > args.target", LONE)
    ]
    assert _lone(_tree("if args.local_rank in [-1, 0]:"), draws=True) == []
    after = _SCRIPT.format(gate="if True:", exit="pass", after="pass", setup=_NO_GROUP).replace(
        "    return model\n", f"    if {RANK}:\n        evaluate(model)\n    return model\n"
    )
    assert _lone(Tree(cst.parse_module(after), after), draws=True) == []
