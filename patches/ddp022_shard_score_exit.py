"""DDP022 shard-score-exit: an early stop each process decides from a score of its own shard.

``accelerator.prepare(model, optimizer, train_loader, dev_loader)`` splits *every* loader it is
given between the processes, the evaluation loader too; so does a ``DistributedSampler``. An
evaluation that loops over such a loader and returns ``correct / total`` without gathering
anything scores each process's own part of the dev set. Each process then runs::

    acc = evaluate(model, dev_loader)
    if acc > best:
        best, bad = acc, 0
    else:
        bad += 1
        if bad > args.patience:
            break

on a different number. Sooner or later one process leaves the epoch loop while the others train
on, and they wait for it in their next gradient all-reduce: a crash on gloo ("Connection closed
by peer"), a hang on NCCL. Single-process runs, and short test runs where no process stops
early, never show it.

The rule reports such an exit (``break``, ``continue``, ``return`` or a ``while`` test) of a
loop that trains (a ``backward()`` in it) in a script that runs distributed, when the test reads
a value computed, on every process, from a loop over a sharded loader (a loader ``prepare``
returns or one built with a ``DistributedSampler``, also as a parameter of a module function
some call passes it to) that gathers nothing: the value, what is computed from it, what is
assigned under a test that reads it (``bad += 1``) and what a function returning it returns. A
value that went through a collective that shares values (``accelerator.gather_for_metrics``,
``accelerator.reduce``, ``dist.all_reduce``, or a helper of the script that calls one, such as
apex's ``reduce_tensor``), or is rebound from such a value (``correct, total = t.tolist()``
after ``dist.all_reduce(t)``), is the whole set's and is not followed; nor is an evaluation only
rank 0 runs (DDP013 judges rank 0's own decisions). Reported, not rewritten: the fix is to
gather what the score is computed from, which depends on what the metric needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._names import BINDERS, bound_names, parameters, walk
from patches._ranks import OTHER, RankModel, model
from patches._syntax import callee_name, is_collective_call, module_functions, one_line

#: What makes a loop a training loop, whose every step the processes take together.
_BACKWARD = frozenset({"backward"})
#: Collectives whose result is the same on every process: what they return (or fill in
#: place) was exchanged. Not ``prepare``, a DDP wrap or a barrier: they exchange no value.
_EXCHANGES = frozenset(
    {
        "gather",
        "gather_for_metrics",
        "reduce",
        "all_reduce",
        "all_gather",
        "all_gather_object",
        "all_gather_into_tensor",
        "broadcast",
        "broadcast_object_list",
        "gather_object",
        "reduce_scatter",
    }
)
#: The same called by a bare name (``from torch.distributed import all_reduce``); not
#: ``gather`` or ``reduce``, which are also ``torch.gather`` and ``functools.reduce``.
_BARE_EXCHANGES = _EXCHANGES - {"gather", "reduce"}
_BINDER_TYPES = frozenset(BINDERS)
_EXITS = (cst.Break, cst.Continue, cst.Return)
_LOOPS = (cst.For, cst.While)


def _first_read(test: cst.CSTNode, held: dict[str, str]) -> str | None:
    """The first name ``test`` reads that holds a shard's score, in source order."""
    return next(
        (n.value for n in walk(test, into_scopes=False) if type(n) is cst.Name and n.value in held),
        None,
    )


def _names(node: cst.CSTNode) -> set[str]:
    """The names ``node`` reads, outside nested scopes."""
    return {n.value for n in walk(node, into_scopes=False) if type(n) is cst.Name}


def _exchange(call: cst.Call) -> bool:
    """A collective that shares values: ``dist.all_reduce(t)``, ``accelerator.gather(x)``."""
    name = callee_name(call)
    if name not in _EXCHANGES:
        return False
    if type(call.func) is cst.Name:
        return name in _BARE_EXCHANGES
    return is_collective_call(call)


def _relays(functions: dict[str, cst.FunctionDef]) -> frozenset[str]:
    """The module functions that reach a collective, directly or through one another."""
    calls = {
        name: [c for c in walk(f.body, into_scopes=False) if type(c) is cst.Call]
        for name, f in functions.items()
    }
    found = {name for name, made in calls.items() if any(_exchange(c) for c in made)}
    grown = True
    while grown:
        grown = False
        for name, made in calls.items():
            if name not in found and any(
                type(c.func) is cst.Name and c.func.value in found for c in made
            ):
                found.add(name)
                grown = True
    return frozenset(found)


