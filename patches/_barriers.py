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
from patches._names import SCOPES
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
    if isinstance(holder, cst.SimpleStatementLine):
        block = tree.parent(holder)
        alone = isinstance(block, cst.IndentedBlock) and len(block.body) == 1
    else:
        block = holder
        alone = isinstance(block, cst.SimpleStatementSuite)
    gate = tree.parent(block)
    if not (
        isinstance(small, cst.Expr)
        and isinstance(holder, (cst.SimpleStatementLine, cst.SimpleStatementSuite))
        and len(holder.body) == 1
        and alone
        and isinstance(gate, cst.If)
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
    halves matched in source order, each rank-0 half with the latest waiting one before it."""
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
                matched.append((*pending.pop(), call))
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


def _other_terms(test: cst.BaseExpression) -> list[str]:
    return sorted(code(t) for t in conjuncts(test) if rank_comparison(t) is None)


def unsure(m: RankModel, gate: cst.If, half: cst.Call) -> str | None:
    """Why rank 0 may skip ``half`` while the others wait in the waiting half (``gate``), as
    words ("inside `if not args.do_visualize`", "inside a loop"); None when it surely reaches
    it: each test around ``half`` and not around ``gate`` is true on rank 0, or is a rank-0
    test with the same other terms as the waiting half's (``== 0 and not evaluate``), and
    ``half`` is in no loop the waiting half is not in."""
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
    if not _loops(m, half) <= _loops(m, gate):
        return "inside a loop the waiting half is not in"
    return None


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
