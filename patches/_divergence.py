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

In a dormant version with no process group (:func:`lone_copies`: the script reads its rank only
from ``--local_rank``, which a modern launcher never passes, and sets its group up behind it)
nothing synchronises, yet the launcher's ``RANK`` still tells the processes apart: an update
behind a ``RANK`` gate (:func:`told_apart`; DDP003 and DDP008 write such gates around the HF
template's "only when single GPU" evaluation) that every process reads to leave a loop that
trains on (:func:`trains_past`) splits identical lone runs. Rank 0 stops early; the others never
see the patience move, train every epoch and save last, over rank 0's early-stopped model. Such
a violation's key ends with :data:`patches._ranks.LONE` (the rules that gate on ``RANK`` are its
suspects); nothing hangs, so it is not the hang the same state is where the ranks synchronise.

:func:`broadcasts` plans that collective where it is sure: right after rank 0's gate (the
``if`` around the update that every rank reaches), ``broadcast_object_list`` of the state from
rank 0, rebinding it on every rank. Sure means every rank reaches that point alike (no test
around the gate, loop it runs in or exit of those loops that may differ between ranks, with
tests on the broadcast state itself counted as uniform), rank 0 leaves its gate only at its
end, the state is a local name that every rank starts from the same literal, that nothing else
names and that only rank 0 changes, and the tests that read it are in the gate's loop or after
it. DDP014 carries the plan with its wrap; a violation names why there is none.

:func:`weight_violations` finds the same split in what is trained itself: a ``load_state_dict``
(or ``p.copy_(...)`` over ``model.parameters()``) into the trained model (or its optimizer)
that only rank 0 runs, or that reads (or is guarded by) state only rank 0 binds, while every
rank trains on afterwards (the load is in a loop that joins a collective at every step, or
before one in its function once the model is wrapped).
DDP broadcasts the parameters only when it wraps the model; after that nothing brings the
replicas back together. Nothing hangs: the ranks average gradients of different weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from patcher.tree import Tree
from patches._gates import conjuncts, global_rank_source
from patches._names import parameters, walk
from patches._ranks import (
    LONE,
    OTHER,
    RANK0,
    RankModel,
    Violation,
    _binding_sites,
    _code,
    _fresh,
    _shared_loop,
    _where,
    group_exists,
    innermost_loop,
    truth,
)
from patches._syntax import (
    DDP_WRAPPERS,
    callee_name,
    dotted_name,
    is_collective_call,
    is_eval_call,
    is_save_call,
)
from patches._uniform import PROCESS_EXITS, Uniformity, _try_clause

#: A piece of an access path: a name, ``.attr``, or ``['key']`` (a literal index).
Path = tuple[str, ...]

_ACCELERATED = frozenset({"prepare", "prepare_model"})
#: Calls that run one training step's backward (whose gradients DDP all-reduces).
_BACKWARD = frozenset({"backward", "training_step"})


