"""An early stop decided on rank 0 from files it writes, and the same exit on every rank.

UniXcoder's summarization evaluates after each epoch inside its training loop, writes
``dev.output`` and ``dev.gold``, reads them back for a BLEU score and stops on a patience
counter::

    for epoch in range(args.num_train_epochs):
        ...  # train
        if args.do_eval:
            ...  # decode the dev set, write dev.output/dev.gold, read them back
            if dev_bleu > best_bleu:
                ...  # save the best checkpoint
                patience = 0
            else:
                patience += 1
                if patience == 2:
                    break

As DDP, every rank would rewrite those files and read them back at once, and a rank that read
them half-written could stop alone (while the others wait in their next gradient all-reduce).
:func:`rank_zero_stop` says when the evaluation statement (``S``, the statement of the loop's
body holding the writes, or DDP011's ``do_eval`` block) can run on global rank 0 alone, with its
``break`` turned into a flag that rank 0 sets and every rank receives. Two rules use it: DDP016
for the DataParallel scripts it converts (UniXcoder's summarization), DDP011 for scripts that
are already distributed (CodeT5's ``run_gen.py``: ``eval_bleu_epoch`` writes ``test_e0.gold``
and scores it from disk, in a script DDP014 wraps in DDP)::

    _ddpfix_stop = [False]
    if args.do_eval and <global rank 0>:
        ...
                if patience == 2:
                    _ddpfix_stop[0] = True
    if args.local_rank != -1:  # DDP011: if torch.distributed.is_initialized()
        torch.distributed.broadcast_object_list(_ddpfix_stop, src=0)
    if _ddpfix_stop[0]:
        break

A ``break`` with more of ``S`` after it (CodeT5 stops on its perplexity's patience, then goes on
to decode and score) sets the flag too, and what it skipped runs under ``if not
_ddpfix_stop[0]:`` (each block after the statement holding the ``break``), so rank 0 does in
``S`` exactly what it did before.

Every rank then leaves the loop at the same iteration. The broadcast is a collective: every rank
must reach it equally often, so only this shape is accepted (anything else is reported):

- the loop is ``for ... in range(<rank-uniform>)`` or ``while <rank-uniform>:``
  (``patches/_uniform.py``), in no other loop and no ``try`` of its function, under tests that
  are rank-uniform; nothing in it returns, nothing before the broadcast ``continue``\\ s it, and
  every ``break`` of it that a process can take is inside ``S``, last on its line, with only
  blocks, ``if``/``else`` and ``with`` between it and ``S`` (a ``try``'s ``else`` or handlers
  would take another path on a flag than on a ``break``);
- ``S`` trains nothing (no ``backward``/``step``/``zero_grad``/``clip_grad_norm_``, itself or in
  a module function it calls), shards nothing (no ``RandomSampler``), joins no collective (a
  barrier the others, gone on to the broadcast, would never reach), ends no process
  (``sys.exit``), and touches the model only in ways the rank-0 evaluation rules unwrap
  (``model(...)``, ``model.<method>``, ``hasattr(model, ...)``, the ``model.module if
  hasattr(model, "module") else model`` idiom, an evaluation call's argument): its forward goes
  to the inner module, since a DDP forward is a collective;
- what ``S`` leaves behind is rank 0's alone: no name it binds is read after it by the other
  ranks (the best score and the patience counter are read only inside ``S``, where rank 0 keeps
  them), and it updates no container, attribute or item that code outside it reads. An ``if``
  whose body starts with plain resets of such state (``tr_loss = 0``) keeps those on every rank
  and gates the rest, as DDP011 does.

Without a launcher (``args.local_rank == -1``, or no process group) there is no broadcast and
the script decides as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from patcher.tree import Tree
from patches._names import BINDERS, bound_names, is_read, names_bound_in, parameters, walk
from patches._ranks import RANK0, TRAINING_CALLS, RankModel, innermost_loop, model
from patches._syntax import (
    callee_name,
    calls_in,
    dominates,
    dotted_name,
    is_eval_call,
    module_functions,
)
from patches._uniform import PROCESS_EXITS, Uniformity

FLAG = "_ddpfix_stop"
_MUTATORS = frozenset(
    {"append", "extend", "insert", "update", "setdefault", "pop", "popitem", "add", "clear"}
    | {"remove", "discard", "sort", "reverse"}
)
_LOOPS = (cst.For, cst.While)


@dataclass(frozen=True)
class RankZeroStop:
    """One loop's evaluation statement ``S`` to run on rank 0, and the exits it takes."""

    loop: cst.For | cst.While
    statement: cst.BaseStatement
    keep: int  # leading state resets of ``S`` (an ``if``) that stay on every rank
    breaks: tuple[cst.Break, ...]
    #: statements of ``S`` that hold a ``break`` and have more of their block after them: that
    #: rest runs under ``if not _ddpfix_stop[0]:``, as the ``break`` skipped it
    skips: frozenset[cst.BaseStatement] = frozenset()


