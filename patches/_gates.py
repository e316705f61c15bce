"""Which processes run a piece of code, judged from the ``if`` tests around it.

A distributed job has three kinds of process as far as legacy scripts can tell: a single process
launched without a launcher (``local_rank == -1``), rank 0 of a distributed job, and every other
rank. :func:`truth` evaluates a condition for one of these kinds, in three values (True, False,
or None for "depends on something else"), so that ``args.local_rank in [-1, 0] and args.save_steps
> 0`` is known to be False on rank 1 whatever ``save_steps`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, TypeVar, cast

import libcst as cst

from patcher.tree import Tree, children, per_file
from patches._counters import Lazy, lazy_counters, sign_truth
from patches._names import SCOPE_TYPES, SCOPES, names_bound_in, parameters
from patches._syntax import (
    LOCAL_RANK,
    callee_name,
    int_collection,
    int_literal,
    is_collective_call,
    is_local_rank,
    module_functions,
    string_value,
)

SINGLE, RANK0, OTHER = -1, 0, 1
KINDS = (SINGLE, RANK0, OTHER)
_T = TypeVar("_T")


def rank_comparison(
    node: cst.CSTNode, attr: str = LOCAL_RANK
) -> tuple[cst.BaseExpression, frozenset[int], bool] | None:
    """``x.local_rank == -1`` / ``-1 == x.local_rank`` / ``x.local_rank in [-1, 0]`` / ``!=`` /
    ``not in`` → (the rank expression, the values, True if membership means the test is true)."""
    if type(node) is not cst.Comparison or len(node.comparisons) != 1:
        return None
    target = node.comparisons[0]
    operator, left, right = target.operator, node.left, target.comparator
    if not is_local_rank(left, attr):
        if is_local_rank(right, attr) and isinstance(operator, (cst.Equal, cst.NotEqual)):
            left, right = right, left
        else:
            return None
    if isinstance(operator, (cst.Equal, cst.NotEqual)):
        value = int_literal(right)
        values = None if value is None else frozenset({value})
    elif isinstance(operator, (cst.In, cst.NotIn)):
        values = int_collection(right)
    else:
        return None
    if values is None:
        return None
    return left, values, isinstance(operator, (cst.Equal, cst.In))


def global_rank_source(node: cst.CSTNode) -> str | None:
    """``get_rank()`` → "get_rank"; ``int(os.environ.get("RANK", fallback))`` (or ``getenv``,
    ``environ["RANK"]``) → "env"; anything else None."""
    if type(node) is cst.Call and callee_name(node) == "get_rank" and not node.args:
        return "get_rank"
    if type(node) is cst.Call and callee_name(node) == "int" and len(node.args) == 1:
        inner = node.args[0].value
        if type(inner) is cst.Call and callee_name(inner) in ("get", "getenv") and inner.args:
            if string_value(inner.args[0].value) == "RANK":
                return "env"
        if type(inner) is cst.Subscript and len(inner.slice) == 1:
            index = inner.slice[0].slice
            if type(index) is cst.Index and string_value(index.value) == "RANK":
                return "env"
    return None


def _global_rank_comparison(node: cst.CSTNode) -> tuple[frozenset[int], bool] | None:
    """``torch.distributed.get_rank() == 0``, ``int(os.environ.get("RANK", ...)) in [-1, 0]``."""
    if type(node) is not cst.Comparison or len(node.comparisons) != 1:
        return None
    left, target = node.left, node.comparisons[0]
    if global_rank_source(left) is None:
        return None
    if isinstance(target.operator, (cst.Equal, cst.NotEqual)):
        value = int_literal(target.comparator)
        values = None if value is None else frozenset({value})
    elif isinstance(target.operator, (cst.In, cst.NotIn)):
        values = int_collection(target.comparator)
    else:
        return None
    if values is None:
        return None
    return values, isinstance(target.operator, (cst.Equal, cst.In))


def _member(kind: int | None, values: frozenset[int]) -> bool | None:
    if kind is None:
        return None
    if kind != OTHER:
        return kind in values
    return None if any(v >= 1 for v in values) else False  # rank 1 may match, rank 2 not


def _signed(member: bool | None, positive: bool) -> bool | None:
    return None if member is None else member == positive


def truth(
    node: cst.BaseExpression,
    kind: int | None,
    known: Mapping[str, bool] | None = None,
    *,
    counters: Collection[str] | Lazy = (),
) -> bool | None:
    """The value of condition ``node`` in a process of ``kind`` (None: any process); None when
    it depends. ``known`` gives names whose value is known (a flag parameter at a call);
    ``counters`` names that are ints >= 0 (``patches/_counters.py``: ``patience == -1`` is
    never true)."""
    if type(node) is cst.Name:
        return literal_bool(node, known or {})
    counted = sign_truth(node, counters)
    if counted is not None:
        return counted
    found = rank_comparison(node)
    if found is not None:
        _, values, positive = found
        return _signed(_member(kind, values), positive)
    global_rank = _global_rank_comparison(node)
    if global_rank is not None:
        values, positive = global_rank
        if kind is None:
            return None
        if kind == SINGLE:
            assert type(node) is cst.Comparison  # as _global_rank_comparison found
            if global_rank_source(node.left) == "env":
                return _signed(-1 in values, positive)  # no RANK: the local rank, -1
            return None  # not initialised: such tests are only reached behind a local_rank test
        return _signed(_member(kind, values), positive)
    return logic(node, lambda term: truth(term, kind, known, counters=counters))


def logic(
    node: cst.BaseExpression, value: Callable[[cst.BaseExpression], bool | None]
) -> bool | None:
    """Three-valued ``and``/``or``/``not`` over ``value`` of the terms (None: depends)."""
    if type(node) is cst.BooleanOperation:
        left, right = value(node.left), value(node.right)
        if type(node.operator) is cst.And:
            if left is False or right is False:
                return False
            return True if left and right else None
        if left is True or right is True:
            return True
        return False if left is False and right is False else None
    if type(node) is cst.UnaryOperation and type(node.operator) is cst.Not:
        inner = value(node.expression)
        return None if inner is None else not inner
    return None


def excludes_other_ranks(test: cst.BaseExpression) -> bool:
    """True when no rank but 0 (or the lone non-distributed process) can pass ``test``."""
    return truth(test, OTHER) is False


def conjuncts(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The terms of an ``and`` chain (``a and (b and c)`` → a, b, c); a lone term otherwise."""
    if type(node) is cst.BooleanOperation and type(node.operator) is cst.And:
        return conjuncts(node.left) + conjuncts(node.right)
    return [node]


