"""Barrier pairs: the HF template's two halves around work rank 0 does for every rank.

``if args.local_rank not in [-1, 0]: torch.distributed.barrier()`` (the waiting half: the other
ranks wait) before a step, ``if args.local_rank == 0: torch.distributed.barrier()`` (rank 0's
half) after it. DDP018 completes a pair whose rank-0 half is missing; the rank model's
post-condition (:func:`patches._ranks.violations`) takes two halves as a pair only when rank 0
surely reaches its half whenever the others reach theirs (:func:`sure_pair`).
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from patches._gates import OTHER as _OTHER
from patches._gates import RANK0 as _RANK0
from patches._gates import SINGLE as _SINGLE
from patches._gates import conjuncts, rank_comparison
from patches._gates import truth as _local_truth
from patches._names import BINDERS, SCOPES, bound_names, walk
from patches._ranks import OTHER, RANK0, RankModel, truth
from patches._syntax import callee_name, is_collective_call


def is_barrier(call: cst.Call) -> bool:
    return callee_name(call) == "barrier" and is_collective_call(call)


def code(node: cst.CSTNode) -> str:
    return cst.Module(body=[]).code_for_node(node)


def waiting_gate(m: RankModel, call: cst.Call) -> tuple[cst.If, cst.BaseExpression] | None:
    """The template's waiting half: ``call`` is the only statement of an ``if`` (no ``else``)
    whose test has one local-rank term that is true on ranks other than 0 and false on rank 0
    and in a lone process (``not in [-1, 0]``); (the ``if``, that term)."""
    tree = m.tree
    small = tree.parent(call)
    holder = tree.parent(small)  # the line, or the one-line body ``if ...: barrier()``
    if type(holder) is cst.SimpleStatementLine:
        block = tree.parent(holder)
        alone = type(block) is cst.IndentedBlock and len(block.body) == 1
    else:
        block = holder
        alone = type(block) is cst.SimpleStatementSuite
    gate = tree.parent(block)
    if not (
        type(small) is cst.Expr
        and isinstance(holder, (cst.SimpleStatementLine, cst.SimpleStatementSuite))
        and len(holder.body) == 1
        and alone
        and type(gate) is cst.If
        and gate.orelse is None
    ):
        return None
    ranked = [term for term in conjuncts(gate.test) if rank_comparison(term) is not None]
    if len(ranked) != 1:
        return None
    term = ranked[0]
    values = {kind: _local_truth(term, kind) for kind in (_SINGLE, _RANK0, _OTHER)}
    if values != {_SINGLE: False, _RANK0: False, _OTHER: True}:
        return None
    return gate, term


def is_rank_zero_half(m: RankModel, call: cst.Call) -> bool:
    return m.runs(call, RANK0) is not False and m.runs(call, OTHER) is False


def halves(m: RankModel) -> Iterator[tuple[cst.Call, cst.If, cst.BaseExpression, cst.Call | None]]:
    """(waiting barrier, its ``if``, its rank term, its rank-0 half or None), per function: the
    halves matched in order, as barriers meet: the k-th rank-0 half with the k-th waiting half
    still unmatched before it (rank 0's k-th barrier call meets the others' k-th)."""
    by_scope: dict[int, list[cst.Call]] = {}
    for call in m.tree.nodes(cst.Call):
        if is_barrier(call):
            by_scope.setdefault(id(m.scope(call)), []).append(call)
    for calls in by_scope.values():
        pending: list[tuple[cst.Call, cst.If, cst.BaseExpression]] = []
        matched: list[tuple[cst.Call, cst.If, cst.BaseExpression, cst.Call | None]] = []
        for call in calls:
            waiting = waiting_gate(m, call)
            if waiting is not None and m.runs(call, OTHER) is not False:
                pending.append((call, *waiting))
            elif is_rank_zero_half(m, call) and pending:
                matched.append((*pending.pop(0), call))
        matched.extend((*p, None) for p in pending)
        yield from matched


def _loops(m: RankModel, node: cst.CSTNode) -> set[int]:
    found = set()
    for ancestor in m.tree.ancestors(node):
        if isinstance(ancestor, SCOPES):
            break
        if isinstance(ancestor, (cst.For, cst.While)):
            found.add(id(ancestor))
    return found


def _others(test: cst.BaseExpression) -> list[cst.BaseExpression]:
    return [t for t in conjuncts(test) if rank_comparison(t) is None]


def _other_terms(test: cst.BaseExpression) -> list[str]:
    return sorted(code(t) for t in _others(test))


#: What a steady term may not hold: a call (``os.path.exists(cached)`` is true once rank 0
#: has written the cache), an item, anything that runs code or binds.
_UNSTEADY = (
    cst.Call,
    cst.Subscript,
    cst.Await,
    cst.Yield,
    cst.NamedExpr,
    cst.Lambda,
    cst.ListComp,
    cst.SetComp,
    cst.GeneratorExp,
    cst.DictComp,
)
_EXITS = (cst.Return, cst.Raise, cst.Break, cst.Continue)
#: ``sys.exit()``, ``exit()``, ``quit()``, ``os._exit()``.
_EXIT_CALLS = frozenset({"exit", "quit", "_exit"})


def _span(
    m: RankModel, gate: cst.If, end: cst.CSTNode, *types: type[cst.CSTNode]
) -> list[cst.CSTNode]:
    """The nodes of ``types`` in ``gate``'s function after ``gate`` and before ``end``."""
    start, stop, scope = m.tree.order(gate), m.tree.order(end), m.scope(gate)
    return [
        node
        for node in m.tree.nodes(*types)
        if start < m.tree.order(node) < stop
        and m.scope(node) is scope
        and not m.tree.contains(gate, node)
    ]


