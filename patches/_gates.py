"""Which processes run a piece of code, judged from the ``if`` tests around it.

A distributed job has three kinds of process as far as legacy scripts can tell: a single process
launched without a launcher (``local_rank == -1``), rank 0 of a distributed job, and every other
rank. :func:`truth` evaluates a condition for one of these kinds, in three values (True, False,
or None for "depends on something else"), so that ``args.local_rank in [-1, 0] and args.save_steps
> 0`` is known to be False on rank 1 whatever ``save_steps`` is.
"""

from __future__ import annotations

from collections.abc import Iterable

import libcst as cst

from patches._syntax import (
    LOCAL_RANK,
    callee_name,
    int_collection,
    int_literal,
    is_collective_call,
    is_local_rank,
    module_functions,
    walk,
)

SINGLE, RANK0, OTHER = -1, 0, 1
KINDS = (SINGLE, RANK0, OTHER)


def rank_comparison(
    node: cst.CSTNode, attr: str = LOCAL_RANK
) -> tuple[cst.BaseExpression, frozenset[int], bool] | None:
    """``x.local_rank == -1`` / ``-1 == x.local_rank`` / ``x.local_rank in [-1, 0]`` / ``!=`` /
    ``not in`` → (the rank expression, the values, True if membership means the test is true)."""
    if not isinstance(node, cst.Comparison) or len(node.comparisons) != 1:
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


def _global_rank_comparison(node: cst.CSTNode) -> tuple[frozenset[int], bool] | None:
    """``torch.distributed.get_rank() == 0`` and friends."""
    if not isinstance(node, cst.Comparison) or len(node.comparisons) != 1:
        return None
    left, target = node.left, node.comparisons[0]
    if not (isinstance(left, cst.Call) and callee_name(left) == "get_rank" and not left.args):
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


def _member(kind: int, values: frozenset[int]) -> bool | None:
    if kind != OTHER:
        return kind in values
    return None if any(v >= 1 for v in values) else False  # rank 1 may match, rank 2 not


def _signed(member: bool | None, positive: bool) -> bool | None:
    return None if member is None else member == positive


def truth(node: cst.BaseExpression, kind: int) -> bool | None:
    """The value of condition ``node`` in a process of ``kind``; None when it depends."""
    found = rank_comparison(node)
    if found is not None:
        _, values, positive = found
        return _signed(_member(kind, values), positive)
    global_rank = _global_rank_comparison(node)
    if global_rank is not None:
        if kind == SINGLE:
            return None  # not initialised: such tests are only reached behind a local_rank test
        values, positive = global_rank
        return _signed(_member(kind, values), positive)
    if isinstance(node, cst.BooleanOperation):
        left, right = truth(node.left, kind), truth(node.right, kind)
        if isinstance(node.operator, cst.And):
            if left is False or right is False:
                return False
            return True if left and right else None
        if left is True or right is True:
            return True
        return False if left is False and right is False else None
    if isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.Not):
        inner = truth(node.expression, kind)
        return None if inner is None else not inner
    return None


def excludes_other_ranks(test: cst.BaseExpression) -> bool:
    """True when no rank but 0 (or the lone non-distributed process) can pass ``test``."""
    return truth(test, OTHER) is False