def rank_zero_stop(
    tree: Tree,
    function: cst.FunctionDef,
    loop: cst.For | cst.While,
    holds: Sequence[cst.CSTNode],
    models: set[str],
) -> RankZeroStop | str:
    """The plan for ``loop``, whose evaluation statement holds the nodes ``holds`` (the writes
    it reads back, or the ``do_eval`` block that reaches them), or why there is none."""
    if FLAG in tree.code:
        return f"`{FLAG}` is taken"
    m = model(tree)
    statement = _child_statement(tree, loop, holds[0])
    if statement is None or not all(tree.contains(statement, w) for w in holds):
        return "its writes are not in one statement of the loop"
    why = _loop_in_step(m, function, loop) or _exits(m, loop, statement)
    if why:
        return why
    breaks = tuple(
        node
        for node in walk(statement, into_scopes=False)
        if type(node) is cst.Break and innermost_loop(tree, node) is loop and not m.dead(node)
    )
    keep = _kept(m, function, loop, statement)
    if isinstance(keep, str):
        return keep
    gated = _gated_part(statement, keep)
    why = (
        _trains(tree, gated)
        or _joins(m, gated)
        or _touches_model(tree, gated, models)
        or _updates_shared(tree, function, statement, gated)
    )
    return why or RankZeroStop(loop, statement, keep, breaks, _skips(tree, breaks, statement))


def _child_statement(
    tree: Tree, loop: cst.For | cst.While, node: cst.CSTNode
) -> cst.BaseStatement | None:
    """The statement of ``loop``'s own body that holds ``node``."""
    body = loop.body
    if type(body) is not cst.IndentedBlock:
        return None
    return next((s for s in body.body if tree.contains(s, node)), None)


def _loop_in_step(m: RankModel, function: cst.FunctionDef, loop: cst.For | cst.While) -> str | None:
    """Why ranks may run ``loop`` a different number of times (None when they cannot)."""
    tree = m.tree
    if tree.scope(loop) is not function:
        return "the loop is in a nested function"
    for ancestor in tree.ancestors(loop):
        if ancestor is function:
            break
        if isinstance(ancestor, _LOOPS):
            return "the loop is inside another loop"
        if isinstance(ancestor, (cst.Try, cst.TryStar)):
            return "the loop is inside a try"
    uniformity = Uniformity(m)
    if isinstance(loop, cst.While):
        tests = [loop.test]
    elif isinstance(loop.iter, cst.Call) and callee_name(loop.iter) == "range":
        if any(arg.star or arg.keyword for arg in loop.iter.args):
            return "the loop's range is not plain"
        tests = [arg.value for arg in loop.iter.args]
    else:
        return "the loop is not over a range"
    tests += [test for test, _ in m.conditions(loop)]
    for test in tests:
        why = uniformity.why_not(test)
        if why:
            return f"the loop may run a different number of times on each rank ({why})"
    return None


def _exits(m: RankModel, loop: cst.For | cst.While, statement: cst.BaseStatement) -> str | None:
    """Why the loop's exits cannot all become rank 0's broadcast decision."""
    tree = m.tree
    for node in walk(loop.body, into_scopes=False):
        if type(node) is cst.Call:
            ends = dotted_name(node.func) in PROCESS_EXITS and tree.contains(statement, node)
            if ends and not m.dead(node):
                return "the evaluation ends the process"
            continue
        if not isinstance(node, (cst.Return, cst.Break, cst.Continue)) or m.dead(node):
            continue
        if isinstance(node, cst.Return):
            return "the loop returns"
        if innermost_loop(tree, node) is not loop:
            continue
        if isinstance(node, cst.Continue):
            if tree.contains(statement, node) or tree.after(statement, node):
                return "the loop continues before its evaluation ends"
        elif not tree.contains(statement, node):
            return "the loop is left outside its evaluation"
        elif not _skippable(tree, node, statement):
            return "its early stop is inside a try (or a match) of the evaluation"
    return None