def unsteady_term(m: RankModel, gate: cst.If, end: cst.CSTNode) -> cst.BaseExpression | None:
    """A non-rank term of the waiting half's test that may have another value at ``end``
    (rank 0's half), so copying it there may turn rank 0's half off while the others wait: one
    that calls or indexes, or reads a name or attribute bound between the two points. Steady:
    ``not evaluate``, ``args.do_train`` with nothing assigning them in between."""
    binders = _span(m, gate, end, *BINDERS)
    bound = {name.value for b in binders for name in bound_names(b)}
    stored = [
        code(b.target)
        for b in binders
        if isinstance(b, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign))
        and type(b.target) is cst.Attribute
    ]
    calls = _span(m, gate, end, cst.Call)
    setattrs = any(type(c) is cst.Call and callee_name(c) == "setattr" for c in calls)
    changed = _attributes_stored_by_callees(m, calls)
    for term in _others(gate.test):
        nodes = list(walk(term, into_scopes=True))
        if any(isinstance(n, _UNSTEADY) for n in nodes):
            return term
        attributes = [code(n) for n in nodes if type(n) is cst.Attribute]
        read = {n.value for n in nodes if type(n) is cst.Name}
        if read & bound or (attributes and (setattrs or "*" in changed)):
            return term
        if any(a == s or a.startswith(s + ".") for a in attributes for s in stored):
            return term
        if any(n.attr.value in changed for n in nodes if type(n) is cst.Attribute):
            return term  # ``args.overwrite_cache`` set by ``load_and_cache(args)`` in between
    return None


def _attributes_stored_by_callees(m: RankModel, calls: list[cst.CSTNode]) -> set[str]:
    """The attribute names (``overwrite_cache``) the module functions ``calls`` reach,
    transitively, assign to; ``"*"`` when one of them calls ``setattr``."""
    stored: set[str] = set()
    seen: set[str] = set()
    pending = list(calls)
    while pending:
        for node in walk(pending.pop(), into_scopes=False):
            if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign)):
                if type(node.target) is cst.Attribute:
                    stored.add(node.target.attr.value)
            elif type(node) is cst.Call and type(node.func) is cst.Name:
                name = node.func.value
                if name == "setattr":
                    stored.add("*")
                if name in m.functions and name not in seen:
                    seen.add(name)
                    pending.append(m.functions[name])
    return stored