def _sharded_loaders(tree: Tree) -> dict[cst.CSTNode, set[str]]:
    """Per scope (a function or the module), the names that hold a loader split between the
    processes: what ``prepare`` returns for a loader, a ``DataLoader`` built with a
    ``DistributedSampler``; then, per module function, the parameters a call passes one to."""
    found: dict[cst.CSTNode, set[str]] = {}
    scopes: list[cst.CSTNode] = [tree.module, *tree.nodes(cst.FunctionDef)]
    for scope in scopes:
        samplers: set[str] = set()
        loaders: set[str] = set()
        sharded: set[str] = set()
        for node in walk(_body(scope), into_scopes=False):
            if type(node) is not cst.Assign or type(node.value) is not cst.Call:
                continue
            call = node.value
            name = callee_name(call)
            targets = [t.target for t in node.targets]
            if name == "DistributedSampler":
                samplers |= {
                    n.value
                    for t in targets
                    for n in walk(t, into_scopes=False)
                    if type(n) is cst.Name
                }
            elif name is not None and name.endswith("DataLoader"):
                names = {t.value for t in targets if type(t) is cst.Name}
                loaders |= names
                sampler = next(
                    (
                        a.value
                        for a in call.args
                        if a.keyword is not None and a.keyword.value == "sampler"
                    ),
                    None,
                )
                if sampler is not None and (
                    (type(sampler) is cst.Name and sampler.value in samplers)
                    or (type(sampler) is cst.Call and callee_name(sampler) == "DistributedSampler")
                ):
                    sharded |= names
            elif name in ("prepare", "prepare_data_loader") and type(call.func) is cst.Attribute:
                given = [a.value for a in call.args if a.keyword is None]
                if len(targets) == 1 and type(targets[0]) is cst.Tuple:
                    got = [e.value for e in targets[0].elements]
                else:
                    got = targets[:1]
                for source, target in zip(given, got):
                    if type(target) is not cst.Name:
                        continue
                    if (
                        (type(source) is cst.Name and source.value in loaders)
                        or (
                            type(source) is cst.Call
                            and (callee_name(source) or "").endswith("DataLoader")
                        )
                        or "loader" in target.value.lower()
                    ):
                        sharded.add(target.value)
        if sharded:
            found[scope] = sharded
    functions = module_functions(tree.module)
    changed = True
    while changed:  # parameters a call hands a sharded loader to, through helpers too
        changed = False
        for call in tree.nodes(cst.Call):
            target = functions.get(callee_name(call) or "") if type(call.func) is cst.Name else None
            if target is None:
                continue
            caller = _scope(tree, call)
            held = found.get(caller, set())
            params = [p.name.value for p in parameters(target)]
            for index, arg in enumerate(call.args):
                if type(arg.value) is not cst.Name or arg.value.value not in held or arg.star:
                    continue
                param = (
                    arg.keyword.value
                    if arg.keyword is not None
                    else (params[index] if index < len(params) else None)
                )
                if param is not None and param not in found.setdefault(target, set()):
                    found[target].add(param)
                    changed = True
    return {k: v for k, v in found.items() if v}


def _body(scope: cst.CSTNode) -> cst.CSTNode:
    """What runs in ``scope``'s own frame: a function's body, or the module."""
    return scope.body if type(scope) is cst.FunctionDef else scope


def _is_loader(call: cst.Call) -> bool:
    return (callee_name(call) or "").endswith("DataLoader")


def _scope(tree: Tree, node: cst.CSTNode) -> cst.CSTNode:
    for ancestor in tree.ancestors(node):
        if type(ancestor) is cst.FunctionDef:
            return ancestor
    return tree.module


def _trains(loop: cst.CSTNode) -> bool:
    return any(
        type(c) is cst.Call and callee_name(c) in _BACKWARD for c in walk(loop, into_scopes=False)
    )


def _root(target: cst.CSTNode | None) -> list[str]:
    """The name an item or attribute assignment changes (``totals[0] += x`` changes
    ``totals``)."""
    while type(target) in (cst.Subscript, cst.Attribute):
        target = target.value  # type: ignore[union-attr]
    return [target.value] if type(target) is cst.Name else []


def _bindings(
    tree: Tree, scope: cst.CSTNode
) -> Iterator[tuple[cst.CSTNode, list[str], cst.BaseExpression | None]]:
    """Every binding of ``scope``'s own frame: its statement, the names it binds, the value
    (None for a loop variable, a parameter, a ``with ... as``)."""
    for node in walk(scope, into_scopes=False):
        if type(node) not in _BINDER_TYPES:
            continue
        names = [n.value for n in bound_names(node)] or _root(getattr(node, "target", None))
        if not names:
            continue
        statement = node
        if type(node) is cst.AssignTarget:
            statement = cast(cst.CSTNode, tree.parent(node))
        value = getattr(statement, "value", None)
        yield statement, names, value if isinstance(value, cst.BaseExpression) else None


