"""Where a module-level ``import x`` goes: Python's layout of imports, not any rule's knowledge.

Rules declare the modules their fixes need (``Fix.imports``); the engine adds each one once per
pass with :func:`added_imports`, so two fixes needing ``import os`` are applied together instead
of the second waiting a pass for the first one's import statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import libcst as cst

from patcher.tree import Around, walk


def _dotted(node: cst.BaseExpression) -> str | None:
    if type(node) is cst.Name:
        return node.value
    if type(node) is cst.Attribute:
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr.value}"
    return None


def imported_module(statement: cst.CSTNode) -> str | None:
    """``import x`` (one name, no alias) as ``x``; None for any other statement."""
    if not (type(statement) is cst.SimpleStatementLine and len(statement.body) == 1):
        return None
    node = statement.body[0]
    if type(node) is not cst.Import or len(node.names) != 1 or node.names[0].asname:
        return None
    return _dotted(node.names[0].name)


@lru_cache(maxsize=64)
def _may_rebind(code: str, name: str) -> bool:
    """A look at the text before a walk: ``from x import ... name``, ``... as name``, ``def
    name``/``class name`` or ``name =``/``name: T =`` somewhere (most files bind ``os`` only by
    ``import os``, and the walk is asked for every fix in every pass)."""
    n = re.escape(name)
    pattern = (
        rf"from\s+\S+\s+import\s+[^\n]*\b{n}\b|\bas\s+{n}\b|\b(?:def|class)\s+{n}\b"
        rf"|(?<![\w.]){n}\s*(?::[^=\n]*)?=(?!=)"
    )
    return re.search(pattern, code) is not None


def shadowing(module: cst.Module, name: str, code: str | None = None) -> str | None:
    """How the module binds ``name`` to something other than the module ``name`` (``from
    datetime import datetime``, ``import numpy as os``, a ``def``/``class``/assignment of that
    name anywhere), quoted; None when nothing does. An ``import name`` added for a fix would
    be rebound by it, and ``name.attr`` would read the wrong object."""
    if not _may_rebind(module.code if code is None else code, name):
        return None
    for node in walk(module):
        kind = type(node)
        if kind is cst.ImportFrom:
            aliases = node.names  # type: ignore[attr-defined]
            if isinstance(aliases, Sequence):
                for alias in aliases:
                    bound = alias.asname.name if alias.asname else alias.name
                    if type(bound) is cst.Name and bound.value == name:
                        return module.code_for_node(node).strip()
        elif kind is cst.Import:
            for alias in node.names:  # type: ignore[attr-defined]
                if alias.asname and type(alias.asname.name) is cst.Name:
                    if alias.asname.name.value == name and _dotted(alias.name) != name:
                        return module.code_for_node(node).strip()
        elif kind in (cst.FunctionDef, cst.ClassDef):
            if node.name.value == name:  # type: ignore[attr-defined]
                return f"{'def' if kind is cst.FunctionDef else 'class'} {name}"
        elif kind is cst.AssignTarget or kind is cst.AnnAssign:
            target = node.target  # type: ignore[attr-defined]
            if type(target) is cst.Name and target.value == name:
                return f"{name} = ..."
    return None


def binds_module(module: cst.Module, name: str) -> bool:
    """Whether a top-level ``import name`` / ``import name.sub`` makes ``name`` available."""
    for statement in module.body:
        if type(statement) is cst.SimpleStatementLine:
            for small in statement.body:
                if type(small) is cst.Import:
                    for alias in small.names:
                        bound = alias.asname.name if alias.asname else alias.name
                        while type(bound) is cst.Attribute and alias.asname is None:
                            bound = bound.value
                        if type(bound) is cst.Name and bound.value == name:
                            return True
    return False


def import_fix(module: cst.Module, name: str) -> dict[cst.CSTNode, Around]:
    """The replacement that adds ``import name`` unless it is bound already: in alphabetical
    place in the first run of plain ``import x`` lines, else after the docstring and
    ``__future__`` imports. Empty when nothing is needed."""
    if binds_module(module, name):
        return {}
    body = list(module.body)
    new = cst.SimpleStatementLine([cst.Import([cst.ImportAlias(cst.Name(name))])])
    run = [i for i, statement in enumerate(body) if imported_module(statement) is not None]
    if run:
        # the first run of plain imports, up to a blank line (an isort section boundary)
        block = [run[0]]
        for index in run[1:]:
            if index != block[-1] + 1 or body[index].leading_lines:
                break
            block.append(index)
        for index in block:
            if (imported_module(body[index]) or "") > name:
                # before the block's first import, it takes over the lines above the block
                return {body[index]: Around(before=(new,), lead=index == block[0])}
        return {body[block[-1]]: Around(after=(new,))}
    for statement in body:
        if not (_is_docstring(statement) or _is_future_import(statement)):
            separate = type(statement) is not cst.SimpleStatementLine or not any(
                isinstance(s, (cst.Import, cst.ImportFrom)) for s in statement.body
            )
            return {statement: Around(before=(new,), separate=separate)}
    return {body[-1]: Around(after=(new,))} if body else {}


def added_imports(
    module: cst.Module, names: Iterable[str]
) -> dict[cst.CSTNode, tuple[Around, tuple[str, ...]]]:
    """Each statement that gets imports added around it → how, and which modules.

    Each module is placed as :func:`import_fix` places it alone; modules placed at the same
    statement go there in alphabetical order, which is where adding them one after the other
    would put them (each goes before the first import that sorts after it)."""
    found: dict[cst.CSTNode, tuple[Around, tuple[str, ...]]] = {}
    for name in sorted(set(names)):
        for anchor, around in import_fix(module, name).items():
            if anchor not in found:
                found[anchor] = (around, (name,))
                continue
            present, modules = found[anchor]
            lead = present.lead if present.before else around.lead
            merged = Around(
                present.before + around.before,
                present.after + around.after,
                lead,
                present.separate or around.separate,
            )
            found[anchor] = (merged, (*modules, name))
    return found


def around_fix(present: Around, imports: Around) -> Around:
    """A fix's own statements around an anchor, with the imports added there: the imports come
    first on either side (imports above the code that uses them)."""
    return Around(
        imports.before + present.before,
        imports.after + present.after,
        imports.lead if imports.before else present.lead,
        present.separate or imports.separate,
    )


def _is_docstring(statement: cst.CSTNode) -> bool:
    return (
        type(statement) is cst.SimpleStatementLine
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def _is_future_import(statement: cst.CSTNode) -> bool:
    return (
        type(statement) is cst.SimpleStatementLine
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.ImportFrom)
        and _dotted(statement.body[0].module or cst.Name("_")) == "__future__"
    )