def is_exit(node: cst.CSTNode) -> bool:
    return isinstance(node, _EXITS) or (type(node) is cst.Call and callee_name(node) in _EXIT_CALLS)


def exit_between(m: RankModel, gate: cst.If, end: cst.CSTNode) -> cst.CSTNode | None:
    """A way rank 0 may leave between the waiting half and ``end`` and live on: a ``return``,
    ``sys.exit()``, a ``raise`` in a ``try`` of the function, or a ``break``/``continue`` of a
    loop around ``end``. A ``raise`` nothing there catches (HF's ``raise ValueError(...)`` on a
    bad option) crashes rank 0; the launcher then ends every rank."""
    for node in _span(m, gate, end, *_EXITS, cst.Call):
        if not is_exit(node) or m.runs(node, RANK0) is False:
            continue
        if type(node) is cst.Raise and not _caught(m, node):
            continue  # rank 0 crashes, and the launcher ends the waiting ranks: no hang
        if isinstance(node, (cst.Break, cst.Continue)):
            loop = next(
                a for a in m.tree.ancestors(node) if isinstance(a, (cst.For, cst.While, *SCOPES))
            )
            if not m.tree.contains(loop, end):
                continue  # a loop wholly in between
        return node
    return None


def _caught(m: RankModel, node: cst.Raise) -> bool:
    """Whether ``node`` is in the body of a ``try`` of its own function (a handler may catch
    it and go on)."""
    for ancestor in m.tree.ancestors(node):
        if isinstance(ancestor, SCOPES):
            return False
        if type(ancestor) is cst.Try and m.tree.contains(ancestor.body, node):
            return True
    return False


def unsure(m: RankModel, gate: cst.If, half: cst.Call) -> str | None:
    """Why rank 0 may skip ``half`` while the others wait in the waiting half (``gate``), as
    words ("inside `if not args.do_visualize`", "inside a loop"); None when it surely reaches
    it: each test around ``half`` and not around ``gate`` is true on rank 0, or is a rank-0
    test with the same steady other terms as the waiting half's (``== 0 and not evaluate``,
    :func:`unsteady_term`), ``half`` is in the same loops as the waiting half, and no
    way out lies between them (:func:`exit_between`)."""
    shared = {id(test) for test, _ in m.conditions(gate)}
    for test, wanted in m.conditions(half):
        if id(test) in shared or truth(test, RANK0) is wanted:
            continue
        if not (
            wanted
            and _other_terms(test) == _other_terms(gate.test)
            and any(truth(t, RANK0) is True for t in conjuncts(test))
        ):
            branch = "" if wanted else "the else of "
            return f"inside {branch}`if {code(test)}`"
        if (term := unsteady_term(m, gate, half)) is not None:
            return f"inside `if {code(test)}`, whose `{code(term)}` may change after the wait"
    if _loops(m, half) != _loops(m, gate):
        return "not inside the same loops as the waiting half"
    if (leave := exit_between(m, gate, half)) is not None:
        return f"after `{_first_line(leave)}`, which rank 0 may take first"
    return None


def _first_line(node: cst.CSTNode) -> str:
    return code(node).strip().splitlines()[0]


def sure_pair(m: RankModel, gate: cst.If, half: cst.Call) -> bool:
    """Whether rank 0 reaches ``half`` whenever the others reach the waiting half."""
    return unsure(m, gate, half) is None


def unsure_halves(m: RankModel) -> set[int]:
    """The rank-0 halves (by id) that rank 0 may skip while the others wait in the waiting
    half matched with them: no pair, for the post-condition."""
    return {
        id(half)
        for _call, gate, _term, half in halves(m)
        if half is not None and not sure_pair(m, gate, half)
    }
