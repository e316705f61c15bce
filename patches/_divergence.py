"""Rank-divergent state: what only rank 0 updates, and every rank leaves a synchronising loop on.

CodeT5's multi-task trainer evaluates on rank 0 alone and there marks a task early-stopped
(``is_early_stop[task] = 1``); every rank's loop top reads that mark and ``continue``s past the
task, or ``break``s once every task is skipped. ToD-BERT counts ``patience += 1`` inside its
rank-0 evaluation gate, and every rank does ``if patience > args.patience: break``. The state is
bound on every rank, so no name is unbound anywhere (the rank model's binding post-condition
does not see it); it is only *out of step*: rank 0's copy moves, the others' never does. As
long as nothing synchronises the ranks that is harmless (each rank trains alone). Once each
step joins a collective on every rank (the model is wrapped in DDP, its gradients are
all-reduced in ``backward()``; a barrier or an ``all_reduce`` in the loop), the ranks that
decide differently take different paths: rank 0 leaves, or skips a step, and the others wait
for it in their next collective (a hang, or a crash when rank 0 exits).

:func:`state_violations` finds, in one function, a name or the root of a subscript/attribute
target (``x``, ``state['is_early_stop']``, ``self.best``) that is assigned, aug-assigned,
item-assigned or changed in place (``stopped.append(task)``) under a gate that only rank 0
runs, and read by every rank in the test that decides a loop exit (an ``if`` whose body
``break``s, ``continue``s or ``return``s, or a ``while`` test) of a loop or function that joins
a collective on every rank at every step.

Not a divergence: state that every rank binds afresh before the read (a reset that comes after
rank 0's update on every path), and state a collective shares (``dist.broadcast(stop, 0)``,
``broadcast_object_list([best])`` in the same function, which every rank runs).
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from patches._names import walk
from patches._ranks import (
    OTHER,
    RANK0,
    RankModel,
    Violation,
    _binding_sites,
    _code,
    _fresh,
    _innermost_loop,
    _shared_loop,
    _where,
)
from patches._syntax import callee_name, dotted_name, is_collective_call

#: A piece of an access path: a name, ``.attr``, or ``['key']`` (a literal index).
Path = tuple[str, ...]

_WRAPS = frozenset({"DistributedDataParallel", "DDP"})
_ACCELERATED = frozenset({"prepare", "prepare_model"})
#: Calls that run one training step's backward (whose gradients DDP all-reduces).
_BACKWARD = frozenset({"backward", "training_step"})


def path(node: cst.BaseExpression) -> Path | None:
    """The access path ``node`` names: ``state['is_early_stop'][task]`` → ``('state',
    "['is_early_stop']")``, cut at the first index that is not a literal (it may be any key);
    None for what is not a path (a call's result)."""
    if isinstance(node, cst.Name):
        return (node.value,)
    if isinstance(node, cst.Attribute):
        base = path(node.value)
        return None if base is None else (*base, "." + node.attr.value)
    if isinstance(node, cst.Subscript):
        base = path(node.value)
        if base is None:
            return None
        if len(node.slice) == 1:
            index = node.slice[0].slice
            if isinstance(index, cst.Index) and isinstance(
                index.value, (cst.SimpleString, cst.Integer)
            ):
                return (*base, f"[{index.value.value}]")
        return (*base, "[*]")
    return None


def _complete(found: Path) -> Path:
    """The path up to its first non-literal index: what it surely names."""
    return found[: found.index("[*]")] if "[*]" in found else found


def _overlap(first: Path, second: Path) -> bool:
    """Whether two paths may name the same state (one is a prefix of the other)."""
    size = min(len(first), len(second))
    return first[:size] == second[:size]


def _text(found: Path) -> str:
    return "".join(found)


def _targets(node: cst.CSTNode) -> Iterator[cst.BaseExpression]:
    """What an assignment statement writes: each target (unpacked), an ``+=`` target."""
    if not isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign)):
        return
    if isinstance(node, cst.AnnAssign) and node.value is None:
        return  # a bare annotation binds nothing
    stack: list[cst.BaseExpression] = [node.target]
    while stack:
        target = stack.pop()
        if isinstance(target, (cst.Tuple, cst.List)):
            stack.extend(element.value for element in target.elements)
        else:
            yield target


def _rank_zero_updates(m: RankModel) -> dict[int, list[tuple[cst.CSTNode, Path]]]:
    """Per function (by id), the updates only rank 0 runs and the paths they write."""
    found: dict[int, list[tuple[cst.CSTNode, Path]]] = {}
    for node in m.tree.nodes(cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.Call):
        targets = list(_mutated(node) if isinstance(node, cst.Call) else _targets(node))
        if not targets or m.runs(node, OTHER) is not False or m.runs(node, RANK0) is False:
            continue
        for target in targets:
            written = path(target)
            if written is not None:
                found.setdefault(id(m.scope(node)), []).append((node, _complete(written)))
    return found


