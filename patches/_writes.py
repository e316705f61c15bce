"""Which statements of a block only write files, and putting them behind a rank-0 test.

Shared by DDP011 (an evaluation block that also decides training state keeps its evaluation on
every rank and gates only its writes) and DDP016 (the training functions of a converted
DataParallel script): both need the same notion of "a run of write-only statements".
"""

from __future__ import annotations

import libcst as cst

from patcher.tree import Tree, children
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
        if statement in keep or _behind_rank(statement):
            out.append(statement)  # already behind a rank test (a pass before gated it)
            index += 1
            continue
        if _write_only(statement, state):
            end = index
            probe = index + 1
            while (
                probe < len(statements)
                and statements[probe] not in keep
                and not _behind_rank(statements[probe])
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
            index = end + 1
            needed = _directories_used_after(run, statements[index:], state)
            for part in _split_at(run, needed):
                if part[0] in needed:
                    out.append(part[0])  # every rank uses it: it is made on every rank
                    continue
                if runs is not None:
                    runs.append(part)
                out.append(_gated(part, rank))
                changed = True
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


def _behind_rank(statement: cst.CSTNode) -> bool:
    """An ``if`` that only rank 0 enters (a pass before gated it)."""
    return type(statement) is cst.If and truth(statement.test, OTHER) is False


def _gated(run: list[cst.BaseStatement], rank: cst.Comparison) -> cst.If:
    lead = run[0]
    assert isinstance(lead, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
    return cst.If(
        test=rank.deep_clone(),
        body=cst.IndentedBlock([lead.with_changes(leading_lines=()), *run[1:]]),
        leading_lines=lead.leading_lines,
    )


def _split_at(
    run: list[cst.BaseStatement], alone: set[cst.BaseStatement]
) -> list[list[cst.BaseStatement]]:
    """``run`` cut into its statements in ``alone`` (one a part) and the runs between them."""
    parts: list[list[cst.BaseStatement]] = []
    for statement in run:
        if statement in alone or not parts or parts[-1][0] in alone:
            parts.append([statement])
        else:
            parts[-1].append(statement)
    return parts


def _directories_used_after(
    run: list[cst.BaseStatement], rest: list[cst.BaseStatement], state: set[str]
) -> set[cst.BaseStatement]:
    """The statements of ``run`` that make a directory (``os.makedirs(d)``, ``if not
    os.path.exists(d): os.makedirs(d)``) that a later plain statement of the block (``rest``)
    opens, loads or lists something in (``open(os.path.join(d, f), "a+")`` into a handle every rank
    keeps), unless that statement is write-only or behind a rank test (those run on rank 0
    alone too): made on rank 0 alone, the directory may not exist yet when the other ranks get
    there, so it is made where it was, on every rank. Building a path in it needs no directory,
    nor does a log line naming it."""
    found: set[cst.BaseStatement] = set()
    users = [s for s in rest if not _behind_rank(s) and not _write_only(s, state)]
    for statement in run:
        calls = list(calls_in(statement))
        if not all(callee_name(c) in _NEEDS_NO_DIRECTORY for c in calls):
            continue  # it saves too: the whole of it is not a directory's making
        keys = {
            key
            for call in calls
            if callee_name(call) in _MAKES_DIRS and call.args
            for key in _path_keys(call.args[0].value)
        }
        if not keys:
            continue
        for user in users:
            for small in walk(user, into_scopes=False):  # names holding a path in it
                if type(small) is cst.Assign and _mentions(small.value, keys):
                    keys |= names_bound_in(small)
        if any(
            callee_name(c) not in _NEEDS_NO_DIRECTORY and _mentions_in_arguments(c, keys)
            for user in users
            for c in _plain_calls(user)
        ):
            found.add(statement)
    return found


def _plain_calls(statement: cst.BaseStatement) -> list[cst.Call]:
    """The calls a statement makes whatever other rules do to the blocks after it: those of a
    plain line, or of a ``with`` statement's items (``with open(p, "a") as f:``); not those
    inside an ``if`` or a loop, which a rank-0 gate may take over (DDP011 gating an
    evaluation block in the same pass)."""
    if type(statement) is cst.SimpleStatementLine:
        return list(calls_in(statement))
    if type(statement) is cst.With:
        return [c for item in statement.items for c in calls_in(item)]
    return []


#: Calls that only build or test a path, log it, or make a directory: they need none.
_NEEDS_NO_DIRECTORY = (
    _LOGS
    | _MAKES_DIRS
    | {*("join", "format", "str", "exists", "isdir", "isfile", "dirname", "basename", "abspath")}
)


def _path_keys(path: cst.BaseExpression) -> set[str]:
    """The names and dotted names a path expression is built from (``args.output_dir``,
    ``summary_dir``), not the names inside them (``args``)."""
    keys: set[str] = set()
    stack: list[cst.CSTNode] = [path]
    while stack:
        node = stack.pop()
        name = dotted_name(node)
        if name is not None:
            keys.add(name)
        elif type(node) is cst.Call:
            stack.extend(arg.value for arg in node.args)
        elif type(node) in (cst.BinaryOperation, cst.FormattedString):
            stack.extend(n for n in walk(node, into_scopes=False) if n is not node)
    return keys


def _mentions_in_arguments(call: cst.Call, keys: set[str]) -> bool:
    return any(_mentions(arg.value, keys) for arg in call.args)


def _mentions(node: cst.CSTNode, keys: set[str]) -> bool:
    """Whether a whole name or dotted name in ``node`` is one of ``keys`` (``output_dir`` is not
    mentioned by ``args.output_dir``)."""
    stack = [node]
    while stack:
        current = stack.pop()
        name = dotted_name(current)
        if name is not None:
            if name in keys:
                return True
            continue
        stack.extend(children(current))
    return False


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
