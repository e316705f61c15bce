"""Counters that never go below zero, and the dead branches they decide (patches/_counters.py)."""

from __future__ import annotations

import libcst as cst
import pytest

from patcher.tree import Tree
from patches._counters import non_negative_counters, sign_truth
from patches._gates import calls_collectives
from patches._ranks import OTHER, RANK0, model
from patches._syntax import module_functions

T, F, U = True, False, None

UNIXCODER = """
def main(args):
    patience, best_score, losses, dev_dataset = 0, 0, [], {}
    for epoch in range(args.num_train_epochs):
        train_one_epoch()
        if dev_score > best_score:
            best_score = dev_score
            patience = 0
        else:
            patience += 1
            if patience == -1:
                break
"""


def _function(source: str) -> cst.FunctionDef:
    function = cst.parse_module(source).body[0]
    assert isinstance(function, cst.FunctionDef)
    return function


def _counters(body: str) -> frozenset[str]:
    return non_negative_counters(_function("def main(args):\n" + body))


def test_unixcoder_patience_is_a_counter() -> None:
    assert "patience" in non_negative_counters(_function(UNIXCODER))
    assert "best_score" not in non_negative_counters(_function(UNIXCODER))  # = dev_score


@pytest.mark.parametrize(
    "body",
    [
        "    n = 0\n    n += 1\n",
        "    n = m = 0\n    n += 2\n",
        "    n: int = 0\n    n += 1\n",
        "    n: int\n    n = 3\n",
        "    a, (b, n) = 1, (2, 0)\n",
        "    n = 0x10\n    n += 0\n",
        "    n = 0\n    def inner():\n        return n + 1\n",  # a closure only reads it
    ],
)
def test_counts_from_literals_are_counters(body: str) -> None:
    assert "n" in _counters(body)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("    n = -1\n    n += 1\n", "a negative start"),
        ("    n = 0\n    n += -1\n", "a negative step"),
        ("    n = 0\n    n -= 1\n", "a subtraction"),
        ("    n = 0\n    n *= 2\n", "another operator"),
        ("    n = 0\n    n += step\n", "a step held by a name"),
        ("    n = args.patience\n", "a value from elsewhere"),
        ("    n = 0\n    n = n\n", "a name"),
        ("    n, m = pair\n", "unpacked from something else"),
        ("    n, n = 0, -1\n", "named twice in one target"),
        ("    n, *rest = 0, 1, 2\n", "a starred target"),
        ("    n = 0\n    for n in range(3):\n        pass\n", "a loop target"),
        ("    n = 0\n    with f() as n:\n        pass\n", "a with target"),
        ("    n = 0\n    try:\n        pass\n    except E as n:\n        pass\n", "except as"),
        ("    n = 0\n    import n\n", "an import"),
        ("    n = 0\n    import numpy as n\n", "an import as"),
        ("    n = 0\n    del n\n", "del"),
        ("    global n\n    n = 0\n", "global"),
        ("    n = 0\n    def inner():\n        nonlocal n\n        n = -5\n", "nonlocal"),
        ("    n = 0\n    def inner(n):\n        pass\n", "a nested parameter"),
        ("    n = 0\n    def n():\n        pass\n", "a def of that name"),
        ("    n = 0\n    class n:\n        pass\n", "a class of that name"),
        ("    n = 0\n    f = lambda n: n\n", "a lambda parameter"),
        ("    n = 0\n    if (n := read()) == 0:\n        pass\n", "a walrus"),
        ("    n = 0\n    xs = [n for n in range(3)]\n", "a comprehension variable"),
        ("    n = 0\n    match x:\n        case [n]:\n            pass\n", "a match capture"),
        ("    n = True\n", "a bool"),
        ("    n = 0.0\n", "a float"),
        ("    pass\n", "never bound here (a global)"),
    ],
)
def test_anything_else_is_unknown(body: str, why: str) -> None:
    assert "n" not in _counters(body), why


def test_a_parameter_is_unknown() -> None:
    assert "n" not in non_negative_counters(_function("def f(n):\n    n += 1\n"))


def test_module_counters_and_what_spoils_them() -> None:
    plain = cst.parse_module("n = 0\nn += 1\n")
    assert "n" in non_negative_counters(plain)
    for spoiler in (
        "def f():\n    global n\n    n = -1\n",
        "from helpers import *\n",
        "globals()['n'] = -1\n",
        "exec(code)\n",
    ):
        module = cst.parse_module("n = 0\nn += 1\n" + spoiler)
        assert "n" not in non_negative_counters(module), spoiler


@pytest.mark.parametrize(
    ("test", "value"),
    [
        ("n == -1", F),
        ("n == -2", F),
        ("-1 == n", F),
        ("n < 0", F),
        ("0 > n", F),
        ("n <= -1", F),
        ("n in [-1, -2]", F),
        ("n != -1", T),
        ("n >= 0", T),
        ("0 <= n", T),
        ("n > -1", T),
        ("n not in (-1,)", T),
        ("n == 0", U),
        ("n == 2", U),
        ("n < 1", U),
        ("n <= 0", U),
        ("n > 0", U),
        ("n >= 1", U),
        ("n in [-1, 0]", U),
        ("n > args.patience", U),
        ("n == m", U),
        ("m == -1", U),  # not a counter
        ("-1 < n < 5", U),  # a chain: not judged
        ("n is -1", U),
    ],
)
def test_sign_truth(test: str, value: bool | None) -> None:
    assert sign_truth(cst.parse_expression(test), {"n"}) is value


def _tree(source: str) -> Tree:
    return Tree(cst.parse_module(source), source)


def test_rank_model_leaves_the_dead_break_out() -> None:
    tree = _tree(UNIXCODER)
    m = model(tree)
    (brk,) = tree.nodes(cst.Break)
    assert m.dead(brk)
    assert m.runs(brk, RANK0) is False and m.runs(brk, OTHER) is False
    (save,) = [
        a for a in tree.nodes(cst.AssignTarget) if getattr(a.target, "value", "") == "best_score"
    ]
    assert not m.dead(save)


def test_a_live_limit_is_not_dead() -> None:
    tree = _tree(UNIXCODER.replace("patience == -1", "patience > args.patience"))
    (brk,) = tree.nodes(cst.Break)
    assert not model(tree).dead(brk)


def test_a_rebound_counter_keeps_the_break_live() -> None:
    tree = _tree(
        UNIXCODER.replace("patience +=1", "patience = patience - 1").replace(
            "patience += 1", "patience = patience - 1"
        )
    )
    (brk,) = tree.nodes(cst.Break)
    assert not model(tree).dead(brk)


def test_a_barrier_under_a_dead_counter_test_joins_nothing() -> None:
    source = (
        "import torch.distributed as dist\n"
        "def evaluate(args):\n"
        "    tries = 0\n"
        "    tries += 1\n"
        "    if tries < 0:\n"
        "        dist.barrier()\n"
        "def evaluate_live(args):\n"
        "    tries = 0\n"
        "    tries += 1\n"
        "    if tries < 2:\n"
        "        dist.barrier()\n"
    )
    functions = module_functions(cst.parse_module(source))
    assert not calls_collectives(functions["evaluate"], functions)
    assert calls_collectives(functions["evaluate_live"], functions)