def conjuncts(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The terms of an ``and`` chain (``a and (b and c)`` → a, b, c); a lone term otherwise."""
    if isinstance(node, cst.BooleanOperation) and isinstance(node.operator, cst.And):
        return conjuncts(node.left) + conjuncts(node.right)
    return [node]


class _GateState:
    """Knows the ``if`` tests guarding the node being visited.

    Only the tests of the current function count: a nested function runs when it is called,
    not where it is defined.
    """

    def __init__(self) -> None:
        self._gates: list[list[cst.BaseExpression]] = [[]]
        self._functions: list[cst.FunctionDef] = []

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool | None:
        self._functions.append(node)
        self._gates.append([])
        return True

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef | None = None
    ) -> cst.FunctionDef | None:
        self._functions.pop()
        self._gates.pop()
        return updated_node

    def visit_If_body(self, node: cst.If) -> None:
        self._gates[-1].append(node.test)

    def leave_If_body(self, node: cst.If) -> None:
        self._gates[-1].pop()

    @property
    def gates(self) -> list[cst.BaseExpression]:
        return self._gates[-1]

    @property
    def function(self) -> cst.FunctionDef | None:
        return self._functions[-1] if self._functions else None

    def in_rank_zero_region(self) -> bool:
        return any(excludes_other_ranks(gate) for gate in self.gates)


class GateTracker(_GateState, cst.CSTTransformer):
    """A transformer aware of the gates around the node it is visiting."""

    def __init__(self) -> None:
        _GateState.__init__(self)
        cst.CSTTransformer.__init__(self)


class GateVisitor(_GateState, cst.CSTVisitor):
    """A read-only visitor aware of the gates around the node it is visiting."""

    def __init__(self) -> None:
        _GateState.__init__(self)
        cst.CSTVisitor.__init__(self)


def _local_names(function: cst.FunctionDef) -> set[str]:
    """Parameters and plainly assigned names of ``function``: they shadow module functions."""
    names = {p.name.value for p in walk(function.params) if isinstance(p, cst.Param)}
    for node in walk(function.body):
        if isinstance(node, (cst.AssignTarget, cst.For)):
            target = node.target
            if isinstance(target, cst.Name):
                names.add(target.value)
    return names


class _CallSites(GateVisitor):
    """Where each module function is called, and whether it is behind a rank-0 gate there."""

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__()
        self.names = set(names)
        self.sites: dict[str, list[tuple[str | None, bool]]] = {n: [] for n in self.names}
        self.escaped: set[str] = set()
        self._not_references: set[int] = set()
        self._shadowed: list[set[str]] = [set()]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool | None:
        self._not_references.add(id(node.name))
        self._shadowed.append(_local_names(node))
        return super().visit_FunctionDef(node)

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef | None = None
    ) -> cst.FunctionDef | None:
        self._shadowed.pop()
        return super().leave_FunctionDef(original_node, updated_node)

    def visit_Param(self, node: cst.Param) -> None:
        self._not_references.add(id(node.name))

    def visit_Arg(self, node: cst.Arg) -> None:
        if node.keyword is not None:
            self._not_references.add(id(node.keyword))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._not_references.add(id(node.attr))

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Name) and func.value in self.names:
            if func.value in self._shadowed[-1]:
                return
            self._not_references.add(id(func))
            caller = self.function.name.value if self.function else None
            self.sites[func.value].append((caller, self.in_rank_zero_region()))

    def visit_Name(self, node: cst.Name) -> None:
        if (
            node.value in self.names
            and id(node) not in self._not_references
            and node.value not in self._shadowed[-1]
        ):
            self.escaped.add(node.value)


def rank_zero_functions(module: cst.Module) -> tuple[set[str], set[str]]:
    """Top-level functions that run in one process only, and those that do at some call sites.

    A function runs in one process only (rank 0, or a lone process) when it is called at least
    once, never referenced other than by a call, and every call is behind a rank-0 gate or inside
    a function that qualifies itself.
    """
    functions = module_functions(module)
    sites = _CallSites(functions)
    module.visit(sites)
    candidates = {name for name in functions if sites.sites[name] and name not in sites.escaped}
    changed = True
    while changed:
        changed = False
        for name in sorted(candidates):
            if not all(gated or caller in candidates for caller, gated in sites.sites[name]):
                candidates.discard(name)
                changed = True
    sometimes = {
        name
        for name, calls in sites.sites.items()
        if name not in candidates
        and name not in sites.escaped
        and any(gated or caller in candidates for caller, gated in calls)
    }
    return candidates, sometimes


def calls_collectives(function: cst.FunctionDef, functions: dict[str, cst.FunctionDef]) -> bool:
    """Whether ``function`` (or a module function it calls, transitively) joins a collective."""
    seen: set[str] = set()
    pending = [function]
    while pending:
        current = pending.pop()
        for node in walk(current.body):
            if isinstance(node, cst.Call):
                if is_collective_call(node):
                    return True
                name = callee_name(node)
                if isinstance(node.func, cst.Name) and name in functions and name not in seen:
                    seen.add(name)
                    pending.append(functions[name])
    return False
