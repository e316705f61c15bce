"""Render a rewritten statement without rendering again what it shares with the input.

A fix rebuilds the path from the module to the node it replaces, so the rewritten top-level
function is a new node, although most statements inside it are the input's own. LibCST renders
a node by visiting every node below it, so rendering that function again cost about as much as
the first render of the whole module. Instead, statements whose text is known are emitted as
that text: the text of an input statement is its slice of the input, from the lines Python's
``ast`` gives. A statement's text depends only on the statement and the indentation around it,
so it is reused only under the same indentation, and checked against it while rendering.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import libcst as cst
from libcst._nodes.internal import CodegenState

#: A statement's known text, by ``id``: the statement (so an id cannot be reused), the
#: indentation it was rendered under (LibCST's indent tokens, outermost first) and the text.
Texts = MutableMapping[int, tuple[cst.CSTNode, tuple[str, ...], str]]

# Fields that hold a compound statement's blocks and clauses, in source order.
_CLAUSES = ("body", "handlers", "orelse", "finalbody")
# What such a field holds besides a block: clauses at the statement's own indentation.
_CLAUSE_TYPES = (cst.If, cst.Else, cst.Finally, cst.ExceptHandler, cst.ExceptStarHandler)


@dataclass(frozen=True)
class _Known(cst.BaseStatement):
    """A statement whose text is known: that text, when rendered under ``indents``."""

    text: str
    node: cst.CSTNode
    indents: tuple[str, ...]

    def _visit_and_replace_children(self, visitor: Any) -> _Known:  # pragma: no cover
        return self

    def _codegen_impl(self, state: CodegenState) -> None:
        if tuple(state.indent_tokens) == self.indents:
            state.add_token(self.text)
        else:  # pragma: no cover - the indentation is computed as LibCST's codegen does
            self.node._codegen(state)


def _line_starts(text: str) -> list[int]:
    starts = [0]
    index = text.find("\n")
    while index >= 0:
        starts.append(index + 1)
        index = text.find("\n", index + 1)
    return starts


def _first_line(statement: cst.CSTNode, lines: Mapping[int, tuple[int, int]]) -> int | None:
    """The 0-based line the statement's text starts on (its own leading blank and comment
    lines included); None when the ``ast`` lines do not say (a decorator comes first)."""
    if getattr(statement, "decorators", ()):
        return None
    found = lines.get(id(statement))
    if found is None:
        return None
    leading: Sequence[cst.EmptyLine] = getattr(statement, "leading_lines", ())
    return found[0] - 1 - len(leading)


def _blocks(statement: cst.CSTNode) -> Iterator[cst.IndentedBlock]:
    """The indented blocks of a compound statement (``elif`` and ``else`` clauses included);
    none for ``match``, which indents its cases itself."""
    if type(statement) is cst.Match or not isinstance(
        statement, (cst.BaseCompoundStatement, *_CLAUSE_TYPES)
    ):
        return
    for name in _CLAUSES:
        value = getattr(statement, name, None)
        for item in value if isinstance(value, (list, tuple)) else (value,):
            if type(item) is cst.IndentedBlock:
                yield item
            elif item is not None and not isinstance(item, cst.BaseSuite):
                yield from _blocks(item)


def input_texts(
    module: cst.Module, text: str, lines: Mapping[int, tuple[int, int]], texts: Texts
) -> None:
    """Add to ``texts`` the text of every input statement whose slice of ``text`` is certain:
    it runs from the statement's first line to the next statement's in the same block (the
    last statement of a nested block is left out: its end is not known). ``lines`` are the
    statements' ``ast`` lines (``Tree``'s), and ``text`` must be ``module.code`` with "\\n"
    line ends only."""
    starts = _line_starts(text)
    end = len(starts) - 1 - len(module.footer) if module.has_trailing_newline else None
    if module.body and _first_line(module.body[0], lines) != len(module.header):
        end = None  # the lines do not add up: take nothing at the top level
    _block_texts(module.body, (), end, (text, starts, lines, module.default_indent), texts)


def _block_texts(
    statements: Sequence[cst.CSTNode],
    indents: tuple[str, ...],
    end: int | None,
    source: tuple[str, list[int], Mapping[int, tuple[int, int]], str],
    texts: Texts,
) -> None:
    """:func:`input_texts` for one block (a module-level function: a nested one that calls
    itself is a reference cycle, which kept ``texts`` and its statements until a collection)."""
    text, starts, lines, indent = source
    firsts = [_first_line(s, lines) for s in statements]
    for index, statement in enumerate(statements):
        first = firsts[index]
        last = firsts[index + 1] if index + 1 < len(statements) else end
        if first is not None and last is not None and 0 <= first < last < len(starts):
            texts[id(statement)] = (statement, indents, text[starts[first] : starts[last]])
        for inner in _blocks(statement):
            deeper = (*indents, indent if inner.indent is None else inner.indent)
            _block_texts(inner.body, deeper, None, source, texts)


def render(module: cst.Module, statement: cst.CSTNode, texts: Texts) -> str:
    """``module.code_for_node(statement)`` for a top-level statement, reusing known texts."""
    return module.code_for_node(_shadow(statement, (), module.default_indent, texts))


def _shadow(
    statement: cst.CSTNode, indents: tuple[str, ...], indent: str, texts: Texts
) -> cst.CSTNode:
    """``statement`` with each statement of known text inside it (or itself) standing for
    that text; only compound statements not known themselves are rebuilt."""
    kept = texts.get(id(statement))
    if kept is not None and kept[0] is statement and kept[1] == indents:
        return _Known(kept[2], statement, indents)
    if type(statement) is cst.Match or not isinstance(statement, cst.BaseCompoundStatement):
        return statement
    return _clauses(statement, indents, indent, texts)


def _clauses(node: cst.CSTNode, indents: tuple[str, ...], indent: str, texts: Texts) -> Any:
    changes: dict[str, Any] = {}
    for name in _CLAUSES:
        value = getattr(node, name, None)
        if isinstance(value, (list, tuple)):
            new = [_clause(item, indents, indent, texts) for item in value]
            if any(a is not b for a, b in zip(new, value)):
                changes[name] = new
        elif value is not None:
            one = _clause(value, indents, indent, texts)
            if one is not value:
                changes[name] = one
    return node.with_changes(**changes) if changes else node


def _clause(value: Any, indents: tuple[str, ...], indent: str, texts: Texts) -> Any:
    if type(value) is cst.IndentedBlock:
        deeper = (*indents, indent if value.indent is None else value.indent)
        body = [_shadow(s, deeper, indent, texts) for s in value.body]
        if any(a is not b for a, b in zip(body, value.body)):
            return value.with_changes(body=body)
        return value
    if isinstance(value, _CLAUSE_TYPES):
        return _clauses(value, indents, indent, texts)  # at the statement's own indentation
    return value  # a one-line suite, or what is not a clause (a function's parameters)