def _skippable(tree: Tree, node: cst.Break, top: cst.BaseStatement) -> bool:
    """Whether what of ``top`` runs after ``node`` can be skipped on the flag instead: between
    them only blocks, ``if``/``else`` and ``with`` (whose exit runs on a ``break`` too), and
    ``node`` last on its line. A ``try`` (its ``else``, its handlers) or a ``match`` would
    take another path on a flag than on a ``break``."""
    child: cst.CSTNode = node
    for ancestor in tree.ancestors(node):
        if isinstance(ancestor, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            if ancestor.body[-1] is not child:
                return False
        elif not isinstance(ancestor, (cst.IndentedBlock, cst.If, cst.Else, cst.With)):
            return False
        if ancestor is top:
            return True
        child = ancestor
    return False


def _skips(
    tree: Tree, breaks: Sequence[cst.Break], top: cst.BaseStatement
) -> frozenset[cst.BaseStatement]:
    """The statements between each of ``breaks`` and ``top`` that have more of their block
    after them (what the ``break`` skipped, and a flag must skip too)."""
    found: set[cst.BaseStatement] = set()
    for node in breaks:
        child: cst.CSTNode = node
        for ancestor in tree.ancestors(node):
            if ancestor is top:
                break
            if type(ancestor) is cst.IndentedBlock and ancestor.body[-1] is not child:
                assert isinstance(child, cst.BaseStatement)
                found.add(child)
            child = ancestor
    return frozenset(found)


def _kept(
    m: RankModel, function: cst.FunctionDef, loop: cst.For | cst.While, statement: cst.BaseStatement
) -> int | str:
    """How many leading statements of ``statement`` stay on every rank (0: it is gated whole);
    why it cannot be gated when names it binds are read by code every rank runs."""
    shared = _declared_shared(function) & names_bound_in(statement)
    if shared:
        return f"it binds {sorted(shared)[0]}, a name of another frame (global or nonlocal)"
    state = m.carried_out(statement) | _read_outside(m.tree, function, loop, statement)
    if not state:
        return 0
    names = ", ".join(sorted(state))
    why = f"the other ranks read what it binds ({names})"
    if not (
        type(statement) is cst.If
        and statement.orelse is None
        and type(statement.body) is cst.IndentedBlock
    ):
        return why
    body = list(statement.body.body)
    count = 0
    for line in body:
        if type(line) is not cst.SimpleStatementLine or not all(
            _reset(small, state) for small in line.body
        ):
            break
        count += 1
    rest = body[count:]
    if count == 0 or not rest:
        return why
    for line in rest:
        for node in walk(line, into_scopes=True):
            if isinstance(node, BINDERS) and {n.value for n in bound_names(node)} & state:
                return why
    return count


def _declared_shared(function: cst.FunctionDef) -> set[str]:
    """Names ``function`` declares ``global`` or ``nonlocal``: other code reads them."""
    return {
        item.name.value
        for node in walk(function.body, into_scopes=False)
        if isinstance(node, (cst.Global, cst.Nonlocal))
        for item in node.names
    }


def _read_outside(
    tree: Tree, function: cst.FunctionDef, loop: cst.For | cst.While, statement: cst.BaseStatement
) -> set[str]:
    """Names ``statement`` binds that a read outside it may see it bind: after the loop, later
    in the iteration, or in the next one, with no binding of its own on the way (every rank
    would read rank 0's value, which the others never bound)."""
    bound = names_bound_in(statement)
    sites: dict[str, list[cst.CSTNode]] = {}
    for binder in _binders(function.body):
        if not tree.contains(statement, binder) and type(binder) is not cst.AugAssign:
            for name in bound_names(binder):
                sites.setdefault(name.value, []).append(binder)
    found = set()
    for read in walk(function.body, into_scopes=True):
        if type(read) is not cst.Name or read.value not in bound or read.value in found:
            continue
        if tree.contains(statement, read) or not is_read(tree, read):
            continue
        if tree.after(loop, read):
            continue  # before the loop: it cannot see what the loop binds
        if not any(_shields(tree, loop, statement, b, read) for b in sites.get(read.value, ())):
            found.add(read.value)
    return found


def _binders(node: cst.CSTNode) -> list[cst.CSTNode]:
    return [b for b in walk(node, into_scopes=False) if isinstance(b, BINDERS) and bound_names(b)]


def _shields(
    tree: Tree,
    loop: cst.For | cst.While,
    statement: cst.BaseStatement,
    binding: cst.CSTNode,
    read: cst.Name,
) -> bool:
    """Whether ``binding`` always binds the name again between ``statement`` and ``read``:
    it runs whenever the read does, before it, and after ``statement`` (or, for a read earlier
    in the loop's body, inside the loop: each iteration binds it before reading it)."""
    if type(binding) is cst.For:
        if not tree.contains(binding.body, read):
            return False
    elif not tree.after(read, binding):
        return False
    if not dominates(tree, binding, read):
        return False
    if tree.after(binding, statement):
        return True
    return tree.contains(loop, binding) and tree.after(statement, read)


def _reset(small: cst.BaseSmallStatement, state: set[str]) -> bool:
    """``name = <value without calls>`` for names of ``state``."""
    if type(small) is not cst.Assign:
        return False
    if any(type(n) is cst.Call for n in walk(small.value, into_scopes=True)):
        return False
    targets = [t.target for t in small.targets]
    return all(type(t) is cst.Name and t.value in state for t in targets)


def _gated_part(statement: cst.BaseStatement, keep: int) -> list[cst.BaseStatement]:
    if keep == 0:
        return [statement]
    assert type(statement) is cst.If and type(statement.body) is cst.IndentedBlock
    return list(statement.body.body[keep:])


def _trains(tree: Tree, statements: list[cst.BaseStatement]) -> str | None:
    """Why the rank-0 part would train, shard or step state the training reads."""
    functions = module_functions(tree.module)
    pending: list[cst.CSTNode] = list(statements)
    seen: set[str] = set()
    while pending:
        for call in calls_in(pending.pop()):
            name = callee_name(call)
            if name in TRAINING_CALLS:
                return f"the evaluation calls {name}() (a training step, or state it steps)"
            if name == "RandomSampler":
                return "the evaluation draws a RandomSampler, which would be sharded"
            if type(call.func) is cst.Name and name in functions and name not in seen:
                seen.add(name)
                pending.append(functions[name].body)
    return None


def _joins(m: RankModel, statements: list[cst.BaseStatement]) -> str | None:
    """Why the rank-0 part would wait for the other ranks: a collective it reaches (itself or
    through a module function), which the others, gone on to the broadcast, never join."""
    for statement in statements:
        for call in calls_in(statement):
            joined = m.collective(call, RANK0)
            if joined:
                return f"the evaluation joins the collective {joined}"
    return None


def _touches_model(tree: Tree, statements: list[cst.BaseStatement], models: set[str]) -> str | None:
    """Why the model would be used in a way the rank-0 rules do not unwrap (a forward through
    the DDP wrapper on rank 0 alone is a collective the other ranks never join)."""
    for statement in statements:
        for node in walk(statement, into_scopes=True):
            if type(node) is cst.Name and node.value in models and is_read(tree, node):
                if not _unwrappable(tree, node):
                    return f"the evaluation hands {node.value} on where ddpfix cannot unwrap it"
    return None


def _unwrappable(tree: Tree, name: cst.Name) -> bool:
    parent = tree.parent(name)
    if type(parent) is cst.Call:
        return parent.func is name  # model(...): DDP004 calls the inner module
    if type(parent) is cst.Attribute:
        return parent.value is name and parent.attr.value != "forward"
    if type(parent) is cst.IfExp:  # model.module if hasattr(model, "module") else model
        test = parent.test
        return (
            parent.orelse is name
            and type(test) is cst.Call
            and callee_name(test) == "hasattr"
            and isinstance(test.args[0].value, cst.Name)
            and test.args[0].value.value == name.value
        )
    if type(parent) is cst.Arg:
        call = tree.parent(parent)
        return type(call) is cst.Call and (
            callee_name(call) in ("hasattr", "isinstance") or is_eval_call(call)
        )
    return False


def _updates_shared(
    tree: Tree,
    function: cst.FunctionDef,
    statement: cst.BaseStatement,
    gated: list[cst.BaseStatement],
) -> str | None:
    """Why the rank-0 part would update an object that code outside ``statement`` reads
    (``history.append(score)``, ``args.best = score``, ``cache[k] = v``)."""
    own = {name for part in gated for name in names_bound_in(part)}
    updated: set[str] = set()
    for part in gated:
        for node in walk(part, into_scopes=False):
            for target in _updated_targets(node):
                base = _base_name(target)
                if base is not None and base not in own:
                    updated.add(base)
    updated -= _imported(tree)  # os.remove(path), np.random.shuffle(x): a module's function
    local = {p.name.value for p in parameters(function)} | names_bound_in(function.body)
    for name in sorted(updated - local):
        return f"the evaluation updates {name}, which is not its function's own"
    for read in walk(function.body, into_scopes=True):
        if type(read) is not cst.Name or read.value not in updated:
            continue
        if not tree.contains(statement, read) and is_read(tree, read):
            return f"the evaluation updates {read.value}, which code outside it reads"
    return None


def _imported(tree: Tree) -> set[str]:
    """The names the module's top-level imports bind (``os``, ``np``, ``torch``)."""
    found = set()
    for statement in tree.module.body:
        if type(statement) is not cst.SimpleStatementLine:
            continue
        for small in statement.body:
            if isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(
                small.names, cst.ImportStar
            ):
                for alias in small.names:
                    bound = alias.asname.name if alias.asname is not None else alias.name
                    while type(bound) is cst.Attribute:  # import os.path binds os
                        bound = bound.value
                    if type(bound) is cst.Name:
                        found.add(bound.value)
    return found


def _updated_targets(node: cst.CSTNode) -> list[cst.BaseExpression]:
    """The attributes and items ``node`` assigns, deletes or updates in place."""
    targets: list[cst.BaseExpression] = []
    if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.Del)):
        targets = _flattened(node.target)
    elif type(node) is cst.Call and type(node.func) is cst.Attribute:
        if node.func.attr.value in _MUTATORS:
            targets = [node.func.value]
    return [t for t in targets if isinstance(t, (cst.Attribute, cst.Subscript, cst.Name))]


