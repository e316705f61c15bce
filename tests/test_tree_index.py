"""The engine's own tree index (patcher/tree.py) answers as LibCST's metadata providers do.

The index is a shortcut for speed (one walk instead of a provider's full traversal); this keeps
it honest over every fixture, input and expected output: each indexed node has the parent
``ParentNodeProvider`` gives it, the nodes left out are layout only, and each statement is
where ``PositionProvider`` puts it.
"""

from __future__ import annotations

from typing import Any

import libcst as cst
import pytest
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

from fixture_cases import cases
from patcher.tree import Tree

#: What the index leaves out on purpose: whitespace, comments, punctuation (and what lies
#: inside them). No rule asks about these.
LAYOUT = (
    cst.BaseParenthesizableWhitespace,
    cst.EmptyLine,
    cst.TrailingWhitespace,
    cst.Comment,
    cst.Newline,
    cst.LeftParen,
    cst.RightParen,
    cst.LeftSquareBracket,
    cst.RightSquareBracket,
    cst.LeftCurlyBrace,
    cst.RightCurlyBrace,
    cst.Comma,
    cst.Colon,
    cst.Semicolon,
    cst.Dot,
    cst.AssignEqual,
    cst.ImportStar,
    cst.ParenthesizedWhitespace,
)


def _sources() -> list[Any]:  # pytest.param objects
    params = []
    for case in cases():
        params.append(pytest.param(case.read(), id=f"{case.name}.in"))
        if case.expected_path.exists():
            params.append(pytest.param(case.expected(), id=f"{case.name}.out"))
    return params


@pytest.mark.parametrize("code", _sources())
def test_index_agrees_with_libcst_providers(code: str) -> None:
    module = cst.parse_module(code)
    tree = Tree(module, code)
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    parents = wrapper.resolve(ParentNodeProvider)
    positions = wrapper.resolve(PositionProvider)

    indexed = tree.nodes(cst.CSTNode)  # type: ignore[type-abstract]  # every node: the base
    assert indexed[0] is module
    seen = {id(node) for node in indexed}
    for node in indexed[1:]:
        assert tree.parent(node) is parents[node], type(node).__name__
    for node, parent in parents.items():
        if id(node) not in seen:
            assert isinstance(node, LAYOUT) or id(parent) not in seen, type(node).__name__

    statements = [n for n in indexed if isinstance(n, (cst.BaseStatement, cst.BaseSmallStatement))]
    assert statements
    for statement in statements:
        start = positions[statement].start
        assert tree.position(statement) == (start.line, start.column + 1), (
            type(statement).__name__,
            module.code_for_node(statement)[:60],
        )