class _Scores:
    """The names of each scope that hold a shard's own score (see the module docstring)."""

    def __init__(self, tree: Tree, ranks: RankModel, loaders: dict[cst.CSTNode, set[str]]):
        self.tree, self.ranks, self.loaders = tree, ranks, loaders
        self.functions = module_functions(tree.module)
        self.relays = _relays(self.functions)
        #: module functions that return a shard's score, and the loader it was scored on
        self.returning: dict[str, str] = {}
        self.held: dict[cst.CSTNode, dict[str, str]] = {}  # scope -> name -> where it came from
        changed = True
        while changed:
            changed = False
            for scope in [tree.module, *self.functions.values()]:
                before = (dict(self.held.get(scope, {})), dict(self.returning))
                self._scope(scope)
                if (self.held.get(scope, {}), self.returning) != before:
                    changed = True

    def _value_origin(
        self, scope: cst.CSTNode, value: cst.CSTNode, held: dict[str, str]
    ) -> str | None:
        if self._exchanging(value):
            return None
        for name in _names(value):
            if name in held:
                return held[name]
        for call in walk(value, into_scopes=False):
            if (
                type(call) is cst.Call
                and type(call.func) is cst.Name
                and call.func.value in self.returning
                and self.ranks.runs(call, OTHER) is not False
            ):
                passed = _names(call) & self.loaders.get(scope, set())
                return min(passed) if passed else self.returning[call.func.value]
        return None

    def _scope(self, scope: cst.CSTNode) -> None:
        tree = self.tree
        held = self.held.setdefault(scope, {})
        loaders = self.loaders.get(scope, set())
        body = _body(scope)
        # seeds: what a loop over a sharded loader accumulates, gathering nothing
        for loop in walk(body, into_scopes=False):
            if type(loop) is not cst.For or not (_names(loop.iter) & loaders):
                continue
            if (
                _trains(loop)
                or self._exchanging(loop.body)
                or self.ranks.runs(loop, OTHER) is False
            ):
                continue
            shard = next(iter(sorted(_names(loop.iter) & loaders)))
            for _, names, _value in _bindings(tree, loop.body):
                for name in names:
                    held.setdefault(name, shard)
        exchanged = {
            n
            for c in walk(body, into_scopes=False)
            if type(c) is cst.Call and self._exchanging(c)
            for a in c.args
            for n in _names(a.value)
        }
        grown = True
        while grown:  # ``correct, total = t.tolist()`` after ``dist.all_reduce(t)``
            grown = False
            for _, names, value in _bindings(tree, body):
                if value is None or not (_names(value) & exchanged or self._exchanging(value)):
                    continue
                if not set(names) <= exchanged:
                    exchanged |= set(names)
                    grown = True
        for name in exchanged:  # ``dist.all_reduce(correct)`` makes it the whole set's
            held.pop(name, None)
        # what is computed from them, or assigned under a test that reads them
        for statement, names, value in _bindings(tree, body):
            origin = None
            if value is not None:
                origin = self._value_origin(scope, value, held)
            if origin is None:
                origin = self._controlled(statement, held)
            if origin is not None:
                for name in names:
                    if name not in exchanged:
                        held.setdefault(name, origin)
        if type(scope) is cst.FunctionDef:
            for ret in walk(body, into_scopes=False):
                if type(ret) is cst.Return and ret.value is not None:
                    origin = self._value_origin(scope, ret.value, held)
                    if origin is not None:
                        self.returning.setdefault(scope.name.value, origin)

    def _exchanging(self, node: cst.CSTNode) -> bool:
        """Whether ``node`` exchanges values between the processes: a collective, or a call of
        a module function that reaches one (apex's ``reduce_tensor``)."""
        return any(
            _exchange(c) or (type(c.func) is cst.Name and c.func.value in self.relays)
            for c in walk(node, into_scopes=False)
            if type(c) is cst.Call
        )

    def _controlled(self, node: cst.CSTNode, held: dict[str, str]) -> str | None:
        """Where the test of an ``if``/``while`` around ``node`` in its frame came from."""
        for ancestor in self.tree.ancestors(node):
            if type(ancestor) in (cst.FunctionDef, cst.ClassDef, cst.Lambda):
                return None
            if type(ancestor) in (cst.If, cst.While):
                for name in _names(ancestor.test):  # type: ignore[attr-defined]
                    if name in held:
                        return held[name]
        return None