#: Methods that change the container they are called on in place.
_MUTATORS = frozenset(
    {"append", "extend", "insert", "add", "update", "pop", "remove", "discard", "clear"}
)


def _mutated(call: cst.Call) -> Iterator[cst.BaseExpression]:
    """The container a statement-level mutator call changes (``stopped.append(task)``)."""
    func = call.func
    if isinstance(func, cst.Attribute) and func.attr.value in _MUTATORS:
        yield func.value


def _reads(m: RankModel, test: cst.BaseExpression) -> Iterator[tuple[cst.Name, Path]]:
    """The state a test reads: each maximal access path (``x.a['k']``), by its root name; a
    method called on it (``x.get('k')``) reads the object."""
    tree = m.tree
    for node in walk(test, into_scopes=False):
        if not isinstance(node, cst.Name):
            continue
        parent = tree.parent(node)
        if isinstance(parent, cst.Attribute) and parent.attr is node:
            continue
        top: cst.BaseExpression = node
        while True:
            above = tree.parent(top)
            if isinstance(above, (cst.Attribute, cst.Subscript)) and above.value is top:
                top = above
            else:
                break
        above = tree.parent(top)
        if isinstance(top, cst.Attribute) and isinstance(above, cst.Call) and above.func is top:
            top = top.value  # a method of the object
        read = path(top)
        if read is not None:
            yield node, _complete(read)


