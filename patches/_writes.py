"""Which statements of a block only write files, and putting them behind a rank-0 test.

Shared by DDP011 (an evaluation block that also decides training state keeps its evaluation on
every rank and gates only its writes) and DDP016 (the training functions of a converted
DataParallel script): both need the same notion of "a run of write-only statements".
"""

from __future__ import annotations

import libcst as cst

from patcher.tree import Tree
from patches._gates import OTHER, truth
from patches._names import is_read, names_bound_in, walk
from patches._syntax import (
    LIBRARY_COLLECTIVES,
    callee_name,
    calls_in,
    dotted_name,
    is_eval_call,
    is_save_call,
)


def library_call(call: cst.Call) -> bool:
    """A method of an accelerate Accelerator or an HF Trainer (they write on the main process)."""
    if type(call.func) is not cst.Attribute:
        return False
    receiver = (dotted_name(call.func.value) or "").rsplit(".", 1)[-1].lower()
    return any(pattern in receiver for pattern in LIBRARY_COLLECTIVES)


_MAKES_DIRS = frozenset({"makedirs", "mkdir"})
_LOGS = frozenset({"info", "warning", "debug", "print", "error"})


def is_write(call: cst.Call) -> bool:
    return (is_save_call(call) and not library_call(call)) or callee_name(call) in _MAKES_DIRS


def _quiet(statement: cst.CSTNode) -> bool:
    """A log line, or a plain assignment whose value only builds a path or picks the model
    inside its wrapper (``os.path.join``, ``hasattr``, ``format``)."""
    if type(statement) is not cst.SimpleStatementLine:
        return False
    for small in statement.body:
        calls = [callee_name(c) for c in calls_in(small)]
        if type(small) is cst.Expr and calls[:1] and calls[0] in _LOGS:
            continue
        if type(small) is cst.Assign and all(
            c in ("join", "hasattr", "format", "str") for c in calls
        ):
            continue
        return False
    return True


def _write_only(statement: cst.CSTNode, state: set[str]) -> bool:
    """A statement whose effects are file writes (and logs, and names for them): a save, a
    ``makedirs``, ``if not os.path.exists(d): os.makedirs(d)``, a block of such lines."""
    calls = list(calls_in(statement))
    if not any(is_write(c) for c in calls) or any(is_eval_call(c) for c in calls):
        return False
    if names_bound_in(statement) & state:
        return False
    if type(statement) is cst.SimpleStatementLine:
        return all(
            type(small) is cst.Expr and type(small.value) is cst.Call for small in statement.body
        )
    if isinstance(statement, (cst.If, cst.With)) and getattr(statement, "orelse", None) is None:
        body = statement.body.body if type(statement.body) is cst.IndentedBlock else ()
        return all(_write_only(s, state) or _quiet(s) for s in body)
    return False


def gate_writes(
    tree: Tree,
    body: cst.BaseSuite,
    state: set[str],
    rank: cst.Comparison,
    runs: list[list[cst.BaseStatement]] | None = None,
    keep: frozenset[cst.CSTNode] = frozenset(),
) -> cst.IndentedBlock | None:
    """``body`` with each run of write-only statements (with the logs and path names between
    them) under ``if rank:``, looking into nested ``if``/``for``/``with`` bodies; None when
    nothing is left to gate. A path name read after the run stays out of it, on every rank.
    Statements in ``keep`` are left as they are, the same objects (a caller gates them whole)."""
    if type(body) is not cst.IndentedBlock:
        return None
    statements = list(body.body)
    out: list[cst.BaseStatement] = []
    changed = False
    index = 0
    while index < len(statements):
        statement = statements[index]
        if statement in keep or (
            type(statement) is cst.If and truth(statement.test, OTHER) is False
        ):
            out.append(statement)  # already behind a rank test (a pass before gated it)
            index += 1
            continue
        if _write_only(statement, state):
            end = index
            probe = index + 1
            while (
                probe < len(statements)
                and statements[probe] not in keep
                and (
                    _write_only(statements[probe], state)
                    or (_quiet(statements[probe]) and not _used_after(tree, statements, probe))
                )
            ):
                if _write_only(statements[probe], state):
                    end = probe
                probe += 1
            while end + 1 < len(statements) and _logs_only(statements[end + 1]):
                end += 1
            run = statements[index : end + 1]
            if runs is not None:
                runs.append(run)
            lead = run[0]
            assert isinstance(lead, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
            out.append(
                cst.If(
                    test=rank.deep_clone(),
                    body=cst.IndentedBlock([run[0].with_changes(leading_lines=()), *run[1:]]),
                    leading_lines=lead.leading_lines,
                )
            )
            changed = True
            index = end + 1
            continue
        inner = getattr(statement, "body", None)
        if isinstance(statement, (cst.If, cst.For, cst.While, cst.With)) and isinstance(
            inner, cst.IndentedBlock
        ):
            gated = gate_writes(tree, inner, state, rank, runs, keep)
            if gated is not None:
                statement = statement.with_changes(body=gated)
                changed = True
            orelse = getattr(statement, "orelse", None)
            if type(orelse) is cst.Else:
                gated = gate_writes(tree, orelse.body, state, rank, runs, keep)
                if gated is not None:
                    statement = statement.with_changes(orelse=orelse.with_changes(body=gated))
                    changed = True
        out.append(statement)
        index += 1
    return body.with_changes(body=out) if changed else None


def _used_after(tree: Tree, statements: list[cst.BaseStatement], index: int) -> bool:
    """Whether a name statement ``index`` binds is read by a later statement of the block: the
    assignment then stays on every rank (it is pure), out of the rank-0 gate."""
    bound = names_bound_in(statements[index])
    return any(
        type(n) is cst.Name and n.value in bound and is_read(tree, n)
        for later in statements[index + 1 :]
        for n in walk(later, into_scopes=False)
    )


def _logs_only(statement: cst.CSTNode) -> bool:
    return (
        type(statement) is cst.SimpleStatementLine
        and _quiet(statement)
        and all(type(small) is cst.Expr for small in statement.body)
    )