def _exit_loop(tree: Tree, exit_: cst.CSTNode) -> cst.CSTNode | None:
    """The loop ``exit_`` leaves a step of (a ``return``: the outermost loop around it)."""
    loops = []
    for ancestor in tree.ancestors(exit_):
        if type(ancestor) in (cst.FunctionDef, cst.ClassDef, cst.Lambda):
            break
        if type(ancestor) in _LOOPS:
            loops.append(ancestor)
    if not loops:
        return None
    return loops[-1] if type(exit_) is cst.Return else loops[0]


def shard_decided_exits(tree: Tree) -> Iterator[tuple[cst.CSTNode, str, str]]:
    """(exit or ``while``, the name its test reads, the loader that name was scored on)."""
    loaders = _sharded_loaders(tree)
    if not loaders:
        return
    ranks = model(tree)
    scores = _Scores(tree, ranks, loaders)
    for scope, held in scores.held.items():
        if not held:
            continue
        for node in walk(_body(scope), into_scopes=False):
            if type(node) is cst.While and _trains(node):
                read = _first_read(node.test, held)
                if read is not None:
                    yield node, read, held[read]
                continue
            if type(node) not in _EXITS or ranks.runs(node, OTHER) is False:
                continue
            loop = _exit_loop(tree, node)
            if loop is None or not _trains(loop):
                continue
            for ancestor in tree.ancestors(node):
                if ancestor is loop:
                    break
                if type(ancestor) is cst.If:
                    read = _first_read(ancestor.test, held)
                    if read is not None:
                        yield node, read, held[read]
                        break


class ShardScoreExit(Rule):
    code = "DDP022"
    name = "shard-score-exit"
    summary = "An early stop decided from a score each process computes on its own shard (report)."
    rationale = __doc__
    triggers = (".prepare(", "DistributedSampler")
    judges_output = True  # what the other rules' fixes leave is what runs
    settles = True
    examples = (
        Example(
            before="""
                def evaluate(model, loader):
                    correct = total = 0
                    for x, y in loader:
                        correct += (model(x).argmax(-1) == y).sum().item()
                        total += len(y)
                    return correct / total

                def main(args, accelerator, model, optimizer, train_loader, dev_loader):
                    model, optimizer, train_loader, dev_loader = accelerator.prepare(
                        model, optimizer, train_loader, dev_loader
                    )
                    best, bad = 0.0, 0
                    for epoch in range(args.epochs):
                        for x, y in train_loader:
                            accelerator.backward(model(x).mean())
                            optimizer.step()
                        acc = evaluate(model, dev_loader)
                        if acc > best:
                            best, bad = acc, 0
                        else:
                            bad += 1
                            if bad > args.patience:
                                break
            """,
            reports=1,
            messages=(
                "each process decides this `break` from 'bad', which it computes from its own "
                "shard of 'dev_loader' (prepare() and a DistributedSampler split a loader "
                "between the processes, and nothing gathers the score before the test): the "
                "processes may leave the training loop at different steps, and the others then "
                "wait in their next gradient all-reduce (crash or hang); gather what the score "
                "is computed from (accelerator.gather_for_metrics, dist.all_reduce) before "
                "deciding",
            ),
        ),
        Example(
            before="""
                def evaluate(accelerator, model, loader):
                    correct = total = 0
                    for x, y in loader:
                        hits = accelerator.gather_for_metrics(model(x).argmax(-1) == y)
                        correct += hits.sum().item()
                        total += len(hits)
                    return correct / total

                def main(args, accelerator, model, optimizer, train_loader, dev_loader):
                    model, optimizer, train_loader, dev_loader = accelerator.prepare(
                        model, optimizer, train_loader, dev_loader
                    )
                    for epoch in range(args.epochs):
                        for x, y in train_loader:
                            accelerator.backward(model(x).mean())
                            optimizer.step()
                        if evaluate(accelerator, model, dev_loader) > args.target:
                            break
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        for node, name, loader in shard_decided_exits(tree):
            what = (
                f"`while {one_line(tree, node.test, 40)}`"
                if type(node) is cst.While
                else f"`{one_line(tree, node, 40)}`"
            )
            ctx.report(
                node,
                f"each process decides this {what} from {name!r}, which it computes from its "
                f"own shard of {loader!r} (prepare() and a DistributedSampler split a loader "
                "between the processes, and nothing gathers the score before the test): the "
                "processes may leave the training loop at different steps, and the others then "
                "wait in their next gradient all-reduce (crash or hang); gather what the score "
                "is computed from (accelerator.gather_for_metrics, dist.all_reduce) before "
                "deciding",
            )