def gates(tree: Tree, node: cst.CSTNode) -> list[cst.BaseExpression]:
    """The ``if`` tests that must pass for ``node`` to run, within its own function."""
    found = []
    child = node
    for ancestor in tree.ancestors(node):
        kind = type(ancestor)  # concrete classes: no ABCMeta instance check
        if kind in SCOPES:
            break
        if kind is cst.If and child is cast(cst.If, ancestor).body:
            found.append(cast(cst.If, ancestor).test)
        child = ancestor
    return found


def in_rank_zero_region(tree: Tree, node: cst.CSTNode) -> bool:
    """Whether only rank 0 (or a lone process) can reach ``node`` through the gates around it."""
    return any(excludes_other_ranks(gate) for gate in gates(tree, node))


def local_names(tree: Tree) -> dict[int, set[str]]:
    """Per function (by id): parameters and plainly assigned names, which shadow module
    functions of the same name (computed once per tree version)."""
    return tree.memo(local_names, lambda: _local_names(tree))


def _local_names(tree: Tree) -> dict[int, set[str]]:
    names: dict[int, set[str]] = {}
    for node in tree.nodes(cst.Param, cst.AssignTarget, cst.For):
        name = node.name if isinstance(node, cst.Param) else node.target
        if type(name) is cst.Name:
            names.setdefault(id(tree.scope(node)), set()).add(name.value)
    return names


