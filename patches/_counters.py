"""Counters that never go below zero, and the tests on them that can never pass.

UniXcoder's generation and summarization scripts keep a patience counter::

    patience, best_score, losses, dev_dataset = 0, 0, [], {}
    ...
        patience = 0          # a better dev score
    else:
        patience += 1
        if patience == -1:
            break

``patience`` starts at 0 and only ever becomes 0 again or grows by 1, so ``patience == -1`` is
never true: the ``break`` is dead code and the script has no early stop at all. The rank model
leaves such branches out (nobody runs them), and so do the rules that ask whether a loop can be
left early.

A name of a frame (a function, or the module) is a *non-negative counter* when every binding of
it anywhere in that frame's code, nested functions, classes, lambdas and comprehensions
included, is one of

- ``name = <int literal >= 0>`` (also one of several targets, or an element of a literal tuple
  unpacked to a tuple of the same shape: ``patience, best = 0, 0``);
- ``name: T = <int literal >= 0>``;
- ``name += <int literal >= 0>``;

in the frame itself, and at least one binding exists there. Anything else makes it unknown:
another value, a tuple unpacked from something else, a parameter, a loop or ``with``/``except``/
``import`` target, ``:=``, ``del``, ``global``/``nonlocal``, a ``def``/``class`` of that name, a
comprehension variable, a ``match`` capture, or a binding in a nested scope (strict: even one
that would only shadow it). At module level, ``from x import *``, ``globals()``, ``vars()``,
``exec()`` and ``eval()`` make every name unknown.

The value of such a name, whenever a read finds it bound, is an int >= 0, so a comparison with
an int literal is sometimes decided: ``== -1``, ``< 0``, ``<= -1``, ``in [-1, -2]`` are always
False; ``!= -1``, ``>= 0``, ``> -1`` always True. (A read that finds it unbound raises: the test
never passes either.)
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeGuard, cast

import libcst as cst

from patcher.tree import per_file
from patches._names import walk
from patches._syntax import callee_name, dotted_name, int_collection, int_literal

#: Calls that can rebind a module's names from a string.
_REBINDERS = frozenset({"globals", "vars", "exec", "eval"})

_CACHE: dict[int, tuple[cst.CSTNode, frozenset[str]]] = per_file({})


def non_negative_counters(frame: cst.FunctionDef | cst.Module) -> frozenset[str]:
    """The names of ``frame`` that are certainly ints >= 0 whenever read (see the module's
    documentation); computed once per frame node."""
    kept = _CACHE.get(id(frame))
    if kept is not None and kept[0] is frame:
        return kept[1]
    found = _counters(frame)
    if len(_CACHE) > 20_000:
        _CACHE.clear()
    _CACHE[id(frame)] = (frame, found)
    return found


#: The node types that bind a name or make it unknowable (concrete classes: ``type(node) in``
#: is much cheaper than an ``isinstance`` through LibCST's ABCMeta on every node of a module).
_BINDING_TYPES = frozenset(
    {
        cst.Assign,
        cst.AnnAssign,
        cst.AugAssign,
        cst.For,
        cst.CompFor,
        cst.NamedExpr,
        cst.AsName,
        cst.Global,
        cst.Nonlocal,
        cst.Del,
        cst.FunctionDef,
        cst.ClassDef,
        cst.Param,
        cst.ImportAlias,
        cst.MatchAs,
        cst.MatchStar,
        cst.MatchMapping,
    }
)


def _counters(frame: cst.FunctionDef | cst.Module) -> frozenset[str]:
    body = frame.body if type(frame) is cst.FunctionDef else frame
    module = type(frame) is cst.Module
    own = {id(node) for node in walk(body, into_scopes=False)}
    counted: set[str] = set()
    spoilt: set[str] = set()
    if type(frame) is cst.FunctionDef:
        spoilt.update(_param_names(frame.params))
    for node in walk(body, into_scopes=True):
        kind = type(node)
        if module and (
            kind is cst.ImportStar
            or (kind is cst.Call and callee_name(cast(cst.Call, node)) in _REBINDERS)
        ):
            return frozenset()
        if kind not in _BINDING_TYPES:
            continue
        for name, counts in _bindings(node):
            if counts and id(node) in own:
                counted.add(name)
            else:
                spoilt.add(name)
    return frozenset(counted - spoilt)


def _bindings(node: cst.CSTNode) -> list[tuple[str, bool]]:
    """(name, whether this binding keeps it a non-negative count) for each name ``node``
    binds or makes unknowable; [] when it binds nothing."""
    if type(node) is cst.Assign:
        return [
            (name, _literal_for(target.target, node.value, name) is not None)
            for target in node.targets
            for name in _target_names(target.target)
        ]
    if type(node) is cst.AnnAssign:
        names = _target_names(node.target)
        if node.value is None:
            return []  # a declaration binds nothing
        value = int_literal(node.value)
        counts = type(node.target) is cst.Name and value is not None and value >= 0
        return [(name, counts) for name in names]
    if type(node) is cst.AugAssign:
        value = int_literal(node.value)
        counts = (
            type(node.target) is cst.Name
            and type(node.operator) is cst.AddAssign
            and value is not None
            and value >= 0
        )
        return [(name, counts) for name in _target_names(node.target)]
    if isinstance(node, (cst.For, cst.CompFor)):
        return [(name, False) for name in _target_names(node.target)]
    if type(node) is cst.NamedExpr:
        return [(name, False) for name in _target_names(node.target)]
    if type(node) is cst.AsName:
        return [(name, False) for name in _target_names(node.name)]
    if isinstance(node, (cst.Global, cst.Nonlocal)):
        return [(item.name.value, False) for item in node.names]
    if type(node) is cst.Del:
        return [(n.value, False) for n in walk(node.target, into_scopes=False) if _is_name(n)]
    if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
        return [(node.name.value, False)]
    if type(node) is cst.Param:
        return [(node.name.value, False)]
    if type(node) is cst.ImportAlias and node.asname is None:
        first = (dotted_name(node.name) or "").split(".")[0]
        return [(first, False)] if first else []
    if isinstance(node, (cst.MatchAs, cst.MatchStar)):
        return [(node.name.value, False)] if node.name is not None else []
    if type(node) is cst.MatchMapping:
        return [(node.rest.value, False)] if node.rest is not None else []
    return []


def _is_name(node: cst.CSTNode) -> TypeGuard[cst.Name]:
    return type(node) is cst.Name


def _param_names(params: cst.Parameters) -> list[str]:
    found = [*params.posonly_params, *params.params, *params.kwonly_params]
    if type(params.star_arg) is cst.Param:
        found.append(params.star_arg)
    if params.star_kwarg is not None:
        found.append(params.star_kwarg)
    return [p.name.value for p in found]


def _target_names(target: cst.BaseExpression) -> list[str]:
    """The plain names an assignment target binds (``a, (b, *c) = ...`` → a, b, c); the
    attributes and subscripts it assigns bind no name."""
    if type(target) is cst.Name:
        return [target.value]
    if isinstance(target, (cst.Tuple, cst.List)):
        return [name for element in target.elements for name in _target_names(element.value)]
    if type(target) is cst.StarredElement:
        return _target_names(target.value)
    return []


def _literal_for(target: cst.BaseExpression, value: cst.BaseExpression, name: str) -> int | None:
    """The int literal >= 0 that ``name`` receives from ``target = value``, when the target
    names it once and the shapes match (``a, b = 0, 1``); None otherwise."""
    if _target_names(target).count(name) != 1:
        return None
    if type(target) is cst.Name:
        found = int_literal(value)
        return found if found is not None and found >= 0 else None
    if not isinstance(target, (cst.Tuple, cst.List)) or not isinstance(
        value, (cst.Tuple, cst.List)
    ):
        return None
    if len(target.elements) != len(value.elements):
        return None
    for part, given in zip(target.elements, value.elements):
        if type(part) is cst.StarredElement or type(given) is cst.StarredElement:
            return None
        if name in _target_names(part.value):
            return _literal_for(part.value, given.value, name)
    return None


_MIRRORED: dict[type[cst.BaseCompOp], type[cst.BaseCompOp]] = {
    cst.LessThan: cst.GreaterThan,
    cst.GreaterThan: cst.LessThan,
    cst.LessThanEqual: cst.GreaterThanEqual,
    cst.GreaterThanEqual: cst.LessThanEqual,
    cst.Equal: cst.Equal,
    cst.NotEqual: cst.NotEqual,
}


class Lazy:
    """The counters of a frame, computed the first time a test may need them (most tests never
    compare a plain name with an int literal)."""

    def __init__(self, compute: Callable[[], frozenset[str]]) -> None:
        self._compute = compute
        self._names: frozenset[str] | None = None

    def names(self) -> frozenset[str]:
        if self._names is None:
            self._names = self._compute()
        return self._names


def lazy_counters(frame: cst.FunctionDef | cst.Module) -> Lazy:
    """:func:`non_negative_counters` of ``frame``, computed on first use."""
    return Lazy(lambda: non_negative_counters(frame))


def sign_truth(node: cst.BaseExpression, counters: Collection[str] | Lazy) -> bool | None:
    """The value of the comparison ``node`` when one side is one of ``counters`` (ints >= 0)
    and the other an int literal (or, for ``in``, a literal collection of ints), where the sign
    alone decides it; None otherwise."""
    if type(node) is not cst.Comparison or (type(counters) is not Lazy and not counters):
        return None
    if len(node.comparisons) != 1:
        return None
    left, target = node.left, node.comparisons[0]
    operator: type[cst.BaseCompOp] = type(target.operator)
    right = target.comparator
    if type(left) is not cst.Name:
        if type(right) is not cst.Name or operator not in _MIRRORED:
            return None
        left, right, operator = right, left, _MIRRORED[operator]
    if int_literal(right) is None and int_collection(right) is None:
        return None  # the shape first: the counters are computed only when they may decide
    if isinstance(counters, Lazy):
        counters = counters.names()
    if left.value not in counters:
        return None
    if operator in (cst.In, cst.NotIn):
        values = int_collection(right)
        if values is None or any(v >= 0 for v in values):
            return None
        return operator is cst.NotIn
    bound = int_literal(right)
    if bound is None:
        return None
    never = {  # the operator is False for every count >= 0 ...
        cst.Equal: bound < 0,
        cst.LessThan: bound <= 0,
        cst.LessThanEqual: bound < 0,
    }
    always = {  # ... or True for every one
        cst.NotEqual: bound < 0,
        cst.GreaterThan: bound < 0,
        cst.GreaterThanEqual: bound <= 0,
    }
    if never.get(operator):
        return False
    if always.get(operator):
        return True
    return None
