"""The rule-author toolkit (patches/_names.py, _args.py, _argparse.py) answers as documented."""

from __future__ import annotations

import libcst as cst
import pytest

from patcher.tree import Tree
from patches._names import is_read


def _mentions(code: str, name: str) -> list[bool]:
    tree = Tree(cst.parse_module(code), code)
    return [is_read(tree, n) for n in tree.nodes(cst.Name) if n.value == name]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("x = 1\n", [False]),
        ("x += 1\n", [True]),
        ("x: int = 1\n", [False]),
        ("(x := f())\n", [False]),
        ("a, (x, *b) = f()\n", [False]),
        ("for x in y: pass\n", [False]),
        ("for y in x: pass\n", [True]),
        ("for y in (x, z): pass\n", [True]),
        ("for y, x in z: pass\n", [False]),
        ("def f(x=x): pass\n", [False, True]),
        ("def x(): pass\n", [False]),
        ("class x: pass\n", [False]),
        ("g = lambda: x\n", [True]),
        ("import x\n", [False]),
        ("import a as x\n", [False]),
        ("with f() as x: pass\n", [False]),
        ("global x\n", [False]),
        ("y.x\n", [False]),
        ("f(x=1)\n", [False]),
        ("f(x)\n", [True]),
        ("[x.a for x in y]\n", [False, False]),
        ("[y for y in x]\n", [True]),
        ("del x\n", [True]),
        ("print(x)\n", [True]),
    ],
)
def test_is_read_follows_python(code: str, expected: list[bool]) -> None:
    assert _mentions(code, "x") == expected