def _flattened(target: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [part for e in target.elements for part in _flattened(e.value)]
    return [target] if isinstance(target, (cst.Attribute, cst.Subscript)) else []


def _base_name(node: cst.BaseExpression) -> str | None:
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        node = node.value
    return node.value if type(node) is cst.Name else None


#: Whether the script runs launched, in DDP016's converted scripts (it sets ``local_rank`` with
#: the process group it creates).
LAUNCHED = "{args}.local_rank != -1"
#: The same for a script that sets up its process group itself: the group, not the option, is
#: what the broadcast needs (a ``--local_rank`` with no group made would fail in it).
GROUP = "torch.distributed.is_available() and torch.distributed.is_initialized()"
_BROADCAST = """\
if {launched}:
    torch.distributed.broadcast_object_list({flag}, src=0)
"""
_INIT_COMMENT = "# ddpfix: rank 0 evaluates and decides the early stop; every rank follows it"


class DecideOnRankZero(cst.CSTTransformer):
    """Each plan's ``S`` on global rank 0 (its ``break`` setting the flag, what the ``break``
    skipped under ``if not <flag>:``), then the broadcast and the ``break`` every rank takes.
    Finds its nodes by identity (one pass with the rest)."""

    def __init__(
        self,
        plans: list[RankZeroStop],
        args: str,
        rank: cst.Comparison,
        launched: str = LAUNCHED,
    ) -> None:
        super().__init__()
        self.plans = {plan.statement: plan for plan in plans}
        self.breaks = {b for plan in plans for b in plan.breaks}
        self.skips = {s for plan in plans for s in plan.skips}
        self.launched = launched.format(args=args)
        self.rank = rank

    def leave_Break(self, original: cst.Break, updated: cst.Break) -> cst.BaseSmallStatement:
        if original not in self.breaks:
            return updated
        target = cst.Subscript(cst.Name(FLAG), [cst.SubscriptElement(cst.Index(cst.Integer("0")))])
        return cst.Assign([cst.AssignTarget(target)], cst.Name("True"), semicolon=updated.semicolon)

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        if any(s in self.skips for s in original.body):
            assert len(original.body) == len(updated.body)  # nothing else flattens S's blocks
            return updated.with_changes(body=self._skipping(original.body, list(updated.body)))
        if not any(s in self.plans for s in original.body):
            return updated
        assert len(original.body) == len(updated.body)  # no other part flattens a loop's body
        statements: list[cst.BaseStatement] = []
        for before, after in zip(original.body, updated.body):
            plan = self.plans.get(before)
            statements += [after] if plan is None else self._decided(plan, after)
        return updated.with_changes(body=statements)

    def _skipping(
        self, original: Sequence[cst.BaseStatement], updated: list[cst.BaseStatement]
    ) -> list[cst.BaseStatement]:
        """``updated`` with what follows a statement holding a ``break`` under ``if not
        <flag>:`` (nested, for each such statement in turn)."""
        for index, statement in enumerate(original[:-1]):
            if statement in self.skips:
                rest = self._skipping(original[index + 1 :], updated[index + 1 :])
                first = rest[0]
                assert isinstance(first, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
                rest[0] = first.with_changes(leading_lines=())
                guard = cst.If(
                    test=cst.parse_expression(f"not {FLAG}[0]"),
                    body=cst.IndentedBlock(rest),
                    leading_lines=first.leading_lines,
                )
                return [*updated[: index + 1], guard]
        return updated

    def _decided(self, plan: RankZeroStop, statement: cst.BaseStatement) -> list[cst.BaseStatement]:
        assert isinstance(statement, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
        init = cst.parse_statement(f"{FLAG} = [False]\n")
        init = init.with_changes(
            leading_lines=[
                *statement.leading_lines,
                cst.EmptyLine(comment=cst.Comment(_INIT_COMMENT)),
            ]
        )
        gated = _gate(statement.with_changes(leading_lines=()), plan.keep, self.rank)
        broadcast = cst.parse_statement(_BROADCAST.format(launched=self.launched, flag=FLAG))
        leave = cst.parse_statement(f"if {FLAG}[0]:\n    break\n")
        return [init, gated, broadcast, leave]


def wrapped_names(tree: Tree, wraps: Sequence[cst.Call]) -> set[str]:
    """The names the model is bound to around its wraps (``model = torch.nn.DataParallel(
    model)``: ``model``): the names whose use in ``S`` must be one the rank-0 rules unwrap."""
    names = set()
    for wrap in wraps:
        assign = tree.parent(wrap)
        if type(assign) is cst.Assign:
            names |= {t.target.value for t in assign.targets if type(t.target) is cst.Name}
        names |= {a.value.value for a in wrap.args[:1] if type(a.value) is cst.Name}
    return names


def model_names(m: RankModel, function: cst.FunctionDef) -> set[str]:
    """The names the model goes by in ``function`` of an already distributed script: those
    bound around a ``DataParallel``/``DistributedDataParallel`` wrap in the file, and the
    parameters of ``function`` a call passes them to."""
    wraps = [
        c
        for c in m.tree.nodes(cst.Call)
        if callee_name(c) in ("DataParallel", "DistributedDataParallel")
    ]
    models = wrapped_names(m.tree, wraps)
    return models | received(m, function, models)


def received(m: RankModel, function: cst.FunctionDef, models: set[str]) -> set[str]:
    """The parameters of ``function`` that a call in the module passes the model to (``def
    train(args, net)`` called as ``train(args, model)``: ``net``)."""
    params = [p.name.value for p in function.params.params]
    found = set()
    for call in m.module_calls():
        if not (type(call.func) is cst.Name and call.func.value == function.name.value):
            continue
        for index, arg in enumerate(call.args):
            if arg.star or not (type(arg.value) is cst.Name and arg.value.value in models):
                continue
            if arg.keyword is not None:
                found.add(arg.keyword.value)
            elif index < len(params):
                found.add(params[index])
    return found


def _gate(statement: cst.BaseStatement, keep: int, rank: cst.Comparison) -> cst.BaseStatement:
    """``statement`` on global rank 0: its test and the rank test when it is an ``if`` with no
    ``else`` (the rest of its body under the rank test when it keeps ``keep`` resets first)."""
    if keep:
        assert type(statement) is cst.If and type(statement.body) is cst.IndentedBlock
        body = list(statement.body.body)
        rest = body[keep:]
        inner = cst.If(test=rank.deep_clone(), body=cst.IndentedBlock(rest))
        return statement.with_changes(body=statement.body.with_changes(body=[*body[:keep], inner]))
    if type(statement) is cst.If and statement.orelse is None:
        test = cst.BooleanOperation(
            left=_as_and_operand(statement.test), operator=cst.And(), right=rank.deep_clone()
        )
        return statement.with_changes(test=test)
    return cst.If(test=rank.deep_clone(), body=cst.IndentedBlock([statement]))


def _as_and_operand(test: cst.BaseExpression) -> cst.BaseExpression:
    """``a or b`` in parentheses before ``and rank`` (``a or b and rank`` is ``a or (b and
    rank)``)."""
    looser = (type(test) is cst.BooleanOperation and type(test.operator) is cst.Or) or isinstance(
        test, (cst.IfExp, cst.Lambda, cst.NamedExpr)
    )
    if looser and not test.lpar:
        return test.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return test
