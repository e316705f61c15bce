"""The shared index: source order, parents, containment, statement lines and pruned replace."""

from __future__ import annotations

import libcst as cst

from patcher.tree import Tree

CODE = """\
import os  # first


@decorator
def train(args):
    try:
        x = 1; y = 2
    except ValueError:
        if args.a:
            pass
        elif args.b:
            z = 3
        else:
            w = 4
    for i in range(3):
        with open("f") as f:
            f.write(str(i))
    while False:
        break
    else:
        q = 5
    return x + y


class Trainer:
    def fit(self):
        if self.args.local_rank == -1: self.evaluate()
"""


def _tree() -> Tree:
    return Tree(cst.parse_module(CODE), CODE)


def _line(tree: Tree, text: str) -> int:
    node = next(
        n
        for n in tree.nodes(cst.BaseSmallStatement)  # type: ignore[type-abstract]  # nodes() takes bases
        if tree.module.code_for_node(n).strip() == text
    )
    return tree.position(node)[0]


def test_statement_lines_match_the_source() -> None:
    tree = _tree()
    expected = {
        "import os": 1,
        "x = 1;": 7,
        "y = 2": 7,
        "pass": 10,
        "z = 3": 12,
        "w = 4": 14,
        "f.write(str(i))": 17,
        "break": 19,
        "q = 5": 21,
        "return x + y": 22,
        "self.evaluate()": 27,
    }
    for text, line in expected.items():
        assert _line(tree, text) == line, text


def test_expressions_report_their_statement() -> None:
    tree = _tree()
    call = next(c for c in tree.nodes(cst.Call) if tree.module.code_for_node(c) == "range(3)")
    assert tree.position(call) == (15, 5)


def test_order_parents_and_containment() -> None:
    tree = _tree()
    names = [n.value for n in tree.nodes(cst.Name)]
    assert names.index("decorator") < names.index("train") < names.index("Trainer")
    function = tree.nodes(cst.FunctionDef)[0]
    call = next(c for c in tree.nodes(cst.Call) if isinstance(c.func, cst.Attribute))
    assert tree.contains(function, call) and tree.scope(call) is function
    assert tree.parent(function) is tree.module
    method = tree.nodes(cst.FunctionDef)[1]
    last = tree.nodes(cst.Call)[-1]
    assert tree.scope(last) is method and not tree.contains(function, last)


def test_replace_touches_only_the_given_nodes() -> None:
    tree = _tree()
    target = next(n for n in tree.nodes(cst.Integer) if n.value == "5")
    pass_line = next(
        n for n in tree.nodes(cst.SimpleStatementLine) if "pass" in tree.module.code_for_node(n)
    )
    extra = cst.parse_statement("log()\n")
    new = tree.replace({target: cst.Integer("6"), pass_line: [pass_line, extra]})
    expected = CODE.replace("q = 5", "q = 6").replace(
        "            pass\n", "            pass\n            log()\n"
    )
    assert new.code == expected
    untouched = tree.module.body[-1]
    assert new.body[-1] is untouched  # subtrees off the paths are shared, not rebuilt


def test_replace_with_nothing_removes_a_statement() -> None:
    tree = _tree()
    line = next(
        n for n in tree.nodes(cst.SimpleStatementLine) if "return" in tree.module.code_for_node(n)
    )
    assert "return x + y" not in tree.replace({line: []}).code