def _exits(m: RankModel, branch: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The ``break``/``continue``/``return`` a branch of an ``if`` takes (not those of a loop
    or function inside it)."""
    tree = m.tree
    for node in walk(branch, into_scopes=False):
        if isinstance(node, cst.Return):
            yield node
        elif isinstance(node, (cst.Break, cst.Continue)):
            loop = _innermost_loop(tree, node)
            if loop is None or not tree.contains(branch, loop):
                yield node


def _decisions(
    m: RankModel, scope: cst.CSTNode
) -> Iterator[tuple[cst.If | cst.While, cst.CSTNode]]:
    """(statement whose test decides, region it leaves): an ``if`` whose branches leave a
    loop (its loop) or the function (the function), and a ``while`` (itself)."""
    tree = m.tree
    for statement in tree.nodes(cst.If, cst.While):
        if m.scope(statement) is not scope:
            continue
        if isinstance(statement, cst.While):
            yield statement, statement
            continue
        for branch in (statement.body, statement.orelse):
            if branch is None:
                continue
            for exit_ in _exits(m, branch):
                left = m.scope(exit_) if isinstance(exit_, cst.Return) else None
                if left is None:
                    left = _innermost_loop(tree, exit_)
                if left is not None:
                    yield statement, left
                    break


def _wrapped(m: RankModel) -> bool:
    """Whether every rank's ``backward()`` may all-reduce gradients: the module wraps a model
    in DDP (or ``accelerator.prepare``s it) where the other ranks run it."""
    for call in m.tree.nodes(cst.Call):
        name = callee_name(call)
        if name in _WRAPS or (
            name in _ACCELERATED and "accelerator" in (dotted_name(call.func) or "")
        ):
            if m.runs(call, OTHER) is not False and m.runs(call, RANK0) is not False:
                return True
    return False


def _steps_backward(m: RankModel, call: cst.Call, depth: int = 0) -> bool:
    """Whether ``call`` runs a backward: ``loss.backward()``, ``self.training_step(...)``,
    ``accelerator.backward(loss)``, or a module function (or a method of the class around it)
    that does."""
    name = callee_name(call)
    if name in _BACKWARD:
        return True
    if depth > 1 or name is None:
        return False
    body: cst.CSTNode | None = None
    if isinstance(call.func, cst.Name):
        body = m.functions.get(name)
    elif dotted_name(call.func) == f"self.{name}":
        body = _method(m, call, name)
    if body is None:
        return False
    return any(
        isinstance(inner, cst.Call) and _steps_backward(m, inner, depth + 1)
        for inner in walk(body, into_scopes=False)
    )


def _method(m: RankModel, call: cst.Call, name: str) -> cst.FunctionDef | None:
    for ancestor in m.tree.ancestors(call):
        if isinstance(ancestor, cst.ClassDef):
            for statement in ancestor.body.body:
                if isinstance(statement, cst.FunctionDef) and statement.name.value == name:
                    return statement
            return None
    return None


def synchronises_every_step(m: RankModel, region: cst.CSTNode) -> str | None:
    """What in ``region`` every rank joins together: a collective the other ranks run, or a
    backward through a DDP wrapper; None when nothing does (each rank may run alone)."""
    wrapped: bool | None = None
    for call in walk(region, into_scopes=False):
        if not isinstance(call, cst.Call):
            continue
        if is_collective_call(call) and m.runs(call, OTHER) is not False:
            return dotted_name(call.func) or callee_name(call) or "a collective"
        if _steps_backward(m, call):
            if wrapped is None:
                wrapped = _wrapped(m)
            if wrapped:
                return "the DDP gradient all-reduce of backward()"
    return None


def _shared(m: RankModel, scope: cst.CSTNode, root: str) -> bool:
    """Whether a collective every rank runs in the function is handed the state: ``root``
    itself (``dist.broadcast(stop, 0)``), or a name bound from it (``flag = [patience]`` then
    ``broadcast_object_list(flag, src=0)``)."""
    handed = {root}
    for node in walk(scope, into_scopes=False):
        if isinstance(node, cst.Assign) and _mentions(node.value, {root}):
            handed.update(
                target.target.value
                for target in node.targets
                if isinstance(target.target, cst.Name)
            )
    for call in walk(scope, into_scopes=False):
        if not isinstance(call, cst.Call) or not is_collective_call(call):
            continue
        if m.runs(call, OTHER) is not False and any(_mentions(a.value, handed) for a in call.args):
            return True
    return False


def _mentions(node: cst.CSTNode, names: set[str]) -> bool:
    return any(isinstance(n, cst.Name) and n.value in names for n in walk(node, into_scopes=True))


def _verb(m: RankModel, statement: cst.If | cst.While, left: cst.CSTNode) -> str:
    """What the decision does, as a verb phrase."""
    if isinstance(statement, cst.While):
        return "keep looping"
    if isinstance(left, (cst.FunctionDef, cst.Module)):
        return "return"
    branches = [b for b in (statement.body, statement.orelse) if b is not None]
    exits = [e for b in branches for e in _exits(m, b)]
    if exits and all(isinstance(e, cst.Continue) for e in exits):
        return "skip the rest of the loop body"
    return "leave the loop"


def state_violations(m: RankModel) -> Iterator[Violation]:
    """State only rank 0 updates, which every rank reads to decide a loop exit of a loop or
    function that joins a collective on every rank at every step."""
    tree = m.tree
    updates = _rank_zero_updates(m)
    if not updates:
        return
    sites = _binding_sites(m)
    for written in updates.values():
        scope = m.scope(written[0][0])
        for statement, left in _decisions(m, scope):
            if m.runs(statement, OTHER) is False or m.runs(statement, RANK0) is False:
                continue
            for read, read_path in _reads(m, statement.test):
                hit = _diverging(m, scope, read, read_path, written, sites)
                if hit is None:
                    continue
                joined = synchronises_every_step(m, left)
                if joined is None:
                    break
                update, update_path = hit
                header = _code(tree, statement)
                if isinstance(statement, cst.While):
                    header = "while" + header[len("if") :]
                yield Violation(
                    ("state", _where(m, read), _text(update_path), header),
                    f"{_text(update_path)!r} is updated on rank 0 only "
                    f"(`{_code(tree, tree.statement(update))}`) and every rank reads it to "
                    f"decide whether to {_verb(m, statement, left)} (`{header}:`), where every "
                    f"rank joins {joined} at each step: once rank 0's copy changes, the ranks "
                    "take different paths and the others wait in their next collective "
                    "(hang); decide it on every rank, or broadcast it from rank 0",
                    read,
                )
                break


def _diverging(
    m: RankModel,
    scope: cst.CSTNode,
    read: cst.Name,
    read_path: Path,
    written: list[tuple[cst.CSTNode, Path]],
    sites: dict[tuple[int, str], list[cst.CSTNode]],
) -> tuple[cst.CSTNode, Path] | None:
    """The rank-0 update whose value ``read`` may see out of step, if any."""
    tree = m.tree
    root = read_path[0]
    # an ``x += 1`` names the divergence best (a rank-0 ``x = 0`` reset is its other half)
    ordered = sorted(written, key=lambda site: not isinstance(site[0], cst.AugAssign))
    for update, update_path in ordered:
        if not _overlap(update_path, read_path):
            continue
        if not (tree.order(update) < tree.order(read) or _shared_loop(tree, update, read)):
            continue
        every_rank = [b for b in sites.get((id(scope), root), []) if m.runs(b, OTHER) is not False]
        if _fresh(m, read, every_rank, OTHER, [update]):
            continue  # every rank binds it afresh after rank 0's update
        if _shared(m, scope, root):
            continue
        return update, update_path
    return None