def _is_reference(tree: Tree, name: cst.Name) -> bool:
    """A Name that reads a variable (not an attribute, keyword, parameter or definition), and
    could hand the function on: ``not evaluate`` only tests it (always true) and calls nothing."""
    parent = tree.parent(name)
    if type(parent) is cst.UnaryOperation and type(parent.operator) is cst.Not:
        return False
    if type(parent) is cst.BooleanOperation:
        return False
    if type(parent) is cst.If and parent.test is name:
        return False
    if type(parent) is cst.Attribute and parent.attr is name:
        return False
    if type(parent) is cst.Arg and parent.keyword is name:
        return False
    if isinstance(parent, (cst.Param, cst.FunctionDef, cst.ClassDef)) and parent.name is name:
        return False
    return not isinstance(parent, (cst.ImportAlias, cst.AsName))


def rank_zero_functions(tree: Tree) -> tuple[set[str], set[str]]:
    """Top-level functions that run in one process only, and those that do at some call sites.

    A function runs in one process only (rank 0, or a lone process) when it is called at least
    once, never referenced other than by a call, and every call is behind a rank-0 gate or inside
    a function that qualifies itself. Computed once per tree version.
    """
    return tree.memo(rank_zero_functions, lambda: _rank_zero_functions(tree))


def _rank_zero_functions(tree: Tree) -> tuple[set[str], set[str]]:
    functions = module_functions(tree.module)
    shadowed = local_names(tree)
    sites: dict[str, list[tuple[str | None, bool]]] = {name: [] for name in functions}
    escaped: set[str] = set()
    callee_names: set[int] = set()
    for call in tree.nodes(cst.Call):
        func = call.func
        if type(func) is cst.Name and func.value in functions:
            scope = tree.scope(call)
            if type(scope) is cst.FunctionDef and func.value in shadowed.get(id(scope), ()):
                continue
            callee_names.add(id(func))
            caller = scope.name.value if type(scope) is cst.FunctionDef else None
            sites[func.value].append((caller, in_rank_zero_region(tree, call)))
    for name in tree.nodes(cst.Name):
        if name.value not in functions or id(name) in callee_names:
            continue
        if not _is_reference(tree, name):
            continue
        scope = tree.scope(name)
        if type(scope) is cst.FunctionDef and name.value in shadowed.get(id(scope), ()):
            continue
        escaped.add(name.value)
    candidates = {name for name in functions if sites[name] and name not in escaped}
    changed = True
    while changed:
        changed = False
        for name in sorted(candidates):
            if not all(gated or caller in candidates for caller, gated in sites[name]):
                candidates.discard(name)
                changed = True
    sometimes = {
        name
        for name, calls in sites.items()
        if name not in candidates
        and name not in escaped
        and any(gated or caller in candidates for caller, gated in calls)
    }
    return candidates, sometimes


def literal_bool(node: cst.BaseExpression, known: Mapping[str, bool]) -> bool | None:
    """``True``/``False``, or a name whose value is known; None otherwise."""
    if type(node) is cst.Name:
        if node.value in ("True", "False"):
            return node.value == "True"
        return known.get(node.value)
    return None


class _NodeCache(dict):
    """Answers per node, kept with the node itself so that an id reused by a later tree
    version is never mistaken for the old node (nodes are immutable: an answer stays true)."""

    def lookup(self, key: tuple, nodes: tuple[cst.CSTNode, ...]) -> Any:
        found = self.get(key)
        if found is None or len(found[0]) != len(nodes):
            return None
        return found[1] if all(a is b for a, b in zip(found[0], nodes)) else None

    def store(self, key: tuple, nodes: tuple[cst.CSTNode, ...], value: _T) -> _T:
        if len(self) > 50_000:
            self.clear()
        self[key] = (nodes, value)
        return value


_CACHE = per_file(_NodeCache())


def _rebound(function: cst.FunctionDef) -> set[str]:
    """Names the function assigns to: a parameter among them is not its argument any more."""
    found = _CACHE.lookup(("rebound", id(function)), (function,))
    if found is None:
        found = _CACHE.store(
            ("rebound", id(function)),
            (function,),
            names_bound_in(function.body),
        )
    return found


