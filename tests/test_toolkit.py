"""The rule-author toolkit (patches/_names.py, _args.py, _argparse.py) answers as documented."""

from __future__ import annotations

import libcst as cst
import pytest

from patcher.tree import Tree
from patches._args import (
    argument,
    has_keyword,
    keyword_arg,
    keyword_value,
    positional_args,
    positional_values,
)
from patches._names import bindings_of, frame_uses, is_read, names_bound_in, parameters


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


def _call(code: str) -> cst.Call:
    call = cst.parse_expression(code)
    assert isinstance(call, cst.Call)
    return call


def _text(node: cst.CSTNode | None) -> str | None:
    return None if node is None else cst.Module([]).code_for_node(node)


def test_keyword_arg_and_value() -> None:
    call = _call('torch.load(path, map_location="cpu", **extra)')
    arg = keyword_arg(call, "map_location")
    assert arg is not None and _text(arg.value) == '"cpu"'
    assert _text(keyword_value(call, "map_location")) == '"cpu"'
    assert keyword_arg(call, "weights_only") is None and keyword_value(call, "f") is None
    assert has_keyword(call, "weights_only", "map_location")
    assert not has_keyword(call, "weights_only", "pickle_module")


def test_positional_arguments_skip_keywords_and_stars() -> None:
    call = _call("torch.save(state, *rest, path, f=out)")
    assert [_text(a.value) for a in positional_args(call)] == ["state", "path"]
    assert [_text(v) for v in positional_values(call)] == ["state", "path"]


@pytest.mark.parametrize(
    ("code", "mode"),
    [
        ('open(p, "w")', '"w"'),
        ('open(p, mode="a")', '"a"'),
        ('open(p, encoding="utf-8")', None),
        ("open(p)", None),
    ],
)
def test_argument_by_position_or_keyword(code: str, mode: str | None) -> None:
    assert _text(argument(_call(code), 1, "mode")) == mode


def test_binding_reader() -> None:
    code = (
        "def f(a, /, b, *rest, c=1, **more):\n"
        "    x, (y, *z) = g()\n"
        "    for i in a: pass\n"
        "    with open(b) as h: pass\n"
        "    if (w := a): pass\n"
        "    x += 1\n"
        "    def inner(q): r = 1\n"
    )
    tree = Tree(cst.parse_module(code), code)
    function = tree.module.body[0]
    assert isinstance(function, cst.FunctionDef)
    assert [p.name.value for p in parameters(function)] == ["a", "b", "rest", "c", "more"]
    assert names_bound_in(function.body) == {"x", "y", "z", "i", "h", "w"}  # not inner's r
    assert [type(b).__name__ for b in bindings_of(function, "x")] == ["AssignTarget", "AugAssign"]
    assert [type(b).__name__ for b in bindings_of(function, "a")] == ["Param"]
    assert bindings_of(function, "r") == []


def _frame_uses(code: str, name: str) -> tuple[list[str], int]:
    tree = Tree(cst.parse_module(code), code)
    function = tree.module.body[0]
    bindings, reads = frame_uses(tree, function, name)
    kinds = ["frame" if b is function else type(b).__name__ for b in bindings]
    return kinds, len(reads)


def test_frame_uses_finds_bindings_and_reads_and_gives_up_on_unknowable_flow() -> None:
    plain = "def f(r):\n    if r:\n        x = g()\n    print(x, [x for x in r])\n"
    assert _frame_uses(plain, "x") == (["AssignTarget"], 1)
    assert _frame_uses(plain, "r") == (["Param"], 2)
    assert _frame_uses("def f():\n    global x\n    x = 1\n", "x")[0] == ["frame", "AssignTarget"]
    closure = "def f():\n    x = 1\n    def g():\n        return x\n"
    assert _frame_uses(closure, "x")[0] == ["AssignTarget", "frame"]
    assert _frame_uses("def f():\n    del x\n", "x")[0] == ["frame"]
