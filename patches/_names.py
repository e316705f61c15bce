"""Names and the frames they live in: the one walk, binding and reading, scopes.

Every rule asks the same questions about a ``Name``: which nodes lie below a statement (with or
without the functions defined there), which constructs bind it, whether a mention reads it, and
which function's frame holds it. They are answered here once, so two rules never disagree on
what a read is.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import libcst as cst

from patcher.tree import SCOPES, Tree
from patcher.tree import walk as _tree_walk

__all__ = [
    "BINDERS",
    "SCOPES",
    "bindings_of",
    "bound_names",
    "frame_uses",
    "is_read",
    "names_bound_in",
    "parameters",
    "reaching",
    "walk",
]

#: Constructs that bind names (``bound_names`` says which): ``=``, ``x: T = ...``, ``+=``, a
#: ``for`` target, ``as`` (with, except, import), a parameter, ``:=``.
BINDERS = (
    cst.AssignTarget,
    cst.AnnAssign,
    cst.AugAssign,
    cst.For,
    cst.AsName,
    cst.Param,
    cst.NamedExpr,
)
_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp)
# The same, and the scopes, as sets of concrete types: the hot loops below test ``type(node)``
# against them (``isinstance`` on a LibCST class goes through ``ABCMeta``).
_COMPREHENSION_TYPES = frozenset(_COMPREHENSIONS)
_BINDER_TYPES = frozenset(BINDERS)
_SEQUENCES = frozenset({cst.Tuple, cst.List})
_UNKNOWABLE = frozenset({cst.Global, cst.Nonlocal, cst.Del})
SCOPE_TYPES = frozenset(SCOPES)
_NOT_READ_AS_NAME = frozenset({cst.FunctionDef, cst.ClassDef, cst.Param})
_NOT_READ = frozenset({cst.ImportAlias, cst.AsName, cst.NameItem})
_TARGETS = frozenset({cst.AssignTarget, cst.AnnAssign, cst.NamedExpr, cst.For})
_ELEMENTS = frozenset({cst.Element, cst.StarredElement})


def walk(node: cst.CSTNode, *, into_scopes: bool) -> Iterator[cst.CSTNode]:
    """``node`` and every node below it, in source order. ``into_scopes=False`` stays out of
    the functions, classes and lambdas defined below it (their bodies run elsewhere); the
    choice is spelled out at every call because it decides what a rule sees."""
    return _tree_walk(node, into_scopes=into_scopes)


def bound_names(node: cst.CSTNode) -> list[cst.Name]:
    """The names a binding construct binds (``a, b = ...`` binds two)."""
    kind = type(node)
    if kind is cst.Param:
        return [cast(cst.Param, node).name]
    target = cast(cst.AsName, node).name if kind is cst.AsName else getattr(node, "target", None)
    names: list[cst.Name] = []
    stack: list[Any] = [target] if target is not None else []
    while stack:  # concrete types by identity: isinstance would go through ABCMeta
        current = stack.pop()
        kind = type(current)
        if kind is cst.Name:
            names.append(current)
        elif kind in _SEQUENCES:
            stack.extend(e.value for e in current.elements)
        elif kind is cst.StarredElement:
            stack.append(current.value)
    return names


def names_bound_in(node: cst.CSTNode) -> set[str]:
    """The names bound below ``node`` in its own frame (not inside the functions, classes or
    lambdas defined there)."""
    return {
        name.value
        for binder in walk(node, into_scopes=False)
        if type(binder) in _BINDER_TYPES
        for name in bound_names(binder)
    }


def filled_name(node: cst.CSTNode) -> str | None:
    """The container ``node`` puts an item into (``handles[task] = ...``, ``totals[k] += 1``):
    it is not rebound, so :func:`bound_names` leaves it out, but its contents change."""
    if type(node) is cst.AssignTarget or type(node) is cst.AugAssign:
        target = node.target
        if type(target) is cst.Subscript and type(target.value) is cst.Name:
            return target.value.value
    return None


def parameters(function: cst.FunctionDef | cst.Lambda) -> list[cst.Param]:
    """Every parameter, in source order (``*args`` and ``**kwargs`` included)."""
    p = function.params
    star = [p.star_arg] if type(p.star_arg) is cst.Param else []
    kwarg = [p.star_kwarg] if p.star_kwarg is not None else []
    return [*p.posonly_params, *p.params, *star, *p.kwonly_params, *kwarg]


def bindings_of(function: cst.FunctionDef, name: str) -> list[cst.CSTNode]:
    """Where ``name`` is bound in ``function``'s own frame: its parameter, and each binding
    construct in its body (``AssignTarget``, ``For``, ``AsName``, ...), in source order."""
    found: list[cst.CSTNode] = [p for p in parameters(function) if p.name.value == name]
    found += [
        binder
        for binder in walk(function.body, into_scopes=False)
        if type(binder) in _BINDER_TYPES and any(n.value == name for n in bound_names(binder))
    ]
    return found


def reaching(tree: Tree, fn: cst.FunctionDef, name: str, at: cst.CSTNode) -> list[cst.CSTNode]:
    """The bindings of ``name`` in ``fn`` that may give its value at ``at`` (a superset: every
    earlier one, though a later one may hide it): its parameter, the bindings before ``at``
    (not the target of the assignment ``at`` is evaluated for), and any inside a loop of ``fn``
    around ``at``."""
    loops = [
        a
        for a in tree.ancestors(at)
        if isinstance(a, (cst.For, cst.While)) and tree.contains(fn, a)
    ]
    found = []
    for b in bindings_of(fn, name):
        if type(b) is cst.Param or any(tree.contains(loop, b) for loop in loops):
            found.append(b)
        elif tree.order(b) < tree.order(at):
            statement = tree.parent(b)
            if not (type(statement) is cst.Assign and tree.contains(statement.value, at)):
                found.append(b)
    return found


def _mention(tree: Tree, mention: cst.Name) -> tuple[cst.CSTNode, str, cst.CSTNode | None]:
    """(frame, kind, binding node) of one mention: kind is bind, read, unknowable or other."""
    parent = tree.parent(mention)
    if isinstance(parent, (cst.FunctionDef, cst.ClassDef)) and parent.name is mention:
        return tree.scope(parent), "bind", parent
    frame = tree.scope(mention)
    for holder in tree.ancestors(mention):
        if holder is frame:
            break
        kind = type(holder)
        if kind in _UNKNOWABLE:
            return frame, "unknowable", None
        if kind is cst.CompFor:
            if tree.contains(cast(cst.CompFor, holder).target, mention):
                return frame, "other", None  # a comprehension's own variable
            break
        if kind in _BINDER_TYPES and any(n is mention for n in bound_names(holder)):
            return frame, "bind", holder
    return frame, ("read" if is_read(tree, mention) else "other"), None


def frame_uses(
    tree: Tree, frame: cst.CSTNode, name: str
) -> tuple[list[cst.CSTNode], list[cst.Name]]:
    """Where ``name`` is bound in ``frame`` (a function, or the module), and the Names that
    read it there: what decides whether a read can find it unbound.

    ``global``/``nonlocal``/``del`` of the name, or a nested function reading it without
    binding it (a closure), make the flow unknowable here: the frame itself is then returned
    as one more binding, so a caller that needs every binding to be a statement stops.
    """
    mentions = [n for n in tree.nodes(cst.Name) if n.value == name and tree.contains(frame, n)]
    entries = [(mention, *_mention(tree, mention)) for mention in mentions]
    binding_frames = {id(where) for _, where, kind, _ in entries if kind == "bind"}
    bindings: list[cst.CSTNode] = []
    reads: list[cst.Name] = []
    for mention, where, kind, binder in entries:
        if where is frame:
            if kind == "bind" and binder is not None:
                bindings.append(binder)
            elif kind == "read":
                reads.append(mention)
            elif kind == "unknowable":
                bindings.append(frame)
        elif kind == "unknowable" or (kind == "read" and id(where) not in binding_frames):
            bindings.append(frame)
    if type(frame) is cst.FunctionDef:
        bindings.extend(
            p
            for p in parameters(frame)
            if p.name.value == name and not any(p is b for b in bindings)
        )
    return bindings, reads


def is_read(tree: Tree, name: cst.Name) -> bool:
    """Whether ``name`` reads a variable of its frame, as Python loads it.

    Not a read: an attribute (``x.name``), a call keyword (``f(name=...)``), what a ``def``,
    ``class``, parameter, import, ``as``, ``global``/``nonlocal`` names, a binding target
    (``=``, ``for``, an annotated assignment, ``:=``, unpacking included), or a comprehension's
    own variable (``f`` in ``[f.x for f in fs]``). A read: everything else, including ``x += 1``,
    a ``for`` loop's iterable, a parameter's default and a lambda's body."""
    parent = tree.parent(name)
    kind = type(parent)  # concrete classes only: no ABCMeta instance check
    if kind is cst.Attribute and cast(cst.Attribute, parent).attr is name:
        return False
    if kind is cst.Arg and cast(cst.Arg, parent).keyword is name:
        return False
    if kind in _NOT_READ_AS_NAME and cast(cst.FunctionDef, parent).name is name:
        return False
    if kind in _NOT_READ:
        return False
    if kind in _TARGETS and cast(cst.AssignTarget, parent).target is name:
        return False
    if kind in _ELEMENTS and _in_target(tree, cast(cst.CSTNode, parent)):
        return False
    return not _comprehension_variable(tree, name)


def _comprehension_variable(tree: Tree, name: cst.Name) -> bool:
    """Whether ``name`` is a comprehension's own variable (``f`` in ``[f.x for f in fs]``)."""
    for ancestor in tree.ancestors(name):
        kind = type(ancestor)
        if kind in SCOPE_TYPES:
            return False
        if kind in _COMPREHENSION_TYPES:
            clause: cst.CompFor | None = cast(cst.ListComp, ancestor).for_in
            while clause is not None:
                targets = walk(clause.target, into_scopes=True)
                if any(type(n) is cst.Name and n.value == name.value for n in targets):
                    return True
                clause = clause.inner_for_in
    return False


def _in_target(tree: Tree, node: cst.CSTNode) -> bool:
    """Whether the element ``node`` is part of an unpacking target (``a, b = ...``)."""
    child = node
    for ancestor in tree.ancestors(node):
        if type(ancestor) is cst.AssignTarget:
            return True
        if type(ancestor) is cst.For:
            return ancestor.target is child
        if not isinstance(ancestor, (cst.Tuple, cst.List, cst.Element, cst.StarredElement)):
            return False
        child = ancestor
    return False