def flag_arguments(
    function: cst.FunctionDef, call: cst.Call | None, known: Mapping[str, bool]
) -> dict[str, bool]:
    """The parameters of ``function`` that hold a known True/False when ``call`` runs it:
    literal defaults, then literal (or known) arguments; ``*args``/``**kwargs`` make it unknown."""
    params = function.params
    positional = [*params.posonly_params, *params.params]
    values: dict[str, bool] = {}
    for param in (*positional, *params.kwonly_params):
        if param.default is not None:
            value = literal_bool(param.default, {})
            if value is not None:
                values[param.name.value] = value
    if call is not None:
        position = 0
        for arg in call.args:
            if arg.star:
                return {}  # unpacked arguments may fill any parameter
            if arg.keyword is not None:
                name = arg.keyword.value
            elif position < len(positional):
                name = positional[position].name.value
                position += 1
            else:
                continue
            value = literal_bool(arg.value, known)
            if value is None:
                values.pop(name, None)
            else:
                values[name] = value
    for name in _rebound(function):
        values.pop(name, None)
    return values


def reached(
    node: cst.CSTNode,
    kind: int | None,
    known: Mapping[str, bool],
    counters: Collection[str] | Lazy = (),
) -> Iterator[cst.CSTNode]:
    """The nodes below ``node`` that can run in a process of ``kind`` with ``known`` flags:
    an ``if`` branch whose test is known to be False there is left out (``counters``: the
    non-negative counters of ``node``'s frame, whose negative tests are dead)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        node_type = type(current)  # concrete classes: no ABCMeta instance check
        if current is not node and node_type in SCOPE_TYPES:
            continue
        if node_type is cst.If:
            current = cast(cst.If, current)
            value = truth(current.test, kind, known, counters=counters)
            kids: list[cst.CSTNode] = [current.test]
            if value is not False:
                kids.append(current.body)
            if value is not True and current.orelse is not None:
                kids.append(current.orelse)
        else:
            kids = children(current)
        stack.extend(reversed(kids))


def calls_collectives(
    function: cst.FunctionDef,
    functions: dict[str, cst.FunctionDef],
    *,
    kind: int | None = None,
    call: cst.Call | None = None,
) -> bool:
    """Whether ``function`` (or a module function it calls, transitively) joins a collective
    when ``call`` runs it in a process of ``kind``. Branches that cannot run there are skipped:
    the HF template's ``if args.local_rank == 0 and not evaluate: barrier()`` is dead when
    ``evaluate()`` passes ``evaluate=True``."""
    flags = flag_arguments(function, call, {})
    nodes = (function, *functions.values())
    key = ("collectives", kind, frozenset(flags.items()), *map(id, nodes))
    found = _CACHE.lookup(key, nodes)
    if found is None:
        found = _CACHE.store(key, nodes, _joins(function, functions, kind, flags))
    return found


def _joins(
    function: cst.FunctionDef,
    functions: dict[str, cst.FunctionDef],
    kind: int | None,
    flags: dict[str, bool],
) -> bool:
    return any(
        type(node) is cst.Call and is_collective_call(node)
        for node in reached_through_calls(function, functions, kind, flags)
    )


def reached_through_calls(
    function: cst.FunctionDef,
    functions: dict[str, cst.FunctionDef],
    kind: int | None,
    flags: Mapping[str, bool],
) -> Iterator[cst.CSTNode]:
    """Every node a process of ``kind`` can run in ``function`` called with ``flags`` and,
    transitively, in the module functions it calls (literal flag arguments followed)."""
    seen: set[tuple[str, frozenset[tuple[str, bool]]]] = set()
    pending: list[tuple[cst.FunctionDef, Mapping[str, bool]]] = [(function, flags)]
    while pending:
        current, known = pending.pop()
        key = (current.name.value, frozenset(known.items()))
        if key in seen:
            continue
        seen.add(key)
        # A module function's name is truthy where nothing local shadows it: the template's
        # ``not evaluate`` in a loader without an ``evaluate`` parameter is always False.
        local = _rebound(current) | {p.name.value for p in parameters(current)}
        defined = {name: True for name in functions if name not in local}
        counters = lazy_counters(current)
        for node in reached(current.body, kind, {**defined, **known}, counters):
            yield node
            if type(node) is cst.Call and type(node.func) is cst.Name:
                callee = functions.get(node.func.value)
                if callee is not None:
                    pending.append((callee, flag_arguments(callee, node, known)))