def path(node: cst.BaseExpression) -> Path | None:
    """The access path ``node`` names: ``state['is_early_stop'][task]`` → ``('state',
    "['is_early_stop']")``, cut at the first index that is not a literal (it may be any key);
    None for what is not a path (a call's result)."""
    if type(node) is cst.Name:
        return (node.value,)
    if type(node) is cst.Attribute:
        base = path(node.value)
        return None if base is None else (*base, "." + node.attr.value)
    if type(node) is cst.Subscript:
        base = path(node.value)
        if base is None:
            return None
        if len(node.slice) == 1:
            index = node.slice[0].slice
            if type(index) is cst.Index and isinstance(
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
    if type(node) is cst.AnnAssign and node.value is None:
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
        targets = list(_mutated(node) if type(node) is cst.Call else _targets(node))
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
    if type(func) is cst.Attribute and func.attr.value in _MUTATORS:
        yield func.value


def _reads(m: RankModel, test: cst.BaseExpression) -> Iterator[tuple[cst.Name, Path]]:
    """The state a test reads: each maximal access path (``x.a['k']``), by its root name; a
    method called on it (``x.get('k')``) reads the object."""
    tree = m.tree
    for node in walk(test, into_scopes=False):
        if type(node) is not cst.Name:
            continue
        parent = tree.parent(node)
        if type(parent) is cst.Attribute and parent.attr is node:
            continue
        top = _access(tree, node)
        above = tree.parent(top)
        if type(top) is cst.Attribute and type(above) is cst.Call and above.func is top:
            top = top.value  # a method of the object
        read = path(top)
        if read is not None:
            yield node, _complete(read)


def _exits(m: RankModel, branch: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The ``break``/``continue``/``return`` a branch of an ``if`` takes (not those of a loop
    or function inside it)."""
    tree = m.tree
    for node in walk(branch, into_scopes=False):
        if type(node) is cst.Return:
            yield node
        elif type(node) is cst.Break or type(node) is cst.Continue:  # concrete: no ABCMeta
            loop = innermost_loop(tree, node)
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
        if type(statement) is cst.While:
            yield statement, statement
            continue
        for branch in (statement.body, statement.orelse):
            if branch is None:
                continue
            for exit_ in _exits(m, branch):
                left = m.scope(exit_) if type(exit_) is cst.Return else None
                if left is None:
                    left = innermost_loop(tree, exit_)
                if left is not None:
                    yield statement, left
                    break


def _wrapped(m: RankModel) -> bool:
    """Whether every rank's ``backward()`` may all-reduce gradients: the module wraps a model
    in DDP (or ``accelerator.prepare``s it) where the other ranks run it."""
    for call in m.tree.nodes(cst.Call):
        name = callee_name(call)
        if name in DDP_WRAPPERS or (
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
    if type(call.func) is cst.Name:
        body = m.functions.get(name)
    elif dotted_name(call.func) == f"self.{name}":
        body = _method(m, call, name)
    if body is None:
        return False
    return any(
        type(inner) is cst.Call and _steps_backward(m, inner, depth + 1)
        for inner in walk(body, into_scopes=False)
    )


def _method(m: RankModel, call: cst.Call, name: str) -> cst.FunctionDef | None:
    for ancestor in m.tree.ancestors(call):
        if type(ancestor) is cst.ClassDef:
            for statement in ancestor.body.body:
                if type(statement) is cst.FunctionDef and statement.name.value == name:
                    return statement
            return None
    return None


def synchronises_every_step(m: RankModel, region: cst.CSTNode) -> str | None:
    """What in ``region`` every rank joins together: a collective the other ranks run, or a
    backward through a DDP wrapper; None when nothing does (each rank may run alone)."""
    wrapped: bool | None = None
    for call in walk(region, into_scopes=False):
        if type(call) is not cst.Call:
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
        if type(node) is cst.Assign and _mentions(node.value, {root}):
            handed.update(
                target.target.value for target in node.targets if type(target.target) is cst.Name
            )
    for call in walk(scope, into_scopes=False):
        if type(call) is not cst.Call or not is_collective_call(call):
            continue
        if m.runs(call, OTHER) is not False and any(_mentions(a.value, handed) for a in call.args):
            return True
    return False


def _mentions(node: cst.CSTNode, names: set[str]) -> bool:
    return any(type(n) is cst.Name and n.value in names for n in walk(node, into_scopes=True))


def _verb(m: RankModel, statement: cst.If | cst.While, left: cst.CSTNode) -> str:
    """What the decision does, as a verb phrase."""
    if type(statement) is cst.While:
        return "keep looping"
    if isinstance(left, (cst.FunctionDef, cst.Module)):
        return "return"
    branches = [b for b in (statement.body, statement.orelse) if b is not None]
    exits = [e for b in branches for e in _exits(m, b)]
    if exits and all(type(e) is cst.Continue for e in exits):
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
    refused: dict[str, str] | None = None  # why a broadcast would not be sure, by root
    for written in updates.values():
        scope = m.scope(written[0][0])
        for statement, left in _decisions(m, scope):
            if m.runs(statement, OTHER) is False or m.runs(statement, RANK0) is False:
                continue
            for read, read_path in _reads(m, statement.test):
                hit = _diverging(m, scope, read, read_path, written, sites)
                if hit is None:
                    continue
                lone = lone_copies(m)
                joined = None if lone else synchronises_every_step(m, left)
                if joined is None and not (
                    lone and told_apart(m, hit[0]) and trains_past(m, statement, left)
                ):
                    break
                update, update_path = hit
                header = _code(tree, statement)
                if type(statement) is cst.While:
                    header = "while" + header[len("if") :]
                decides = (
                    f"{_text(update_path)!r} is updated on rank 0 only "
                    f"(`{_code(tree, tree.statement(update))}`) and every "
                    f"{'process' if joined is None else 'rank'} reads it to "
                    f"decide whether to {_verb(m, statement, left)} (`{header}:`)"
                )
                key: tuple[str, ...] = ("state", _where(m, read), _text(update_path), header)
                if joined is None:
                    why = f"{decides}{dormant_split(m, 'sees it change')}"
                    yield Violation((*key, LONE), why, read)
                    break
                if refused is None:
                    refused = broadcasts(m)[1]
                why = refused.get(read_path[0])
                yield Violation(
                    key,
                    f"{decides}, where every "
                    f"rank joins {joined} at each step: once rank 0's copy changes, the ranks "
                    "take different paths and the others wait in their next collective "
                    "(hang); decide it on every rank, or broadcast it from rank 0"
                    + (f" (ddpfix does not: {why})" if why else ""),
                    read,
                )
                break


def lone_draws(m: RankModel) -> Iterator[Violation]:
    """An evaluation that a ``RANK`` gate keeps from the other lone copies (:func:`lone_copies`)
    while they train on: it draws from the global random generator (each ``DataLoader`` it
    iterates takes a seed from it; dropout and shuffling draw after it), so from there the
    copies' random streams part, and so do their models. The copies of the original run alike
    and write alike; split, they stop at different steps and overwrite one another's
    checkpoints, and the one that reads a checkpoint back may read another's half-written file
    (xtreme's ``run_tag.py``, eighth batch A1: 24 against 27 steps in 7 runs of 7)."""
    if not lone_copies(m):
        return
    tree = m.tree
    for call in tree.nodes(cst.Call):
        if not is_eval_call(call) or not told_apart(m, call):
            continue
        loop = None
        for ancestor in tree.ancestors(call):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                break
            if isinstance(ancestor, (cst.For, cst.While)):
                loop = ancestor  # the outermost loop of its function
        if loop is None or not trains_past(m, call, loop):
            continue
        statement = tree.statement(call)
        yield Violation(
            ("state", _where(m, call), "random draws", _code(tree, statement), LONE),
            f"only rank 0 runs `{_code(tree, statement)}`, and the other processes train on: "
            "the rank stays dormant under the launcher (local_rank -1 and no process group: "
            "every process is a lone run, which only RANK tells apart), and an evaluation "
            "draws from the global random generator (each DataLoader it iterates takes a "
            "seed), so the runs part: they train different models and write them to the same "
            "paths; keep it on every process",
            call,
        )


def lone_copies(m: RankModel) -> bool:
    """Whether the launched processes run as lone copies of one run: the version is dormant
    (:func:`patches._ranks.rank_dormant`: every process keeps ``local_rank == -1``) and has no
    process group there (:func:`patches._ranks.group_exists`: its ``init_process_group`` sits
    behind a local-rank test). The launcher's ``RANK`` still tells them apart, so a ``RANK``
    gate splits processes that would otherwise do the same thing. With a group (set up
    whatever the rank), a wrap this file does not show may synchronise them: the rank model
    judges that version as it judges a live one."""
    return m.dormant and not group_exists(m)


def told_apart(m: RankModel, node: cst.CSTNode) -> bool:
    """Whether what keeps ``node`` from some lone copies is the launcher's ``RANK`` read from
    the environment (``int(os.environ.get("RANK", args.local_rank)) in [-1, 0]``, what DDP008
    writes): a test around it that keeps the other ranks out and reads it. A rank the script
    derives itself (``args.global_rank = dist.get_rank()`` behind ``if args.local_rank != -1``,
    else -1) is the same on every dormant process, whatever the rank model takes it for."""
    for test, wanted in m.conditions(node):
        other = m._truth(test, OTHER)
        if other is not None and other != wanted and _reads_environment_rank(test):
            return True
    return False


def _reads_environment_rank(test: cst.BaseExpression) -> bool:
    return any(global_rank_source(n) == "env" for n in walk(test, into_scopes=False))


def trains_past(m: RankModel, node: cst.CSTNode, left: cst.CSTNode) -> bool:
    """Whether a process that does not leave ``left`` at ``node`` (an exit, or the test that
    decides one) trains on: a backward (``patches/_divergence._steps_backward``) in ``left``
    that the other ranks run, after ``node`` or in a loop they share. A ``return`` after the
    training loop, or a ``break`` out of an evaluation loop, skips no training."""
    tree = m.tree
    for call in walk(left, into_scopes=False):
        if type(call) is not cst.Call or m.runs(call, OTHER) is False:
            continue
        if not (tree.after(call, node) or _shared_loop(tree, call, node)):
            continue
        if _steps_backward(m, call):
            return True
    return False


def dormant_split(m: RankModel, misses: str) -> str:
    """What an exit only rank 0 takes does to lone copies (:func:`lone_copies`): the others
    never take it, train to the end and save last; ``misses`` is what they miss (``"takes
    it"``), as a verb phrase."""
    saves = any(is_save_call(c) and m.runs(c, OTHER) is not False for c in m.tree.nodes(cst.Call))
    after = " and overwrite its saves" if saves else ""
    return (
        ": the rank stays dormant under the launcher (local_rank -1 and no process group: "
        "every process is a lone run, which only RANK tells apart), so no other process "
        f"{misses}: they train on past rank 0's early stop{after}; decide it on every process"
    )


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


# --- the fix: rank 0's state broadcast to every rank -------------------------------------------

#: The list a planned broadcast hands ``broadcast_object_list``.
SHARED = "_ddpfix_shared"
_BROADCAST = """\
if {test}:
    {shared} = [{names}]
    torch.distributed.broadcast_object_list({shared}, src=0)
    {targets} = {received}
"""
_LEAVES = (cst.Return, cst.Raise, cst.Yield, cst.Await)


@dataclass(frozen=True)
class Broadcast:
    """Right after rank 0's ``gate`` (an ``if`` every rank reaches), rank 0's ``names`` sent to
    every rank, which rebinds them from what it receives."""

    gate: cst.If
    names: tuple[str, ...]
    when: str = ""  # the gate's own tests other than the rank's, when they are rank-uniform

    def statement(self) -> cst.BaseStatement:
        names = ", ".join(self.names)
        shared = f"{SHARED}[0]" if len(self.names) == 1 else SHARED
        test = "torch.distributed.is_available() and torch.distributed.is_initialized()"
        if self.when:
            test = f"{self.when} and (\n    {test}\n)"
        return cst.parse_statement(
            _BROADCAST.format(test=test, shared=SHARED, names=names, targets=names, received=shared)
        )


def broadcasts(m: RankModel) -> tuple[list[Broadcast], dict[str, str]]:
    """The broadcasts that make each name rank 0 alone updates, and every rank reads to decide
    a loop exit, the same on every rank (one per rank-0 gate); and, by name, why a name gets
    none (then none of its gates is planned for it)."""
    planned: dict[int, tuple[cst.If, list[str], str]] = {}
    refused: dict[str, str] = {}
    for written in _rank_zero_updates(m).values():
        scope = m.scope(written[0][0])
        roots = _decided_roots(m, scope, written)
        uniformity = Uniformity(m, frozenset(roots))
        for root, decisions in roots.items():
            if _shared(m, scope, root):
                continue  # the script shares it itself
            updates = [u for u, p in written if p[0] == root]
            found = _plan(m, uniformity, scope, root, updates, decisions)
            if isinstance(found, str):
                refused[root] = found
                continue
            for gate in found:
                when = _when(m, uniformity, gate)
                planned.setdefault(id(gate), (gate, [], when))[1].append(root)
    plans = [
        Broadcast(gate, tuple(dict.fromkeys(names)), when) for gate, names, when in planned.values()
    ]
    return plans, refused


def _decided_roots(
    m: RankModel, scope: cst.CSTNode, written: list[tuple[cst.CSTNode, Path]]
) -> dict[str, list[cst.CSTNode]]:
    """The roots of rank-0 state that every rank reads in a test deciding an exit, with
    those tests' statements."""
    roots: dict[str, list[cst.CSTNode]] = {}
    for statement, _ in _decisions(m, scope):
        if m.runs(statement, OTHER) is False or m.runs(statement, RANK0) is False:
            continue
        for _, read_path in _reads(m, statement.test):
            if any(_overlap(p, read_path) for _, p in written):
                roots.setdefault(read_path[0], []).append(statement)
    return roots


def _plan(
    m: RankModel,
    uniformity: Uniformity,
    scope: cst.CSTNode,
    root: str,
    updates: list[cst.CSTNode],
    decisions: list[cst.CSTNode],
) -> list[cst.If] | str:
    """The rank-0 gates after which ``root`` is broadcast, or why it cannot be for certain."""
    tree = m.tree
    if SHARED in tree.code:
        return f"`{SHARED}` is taken"
    if type(scope) is not cst.FunctionDef:
        return f"{root} is module state"
    gates: list[cst.If] = []
    for update in updates:  # where rank 0 updates it first: the likeliest reason to name
        gate = _gate(m, update)
        if gate is None:
            return f"rank 0's update of {root} is not under an `if` every rank reaches"
        why = _gate_why(m, uniformity, gate, decisions)
        if why:
            return why
        if gate not in gates:
            gates.append(gate)
    return _local(m, uniformity, scope, root) or gates


def _local(m: RankModel, uniformity: Uniformity, scope: cst.FunctionDef, root: str) -> str | None:
    """Why ``root`` is not plain local state of ``scope`` that every rank starts with the
    same value of and only rank 0 changes (None when it is)."""
    tree = m.tree
    if any(p.name.value == root for p in parameters(scope)):
        return f"{root} is a parameter (the caller may hold it too)"
    for node in walk(scope, into_scopes=True):
        if isinstance(node, (cst.Global, cst.Nonlocal)):
            if any(item.name.value == root for item in node.names):
                return f"{root} is declared global or nonlocal"
        if type(node) is not cst.Name or node.value != root or _label(tree, node):
            continue
        if m.scope(node) is not scope or _in_lambda(tree, node, scope):
            return f"a nested function or lambda reads {root}"
        why = _use(m, uniformity, node, root)
        if why:
            return why
    return None


def _label(tree: Tree, name: cst.Name) -> bool:
    """Whether ``name`` labels something else: ``args.patience``, ``f(patience=1)``."""
    parent = tree.parent(name)
    return (type(parent) is cst.Attribute and parent.attr is name) or (
        type(parent) is cst.Arg and parent.keyword is name
    )


def _in_lambda(tree: Tree, node: cst.CSTNode, scope: cst.CSTNode) -> bool:
    for ancestor in tree.ancestors(node):
        if ancestor is scope:
            return False
        if isinstance(ancestor, (cst.Lambda, cst.GeneratorExp, cst.ListComp, cst.DictComp)):
            return True
    return False


#: What may hold a read of the state without making another name of it.
_USES = (
    cst.Comparison, cst.ComparisonTarget, cst.BinaryOperation, cst.UnaryOperation,
    cst.BooleanOperation, cst.If, cst.While,
)  # fmt: skip


def _use(m: RankModel, uniformity: Uniformity, name: cst.Name, root: str) -> str | None:
    """Why this occurrence of ``root`` may alias it, or change it on every rank."""
    tree = m.tree
    parent = tree.parent(name)
    if isinstance(parent, (cst.Subscript, cst.Attribute)) and parent.value is name:
        target = _written_through(tree, parent)
        if target is not None and m.runs(target, OTHER) is not False:
            return f"every rank changes {root} too (`{_code(tree, tree.statement(target))}`)"
        return None
    if type(parent) is cst.AugAssign:
        if m.runs(parent, OTHER) is not False:
            return f"every rank changes {root} too (`{_code(tree, tree.statement(parent))}`)"
        return None
    if _assigned_to(tree, name):
        return _initial(m, uniformity, name, root)
    if isinstance(parent, _USES):
        return None
    return f"{root} may be shared under another name (`{_code(tree, tree.statement(name))}`)"


def _access(tree: Tree, node: cst.BaseExpression) -> cst.BaseExpression:
    """The whole attribute/item chain ``node`` starts (``state`` → ``state.best['f1']``)."""
    top = node
    while True:
        above = tree.parent(top)
        if not (isinstance(above, (cst.Attribute, cst.Subscript)) and above.value is top):
            return top
        top = above


def _written_through(tree: Tree, access: cst.BaseExpression) -> cst.CSTNode | None:
    """The item assignment or mutator call that changes state through ``access``, if any."""
    top = _access(tree, access)
    above = tree.parent(top)
    if isinstance(above, (cst.AssignTarget, cst.AugAssign)) and above.target is top:
        return above
    if type(top) is cst.Attribute and type(above) is cst.Call and above.func is top:
        return above if top.attr.value in _MUTATORS else None
    return None


def _assigned_to(tree: Tree, name: cst.Name) -> bool:
    """Whether ``name`` is an assignment target (itself or unpacked)."""
    node: cst.CSTNode = name
    while True:
        parent = tree.parent(node)
        if type(parent) is cst.AssignTarget:
            return parent.target is node
        if not isinstance(parent, (cst.Tuple, cst.List, cst.Element)):
            return False
        node = parent


def _initial(m: RankModel, uniformity: Uniformity, name: cst.Name, root: str) -> str | None:
    """Why a binding of ``root`` on every rank may start it differently (None for an int,
    float or bool literal, at a place every rank reaches alike, or a binding only rank 0 runs,
    which the broadcast after it shares)."""
    tree = m.tree
    node: cst.CSTNode | None = name
    while node is not None and type(node) is not cst.AssignTarget:
        node = tree.parent(node)
    if node is None:
        return f"{root} is bound by something other than an assignment"
    if m.runs(node, OTHER) is False:
        return None
    statement = tree.parent(node)
    assert type(statement) is cst.Assign
    value = _part(node.target, statement.value, root)
    literal = isinstance(value, (cst.Integer, cst.Float)) or (
        type(value) is cst.Name and value.value in ("True", "False")
    )
    if not literal:
        return f"{root} starts from a value each rank computes (`{_code(tree, statement)}`)"
    if m.runs(node, RANK0) is False or _try_clause(tree, node, m.scope(node)):
        return f"{root} is bound on some ranks only, or in a try (`{_code(tree, statement)}`)"
    for test, _ in m.conditions(node):
        why = uniformity.why_not(test)
        if why:
            return f"{root} is bound under a test that may differ between ranks ({why})"
    return uniformity.placed(node, root)


def _part(
    target: cst.BaseExpression, value: cst.BaseExpression, name: str
) -> cst.BaseExpression | None:
    """What ``name`` in ``target`` receives from ``value`` (``a, b = 0, 0``)."""
    if type(target) is cst.Name:
        return value if target.value == name else None
    if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)):
        if len(target.elements) == len(value.elements):
            for t, v in zip(target.elements, value.elements):
                found = _part(t.value, v.value, name)
                if found is not None:
                    return found
    return None


def _gate(m: RankModel, update: cst.CSTNode) -> cst.If | None:
    """The ``if`` that every rank reaches and only rank 0 enters, around ``update``."""
    for ancestor in m.tree.ancestors(update):
        if isinstance(ancestor, (cst.FunctionDef, cst.Lambda, cst.ClassDef)):
            return None
        if isinstance(ancestor, cst.BaseCompoundStatement) and m.runs(ancestor, OTHER) is not False:
            return ancestor if type(ancestor) is cst.If else None
    return None


def _gate_why(
    m: RankModel, uniformity: Uniformity, gate: cst.If, decisions: list[cst.CSTNode]
) -> str | None:
    """Why a broadcast right after ``gate`` may not be reached by every rank alike, or may
    come after a read it should precede (None when it is sure)."""
    tree = m.tree
    where = f"rank 0's gate (`{_code(tree, gate)}`)"
    if m.runs(gate, RANK0) is False:
        return f"{where} runs on some ranks only"
    if not isinstance(tree.parent(gate), cst.IndentedBlock):
        return f"{where} is not a statement of its own (an `elif`, or on one line)"
    for node in walk(gate, into_scopes=False):
        if isinstance(node, _LEAVES) or (
            type(node) is cst.Call and dotted_name(node.func) in PROCESS_EXITS
        ):
            return f"rank 0 may leave {where} before the broadcast after it"
        if isinstance(node, (cst.Break, cst.Continue)):
            loop = innermost_loop(tree, node)
            if loop is None or not tree.contains(gate, loop):
                return f"rank 0 may leave {where} before the broadcast after it"
    clause = _try_clause(tree, gate, m.scope(gate))
    if clause:
        return f"{where} is in {clause}, which an exception a rank raises decides"
    for test, _ in m.conditions(gate):
        why = uniformity.why_not(test)
        if why:
            return f"{where} is under a test that may differ between ranks ({why})"
    why = uniformity.placed(gate, where)
    if why:
        return why
    loop = innermost_loop(tree, gate)
    if loop is None or not all(tree.contains(loop, d) or tree.after(d, loop) for d in decisions):
        return f"a test that reads the state is outside the loop of {where}"
    return None


def _when(m: RankModel, uniformity: Uniformity, gate: cst.If) -> str:
    """The gate's test without its rank terms (``step % args.eval_every == 0`` of ``if
    args.local_rank in [-1, 0] and step % args.eval_every == 0``), when every other term is
    rank-uniform: the broadcast then runs only when rank 0 may have updated the state, on every
    rank alike. Empty (broadcast whenever the gate is reached) otherwise."""
    if gate.orelse is not None:
        return ""
    terms = conjuncts(gate.test)
    ranks = [t for t in terms if truth(t, RANK0) is True and truth(t, OTHER) is False]
    rest = [t for t in terms if not any(t is r for r in ranks)]
    if not ranks or not rest or any(uniformity.why_not(t) for t in rest):
        return ""
    parts = []
    for term in rest:
        code = m.tree.module.code_for_node(term).strip()
        if "#" in code:
            return ""  # a comment inside a term would end the rebuilt line
        if "\n" in code and not term.lpar:
            code = f"({code})"
        if type(term) is cst.BooleanOperation and not term.lpar:
            code = f"({code})"  # an ``or`` inside the ``and`` of the rebuilt test
        parts.append(code)
    return " and ".join(parts)


# --- weights only some ranks load ----------------------------------------------------------

#: The calls that replace what a module (or an optimizer) holds in place.
_LOADS = frozenset({"load_state_dict"})


def weight_violations(m: RankModel) -> Iterator[Violation]:
    """A ``load_state_dict`` into the trained model (or its optimizer) that only some ranks
    run, while every rank trains on afterwards: under a rank-0 gate, or given (or guarded by)
    state only rank 0 binds (``best_state_dict`` kept in rank 0's evaluation gate, reloaded
    ``if best_state_dict is not None``). DDP broadcasts the parameters once, when it wraps the
    model; after that each replica keeps what its own rank loaded, and the gradient all-reduce
    averages the gradients of different weights: the replicas drift apart silently. A load
    after the last training step (rank 0's final test of the best checkpoint) is not one."""
    tree = m.tree
    updates: dict[int, list[tuple[cst.CSTNode, Path]]] | None = None
    sites: dict[tuple[int, str], list[cst.CSTNode]] | None = None
    for call in tree.nodes(cst.Call):
        if type(call.func) is not cst.Attribute:
            continue
        name = callee_name(call)
        if name in _LOADS:
            receiver = _receiver(call.func.value)
        elif name in _COPIES:
            receiver = _parameters_of(m, call.func.value)
        else:
            continue
        if receiver is None or m.runs(call, RANK0) is False:
            continue
        scope = m.scope(call)
        why: str | None = None
        if m.runs(call, OTHER) is False:
            why = _gate_text(m, call)
        else:
            if updates is None:
                updates, sites = _rank_zero_updates(m), _binding_sites(m)
            assert sites is not None
            why = _rank_zero_value(m, scope, call, updates.get(id(scope), []), sites)
        if why is None:
            continue
        trained = _trained_after(m, call, receiver)
        if trained is None:
            continue
        statement = _code(tree, tree.statement(call))
        if "optim" in _text(receiver).lower():
            what, shared = "state", "nothing broadcasts an optimizer's state"
        else:
            what, shared = "weights", "DDP broadcasts the parameters only when it wraps the model"
        yield Violation(
            ("weights", _where(m, call), statement),
            f"`{statement}` changes {_text(receiver)}'s {what} on rank 0 only ({why}), and "
            f"every rank trains on afterwards ({trained}): {shared}, so the replicas silently "
            "diverge; do it on every rank (or broadcast the state from rank 0; ddpfix does not)",
            call,
        )


def _receiver(value: cst.BaseExpression) -> Path | None:
    """What a load changes: a path, or the model ``accelerator.unwrap_model(model)`` unwraps."""
    if type(value) is cst.Call and callee_name(value) in _UNWRAPS and value.args:
        value = value.args[0].value
    return path(value)


#: In-place tensor writes that change a parameter they are called on.
_COPIES = frozenset({"copy_"})


def _parameters_of(m: RankModel, value: cst.BaseExpression) -> Path | None:
    """The module whose parameter ``value`` (a ``copy_`` target) is: ``p`` or ``p.data`` of a
    loop ``for p in model.parameters()`` (``named_parameters()``, ``zip(...)``) around it."""
    if type(value) is cst.Attribute and value.attr.value == "data":
        value = value.value
    if type(value) is not cst.Name:
        return None
    for ancestor in m.tree.ancestors(value):
        if type(ancestor) is cst.For:
            found = _iterated(ancestor.target, ancestor.iter, value.value)
            if found is not None:
                return found
    return None


def _iterated(target: cst.BaseExpression, iterated: cst.BaseExpression, name: str) -> Path | None:
    """The module whose parameters ``name`` (bound by ``for target in iterated``) runs over:
    ``p`` in ``model.parameters()``, ``(n, p)`` in ``model.named_parameters()``, the matching
    element of ``zip(a.parameters(), b.parameters())``."""
    if type(target) is cst.Name:
        if target.value != name or type(iterated) is not cst.Call:
            return None
        func = iterated.func
        if type(func) is cst.Attribute and func.attr.value == "parameters":
            return path(func.value)
        return None
    if type(target) is not cst.Tuple or type(iterated) is not cst.Call:
        return None
    elements = [e.value for e in target.elements]
    func = iterated.func
    if type(func) is cst.Attribute and func.attr.value == "named_parameters":
        if len(elements) == 2 and type(elements[1]) is cst.Name and elements[1].value == name:
            return path(func.value)
        return None
    if type(func) is cst.Name and func.value == "zip" and len(iterated.args) == len(elements):
        for element, arg in zip(elements, iterated.args):
            found = _iterated(element, arg.value, name)
            if found is not None:
                return found
    return None


#: Calls that return the module a wrapper holds (the wrapper's own parameters).
_UNWRAPS = frozenset({"unwrap_model"})


def _gate_text(m: RankModel, node: cst.CSTNode) -> str:
    """The rank test that keeps the other ranks out of ``node``, as ``under `if ...```."""
    for test, wanted in m.conditions(node):
        if m._truth(test, OTHER) is not None and m._truth(test, OTHER) != wanted:
            return f"under `if {_code(m.tree, test)}`"
    return "in a function only rank 0 calls"


def _rank_zero_value(
    m: RankModel,
    scope: cst.CSTNode,
    call: cst.Call,
    written: list[tuple[cst.CSTNode, Path]],
    sites: dict[tuple[int, str], list[cst.CSTNode]],
) -> str | None:
    """Why ``call`` loads (or is guarded by) state only rank 0 binds, as text; None if not."""
    if not written:
        return None
    read_from: list[cst.BaseExpression] = [a.value for a in call.args]
    read_from.extend(test for test, _ in m.conditions(call))
    for expression in read_from:
        for read, read_path in _reads(m, expression):
            hit = _diverging(m, scope, read, read_path, written, sites)
            if hit is not None:
                update, update_path = hit
                return (
                    f"it reads {_text(update_path)!r}, which only rank 0 binds "
                    f"(`{_code(m.tree, m.tree.statement(update))}`): the other ranks still "
                    "hold their first value"
                )
    return None


def _trained_after(m: RankModel, call: cst.Call, receiver: Path) -> str | None:
    """Where every rank trains ``receiver`` after ``call``: a loop around it, or after it in its
    function, that joins the gradient all-reduce (or a collective) at every step and uses the
    receiver or what it is an alias of; the loop as text, None when training is over."""
    tree = m.tree
    scope = m.scope(call)
    trained = _aliases(m, scope, receiver)
    for ancestor in tree.ancestors(call):
        if ancestor is scope:
            break
        if isinstance(ancestor, (cst.For, cst.While)) and m.runs(ancestor, OTHER) is not False:
            joined = synchronises_every_step(m, ancestor)
            if joined is not None and _uses(m, ancestor, trained):
                return f"`{_code(tree, ancestor)}` joins {joined}"
    for loop in tree.nodes(cst.For, cst.While):
        if m.scope(loop) is not scope or not tree.after(loop, call):
            continue
        if m.runs(loop, OTHER) is False or not _after_wrap(m, scope, call, receiver):
            continue
        joined = synchronises_every_step(m, loop)
        if joined is not None and _uses(m, loop, trained):
            return f"`{_code(tree, loop)}` after it joins {joined}"
    return None


def _aliases(m: RankModel, scope: cst.CSTNode, receiver: Path) -> set[Path]:
    """``receiver`` and the names bound to it in its function (``model = self.model``, ``model
    = DDP(model)``, ``unwrapped = model.module if hasattr(model, "module") else model``), both
    ways, with a trailing ``.module`` taken off."""
    found = {_unwrapped(receiver)}
    pairs: list[tuple[Path, set[Path]]] = []
    for node in walk(scope, into_scopes=False):
        if type(node) is not cst.Assign or len(node.targets) != 1:
            continue
        target = path(node.targets[0].target)
        if target is None:
            continue
        sources = {_unwrapped(p) for p in _alias_sources(node.value)}
        if sources:
            pairs.append((_unwrapped(target), sources))
    changed = True
    while changed:
        changed = False
        for target, sources in pairs:
            if target in found and not sources <= found:
                found |= sources
                changed = True
            elif found & sources and target not in found:
                found.add(target)
                changed = True
    return found


def _alias_sources(value: cst.BaseExpression) -> Iterator[Path]:
    """The paths a value may be one of: a path, either branch of ``a if c else b``, the
    first argument of a DDP wrap or ``accelerator.prepare``."""
    if type(value) is cst.IfExp:
        yield from _alias_sources(value.body)
        yield from _alias_sources(value.orelse)
        return
    if type(value) is cst.Call:
        name = callee_name(value)
        if (name in DDP_WRAPPERS or name in _ACCELERATED or name in _UNWRAPS) and value.args:
            yield from _alias_sources(value.args[0].value)
        return
    found = path(value)
    if found is not None and "[*]" not in found:
        yield found


def _unwrapped(found: Path) -> Path:
    return found[:-1] if len(found) > 1 and found[-1] == ".module" else found


def _uses(m: RankModel, region: cst.CSTNode, trained: set[Path]) -> bool:
    """Whether every rank calls or passes one of the ``trained`` paths in ``region``
    (``model(x)``, ``self.training_step(model, inputs)``, ``optimizer.step()``)."""
    for node in walk(region, into_scopes=False):
        if type(node) is not cst.Call or m.runs(node, OTHER) is False:
            continue
        used = [a.value for a in node.args]
        func = node.func
        used.append(func.value if type(func) is cst.Attribute else func)
        for expression in used:
            found = path(expression)
            if found is not None and _unwrapped(_complete(found)) in trained:
                return True
    return False


def _after_wrap(m: RankModel, scope: cst.CSTNode, call: cst.Call, receiver: Path) -> bool:
    """Whether a load before the training loop comes after the model's DDP wrap (which
    broadcasts rank 0's parameters: a load before it is shared), or loads an optimizer (whose
    state nothing broadcasts)."""
    if "optim" in _text(receiver).lower():
        return True
    for node in walk(scope, into_scopes=False):
        if type(node) is cst.Call and m.tree.after(call, node):
            name = callee_name(node)
            if name in DDP_WRAPPERS or (
                name in _ACCELERATED and "accelerator" in (dotted_name(node.func) or "")
            ):
                return True
    return False
