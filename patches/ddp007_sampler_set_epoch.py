"""DDP007 sampler-set-epoch: reshuffle a DistributedSampler every epoch.

A ``DistributedSampler`` shuffles with a seed derived from its epoch, and the epoch only changes
when the training loop calls ``sampler.set_epoch(epoch)``. Almost every legacy script forgets it,
so every epoch visits the data in exactly the same order on every rank. The rule finds the
DataLoader whose ``sampler=`` may be a DistributedSampler (a variable built directly, by a
conditional expression or by an ``if``/``else``; a ``DistributedSampler(...)`` passed inline; an
entry of a dict of samplers; or a DataLoader returned by a helper function that builds one), and
the epoch loop that iterates over that DataLoader (``for idx in range(...)``, ``for epoch in
trange(...)``, any loop variable, the DataLoader used directly or through ``enumerate``/``tqdm``).

The call goes where the sampler is certainly bound, because ``hasattr(train_sampler, ...)`` on a
name not bound yet raises ``UnboundLocalError`` in epoch 0, single process included:

- DataLoader built inside the epoch loop (a new dataset and sampler every epoch): right after the
  statement that builds it, in the same block, so it runs whenever the DataLoader is built (and
  only then: a DataLoader rebuilt under an ``if`` is reshuffled in the epochs that rebuild it;
  a build not on a line of its own, ``if x: loader = DataLoader(...)``, is reported instead)::

      train_sampler = RandomSampler(ds) if args.local_rank == -1 else DistributedSampler(ds)
      train_dataloader = DataLoader(ds, sampler=train_sampler)
      if hasattr(train_sampler, "set_epoch"):
          train_sampler.set_epoch(epoch)

- DataLoader built before the loop, from a sampler variable bound before the loop on every path
  (an assignment, an ``if``/``else`` whose branches all bind it, a parameter): at the top of the
  epoch loop::

      for idx in range(args.epoch):
          if hasattr(train_sampler, "set_epoch"):
              train_sampler.set_epoch(idx)

- otherwise (a sampler in a dict or passed inline, a DataLoader from a helper, a sampler bound in
  only one branch), when the DataLoader variable itself is bound before the loop on every path and
  only ever holds a DataLoader: the same call through the DataLoader, whose ``.sampler`` always
  exists::

      if hasattr(train_dataloader.sampler, "set_epoch"):
          train_dataloader.sampler.set_epoch(idx)

- and when neither can be proven bound (the DataLoader built in an ``if`` before the loop, a dict
  of DataLoaders), the rule reports "cannot tell where the sampler is bound" and inserts nothing.

The ``hasattr`` guard keeps the single-process path (a RandomSampler has no ``set_epoch``)
unchanged. A loop that already calls ``set_epoch`` on that sampler (or on ``loader.sampler``) is
left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Tree
from patches._args import has_keyword, keyword_value
from patches._importers import importers, project_modules
from patches._names import BINDERS, bound_names, walk
from patches._ranks import OTHER, model
from patches._syntax import callee_name, dominates, dotted_name, preferred_quote

SAMPLER = "DistributedSampler"
LOADER = "DataLoader"
_EXITS = (cst.Return, cst.Raise, cst.Continue, cst.Break)


@dataclass(frozen=True)
class _Build:
    """One ``name = DataLoader(..., sampler=<may be distributed>)`` (or a helper's DataLoader)."""

    assign: cst.Assign
    #: The statement line to insert after; None when it is not on a line of its own.
    line: cst.SimpleStatementLine | None
    #: The ``sampler=`` argument when it is a plain name (it is bound once this has run).
    sampler: str | None
    #: The ``sampler=`` argument as written; None for a helper's DataLoader.
    expression: cst.BaseExpression | None


@dataclass
class _Scope:
    """What one function (or the module) binds: samplers, DataLoaders built from them."""

    builds: dict[str, list[_Build]] = field(default_factory=dict)
    #: Loader names every binding of which is a ``DataLoader(...)``/helper call (has ``.sampler``).
    plain: set[str] = field(default_factory=set)
    #: Names holding DataLoaders over such samplers inside a container (a dict of loaders).
    containers: set[str] = field(default_factory=set)


def _has_distributed_call(node: cst.CSTNode) -> bool:
    return any(
        type(n) is cst.Call and callee_name(n) == SAMPLER for n in walk(node, into_scopes=False)
    )


def _root(node: cst.BaseExpression) -> cst.BaseExpression:
    """``samplers["train"].inner`` → ``samplers``."""
    while isinstance(node, (cst.Subscript, cst.Attribute)):
        node = node.value
    return node


def _assign_targets(assign: cst.Assign) -> Iterator[cst.BaseAssignTargetExpression]:
    for target in assign.targets:
        yield target.target


def _distributed(expression: cst.BaseExpression, names: set[str], roots: set[str]) -> bool:
    """Whether a ``sampler=`` argument may be a DistributedSampler: one built inline, a name
    assigned one, or an entry of a container holding them (``samplers["train"]``)."""
    if _has_distributed_call(expression) or dotted_name(expression) in names:
        return True
    root = _root(expression)
    return (
        type(expression) is cst.Subscript
        and type(root) is cst.Name
        and (root.value in names or root.value in roots)
    )


def _distributed_loader(call: cst.Call, names: set[str], roots: set[str]) -> bool:
    sampler = keyword_value(call, "sampler")
    return sampler is not None and _distributed(sampler, names, roots)


class _Analysis:
    """Per-scope facts, computed once per run; helpers are found from the scopes' own facts."""

    def __init__(self, tree: Tree) -> None:
        self.tree = tree
        self.assigns: dict[int, list[cst.Assign]] = {}
        for assign in tree.nodes(cst.Assign):
            self.assigns.setdefault(id(tree.scope(assign)), []).append(assign)
        self._scopes: dict[int, _Scope] = {}
        self.helpers: frozenset[str] = self._helpers()

    def _samplers(self, scope: cst.CSTNode) -> tuple[set[str], set[str]]:
        """Dotted names assigned something that may be a DistributedSampler, and the roots of
        subscripts assigned one (``samplers["train"] = DistributedSampler(d)``)."""
        names: set[str] = set()
        roots: set[str] = set()
        for assign in self.assigns.get(id(scope), ()):
            if not _has_distributed_call(assign.value):
                continue
            for target in _assign_targets(assign):
                name = dotted_name(target)
                if name is not None:
                    names.add(name)
                elif type(target) is cst.Subscript and isinstance(root := _root(target), cst.Name):
                    roots.add(root.value)
        return names, roots

    def facts(self, scope: cst.CSTNode) -> _Scope:
        """The facts of ``scope``, DataLoaders from helper functions included."""
        key = id(scope)
        if key not in self._scopes:
            self._scopes[key] = self._scope(scope, self.helpers)
        return self._scopes[key]

    def _scope(self, scope: cst.CSTNode, helpers: frozenset[str]) -> _Scope:
        """The facts of ``scope``, with ``helpers`` taken as functions returning DataLoaders."""
        names, roots = self._samplers(scope)
        found = _Scope()
        loader_like: set[str] = set()  # names bound to some DataLoader/helper call
        for assign in self.assigns.get(id(scope), ()):
            value = assign.value
            build: _Build | None = None
            is_loader = type(value) is cst.Call and (
                callee_name(value) == LOADER or callee_name(value) in helpers
            )
            if type(value) is cst.Call and callee_name(value) == LOADER:
                if _distributed_loader(value, names, roots):
                    sampler = keyword_value(value, "sampler")
                    plain = sampler.value if type(sampler) is cst.Name else None
                    build = _Build(assign, self._line(assign), plain, sampler)
            elif type(value) is cst.Call and callee_name(value) in helpers:
                build = _Build(assign, self._line(assign), None, None)
            elif any(
                type(n) is cst.Call
                and callee_name(n) == LOADER
                and _distributed_loader(n, names, roots)
                for n in walk(value, into_scopes=False)
            ):
                for target in _assign_targets(assign):
                    root = _root(target)
                    if type(root) is cst.Name:
                        found.containers.add(root.value)
            for target in _assign_targets(assign):
                if type(target) is cst.Name:
                    if build is not None:
                        found.builds.setdefault(target.value, []).append(build)
                    if is_loader:
                        loader_like.add(target.value)
                elif type(target) is cst.Subscript and build is not None:
                    root = _root(target)
                    if type(root) is cst.Name:  # loaders["train"] = DataLoader(...)
                        found.containers.add(root.value)
        found.plain = {n for n in loader_like if self._only_loaders(scope, n, helpers)}
        return found

    def _line(self, assign: cst.Assign) -> cst.SimpleStatementLine | None:
        line = self.tree.parent(assign)
        if type(line) is cst.SimpleStatementLine and isinstance(
            self.tree.parent(line), (cst.IndentedBlock, cst.Module)
        ):
            return line
        return None

    def _only_loaders(self, scope: cst.CSTNode, name: str, helpers: frozenset[str]) -> bool:
        """Whether every binding of ``name`` in ``scope`` assigns it a DataLoader/helper call
        (then ``name.sampler`` exists wherever ``name`` is bound)."""
        for binder in self.tree.nodes(*BINDERS):
            if self.tree.scope(binder) is not scope:
                continue
            if not any(n.value == name for n in bound_names(binder)):
                continue
            assign = self.tree.parent(binder)
            if not (
                type(binder) is cst.AssignTarget
                and type(binder.target) is cst.Name
                and type(assign) is cst.Assign
                and type(assign.value) is cst.Call
                and (callee_name(assign.value) == LOADER or callee_name(assign.value) in helpers)
            ):
                return False
        return True

    def _helpers(self) -> frozenset[str]:
        """Functions (defined once) that return a DataLoader whose sampler may be distributed:
        ``train_dataloader = build_loader(args, ds)`` is then such a DataLoader."""
        defined: dict[str, int] = {}
        for function in self.tree.nodes(cst.FunctionDef):
            defined[function.name.value] = defined.get(function.name.value, 0) + 1
        found: set[str] = set()
        own: dict[int, _Scope] = {}  # each function's facts, helpers aside
        for node in self.tree.nodes(cst.Return):
            function = self.tree.scope(node)
            value = node.value
            if type(function) is not cst.FunctionDef or value is None:
                continue
            if defined.get(function.name.value) != 1 or function.name.value in found:
                continue
            if type(value) is cst.Call and callee_name(value) == LOADER:
                names, roots = self._samplers(function)
                if _distributed_loader(value, names, roots):
                    found.add(function.name.value)
            elif type(value) is cst.Name:
                if id(function) not in own:
                    own[id(function)] = self._scope(function, frozenset())
                if value.value in own[id(function)].builds:
                    found.add(function.name.value)
        return frozenset(found)


# --- is a name certainly bound when a statement starts? -----------------------------------------


def _small_binds(small: cst.BaseSmallStatement, name: str) -> bool:
    if type(small) is cst.Assign:
        return any(n.value == name for t in small.targets for n in bound_names(t))
    if type(small) is cst.AnnAssign:
        return small.value is not None and any(n.value == name for n in bound_names(small))
    if type(small) is cst.AugAssign:
        return any(n.value == name for n in bound_names(small))  # it was bound, or it raised
    if isinstance(small, (cst.Import, cst.ImportFrom)) and not isinstance(
        small.names, cst.ImportStar
    ):
        for alias in small.names:
            bound = alias.asname.name if alias.asname else _root(alias.name)
            if type(bound) is cst.Name and bound.value == name:
                return True
    return False


def _binds(statement: cst.CSTNode, name: str) -> bool:
    """Whether control leaves ``statement`` normally only with ``name`` bound (a statement
    that never falls through, a ``return`` or ``continue``, counts: nothing after it runs)."""
    if isinstance(statement, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
        for small in statement.body:
            if _small_binds(small, name) or isinstance(small, _EXITS):
                return True
        return False
    if type(statement) is cst.If:
        orelse = statement.orelse
        if orelse is None or not _block_binds(statement.body, name):
            return False
        return _binds(orelse, name) if type(orelse) is cst.If else _block_binds(orelse.body, name)
    if type(statement) is cst.With:
        return _block_binds(statement.body, name) or any(
            item.asname is not None and any(n.value == name for n in bound_names(item.asname))
            for item in statement.items
        )
    if type(statement) is cst.Try:
        if statement.finalbody is not None and _block_binds(statement.finalbody.body, name):
            return True
        body = _block_binds(statement.body, name) or (
            statement.orelse is not None and _block_binds(statement.orelse.body, name)
        )
        return body and all(_block_binds(h.body, name) for h in statement.handlers)
    if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
        return statement.name.value == name
    return False  # loops may run zero times


def _block_binds(block: cst.BaseSuite, name: str) -> bool:
    if type(block) is cst.SimpleStatementSuite:
        return _binds(block, name)
    return any(_binds(statement, name) for statement in block.body)


def _parameters(function: cst.FunctionDef) -> Iterable[str]:
    params = function.params
    for param in (*params.posonly_params, *params.params, *params.kwonly_params):
        yield param.name.value
    for star in (params.star_arg, params.star_kwarg):
        if type(star) is cst.Param:
            yield star.name.value


def _bound_at(tree: Tree, name: str, statement: cst.CSTNode) -> bool:
    """Whether ``name`` is bound on every path that reaches ``statement`` (within its scope)."""
    child: cst.CSTNode = statement
    for parent in tree.ancestors(statement):
        if isinstance(parent, (cst.IndentedBlock, cst.Module)):
            for earlier in parent.body:
                if earlier is child:
                    break
                if _binds(earlier, name):
                    return True
        elif type(parent) is cst.For and child is parent.body:
            if any(n.value == name for n in bound_names(parent)):
                return True
        elif type(parent) is cst.With and child is parent.body:
            for item in parent.items:
                if item.asname is not None and any(
                    n.value == name for n in bound_names(item.asname)
                ):
                    return True
        elif type(parent) is cst.ExceptHandler and child is parent.body:
            if parent.name is not None and any(n.value == name for n in bound_names(parent.name)):
                return True
        elif type(parent) is cst.FunctionDef:
            return name in set(_parameters(parent))
        elif isinstance(parent, (cst.ClassDef, cst.Lambda)):
            return False
        child = parent
    return False


# --- the epoch loop -------------------------------------------------------------------------------


def _inner_loop(
    loop: cst.For, loaders: set[str], containers: set[str]
) -> tuple[str, cst.For, set[str]] | None:
    """The loader (or container of loaders) an inner loop of ``loop`` walks through, that loop,
    and the loader's aliases (``bar = tqdm(train_dataloader)``)."""
    known = loaders | containers
    wrapped: dict[str, str] = {}
    for node in walk(loop.body, into_scopes=False):
        if type(node) is cst.Assign:
            for name in walk(node.value, into_scopes=False):
                if type(name) is cst.Name and name.value in known:
                    for target in node.targets:
                        if type(target.target) is cst.Name:
                            wrapped[target.target.value] = name.value
        if type(node) is cst.For and node is not loop:
            for name in walk(node.iter, into_scopes=False):
                if type(name) is cst.Name and (name.value in known or name.value in wrapped):
                    loader = name.value if name.value in known else wrapped[name.value]
                    aliases = {alias for alias, of in wrapped.items() if of == loader}
                    return loader, node, aliases
    return None


def _set_epoch_next_door(path: Path | None, tree: Tree) -> bool:
    """Whether a project file this one imports, or one that imports it, calls ``set_epoch``: the
    sampler built here (FreeYOLO's ``utils/misc.py``) is then reshuffled there (its ``train.py``
    calls ``dataloader.batch_sampler.sampler.set_epoch(epoch)``), or a trainer class another
    module holds does it (``self.data_loader.sampler.set_epoch(epoch)``). A package is looked
    into file by file. Where ddpfix cannot follow the loader there, it says nothing rather than
    claim every epoch repeats the same shuffle."""
    if path is None:
        return False
    files = [p for p, _ in importers(path)]
    for module in project_modules(path, tree).values():
        files.append(module)
        if module.name == "__init__.py":
            files.extend(sorted(module.parent.glob("*.py")))
    for file in dict.fromkeys(files):
        try:
            if _SET_EPOCH_CALL.search(file.read_text(encoding="utf-8", errors="replace")):
                return True
        except OSError:
            continue
    return False


#: A call of ``set_epoch`` on something (``loader.sampler.set_epoch(epoch)``), not its ``def``.
_SET_EPOCH_CALL = re.compile(r"\.set_epoch\s*\(")


def _set_epoch_receivers(loop: cst.For) -> Iterator[cst.BaseExpression]:
    for node in walk(loop.body, into_scopes=False):
        if type(node) is cst.Call and callee_name(node) == "set_epoch":
            if type(node.func) is cst.Attribute:
                yield node.func.value


def _already_set(loop: cst.For, loader: str, aliases: set[str], builds: list[_Build]) -> bool:
    """Whether the loop calls ``set_epoch`` on one of the loader's samplers already."""
    names = {b.sampler for b in builds if b.sampler} | {
        f"{name}.sampler" for name in (loader, *aliases)
    }
    expressions = [b.expression for b in builds if b.expression is not None]
    for receiver in _set_epoch_receivers(loop):
        if dotted_name(receiver) in names or any(receiver.deep_equals(e) for e in expressions):
            return True
    return False


def _epoch_name(loop: cst.For) -> str | None:
    """The loop's epoch counter: ``for epoch in ...``, or the index of ``for idx, _ in
    enumerate(train_iterator)``."""
    if type(loop.target) is cst.Name:
        return loop.target.value
    if (
        type(loop.target) is cst.Tuple
        and loop.target.elements
        and isinstance(loop.target.elements[0].value, cst.Name)
        and type(loop.iter) is cst.Call
        and callee_name(loop.iter) == "enumerate"
    ):
        return loop.target.elements[0].value.value
    return None


def _evaluation_code(tree: Tree, node: cst.CSTNode) -> bool:
    """Inside an evaluate/test-like function: its sampler needs no reshuffle."""
    scope = tree.scope(node)
    return type(scope) is cst.FunctionDef and bool(
        re.search(r"eval|test|valid|predict|infer", scope.name.value)
    )


class SamplerSetEpoch(Rule):
    code = "DDP007"
    name = "sampler-set-epoch"
    summary = (
        "Call sampler.set_epoch(epoch) every epoch of a DistributedSampler loop, where the "
        "sampler is certainly bound."
    )
    rationale = __doc__
    settles = True
    triggers = (SAMPLER,)
    examples = (
        Example(
            before="""
                def train(args, dataset):
                    train_sampler = RandomSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
                    train_dataloader = DataLoader(dataset, sampler=train_sampler)
                    for idx in range(args.epoch):
                        bar = tqdm(train_dataloader)
                        for step, batch in enumerate(bar):
                            step_once(batch)
            """,  # noqa: E501
            after="""
                def train(args, dataset):
                    train_sampler = RandomSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
                    train_dataloader = DataLoader(dataset, sampler=train_sampler)
                    for idx in range(args.epoch):
                        if hasattr(train_sampler, "set_epoch"):
                            train_sampler.set_epoch(idx)
                        bar = tqdm(train_dataloader)
                        for step, batch in enumerate(bar):
                            step_once(batch)
            """,  # noqa: E501
            messages=(
                "train_sampler may be a DistributedSampler here: call set_epoch(idx) every "
                "epoch, or every epoch repeats the same shuffle",
            ),
        ),
        Example(
            before="""
                def train(args):
                    for epoch in range(args.epochs):
                        dataset = load_shard(args, epoch)
                        train_sampler = RandomSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
                        train_dataloader = DataLoader(dataset, sampler=train_sampler)
                        for batch in train_dataloader:
                            step_once(batch)
            """,  # noqa: E501
            after="""
                def train(args):
                    for epoch in range(args.epochs):
                        dataset = load_shard(args, epoch)
                        train_sampler = RandomSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
                        train_dataloader = DataLoader(dataset, sampler=train_sampler)
                        if hasattr(train_sampler, "set_epoch"):
                            train_sampler.set_epoch(epoch)
                        for batch in train_dataloader:
                            step_once(batch)
            """,  # noqa: E501
            messages=(
                "train_dataloader is built inside the epoch loop: call "
                "train_sampler.set_epoch(epoch) right after it is built, or every epoch repeats "
                "the same shuffle",
            ),
        ),
        Example(
            before="""
                def train(args, dataset):
                    if args.local_rank != -1:
                        train_sampler = DistributedSampler(dataset)
                        loader = DataLoader(dataset, sampler=train_sampler)
                    else:
                        loader = DataLoader(dataset, shuffle=True)
                    for epoch in range(args.epochs):
                        for batch in loader:
                            step_once(batch)
            """,
            after="""
                def train(args, dataset):
                    if args.local_rank != -1:
                        train_sampler = DistributedSampler(dataset)
                        loader = DataLoader(dataset, sampler=train_sampler)
                    else:
                        loader = DataLoader(dataset, shuffle=True)
                    for epoch in range(args.epochs):
                        if hasattr(loader.sampler, "set_epoch"):
                            loader.sampler.set_epoch(epoch)
                        for batch in loader:
                            step_once(batch)
            """,
            messages=(
                "loader.sampler may be a DistributedSampler here: call set_epoch(epoch) every "
                "epoch, or every epoch repeats the same shuffle",
            ),
        ),
        Example(
            before="""
                def train(args, dataset):
                    if args.do_train:
                        sampler = DistributedSampler(dataset)
                        loader = DataLoader(dataset, sampler=sampler)
                    for epoch in range(args.epochs):
                        for batch in loader:
                            step_once(batch)
            """,
            reports=1,
            messages=(
                "loader may draw from a DistributedSampler, but ddpfix cannot tell where the "
                "sampler is bound: call set_epoch(epoch) on it every epoch, once it exists, or "
                "every epoch repeats the same shuffle",
            ),
        ),
        Example(
            before="""
                sampler = DistributedSampler(dataset)
                loader = DataLoader(dataset, sampler=sampler)
                for epoch in range(3):
                    sampler.set_epoch(epoch)
                    for batch in loader:
                        step_once(batch)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        analysis: _Analysis | None = None
        for loop in tree.nodes(cst.For):
            if _epoch_name(loop) is None or type(loop.body) is not cst.IndentedBlock:
                continue
            if any(type(a) is cst.For for a in tree.ancestors(loop)):
                continue  # not an outermost loop
            analysis = analysis or _Analysis(tree)
            scope = tree.scope(loop)
            facts = analysis.facts(scope)
            if not facts.builds and not facts.containers:
                continue
            found = _inner_loop(loop, set(facts.builds), facts.containers)
            if found is not None:
                self._one_loop(ctx, loop, facts, *found)
        if not ctx.fixes and not ctx.reports:
            self._unmatched(ctx)

    def _unmatched(self, ctx: RuleContext) -> None:
        """A training DistributedSampler and no ``set_epoch`` anywhere in the file, while no
        epoch loop above was recognised (a loader handed to another function, a DataLoader
        subclass, a generator of loaders): said, never silently left."""
        tree = ctx.tree
        if _SET_EPOCH_CALL.search(tree.code) or _set_epoch_next_door(ctx.path, tree):
            return
        ranks = model(tree)
        for call in tree.nodes(cst.Call):
            if callee_name(call) != "DistributedSampler":
                continue
            if ranks.runs(call, OTHER) is False or _evaluation_code(tree, call):
                continue
            if has_keyword(call, "shuffle"):
                continue  # shuffle=False (or chosen on purpose): nothing to reshuffle
            holder = tree.statement(call)
            if re.search(r"eval|test|valid|dev|pred", tree.module.code_for_node(holder)[:80]):
                continue  # an evaluation sampler built next to training
            ctx.report(
                call,
                "a DistributedSampler is built here but no epoch loop that ddpfix can follow "
                "calls set_epoch on it: every epoch repeats the same shuffle; call "
                "sampler.set_epoch(epoch) at the start of each epoch by hand",
            )
            return

    def _one_loop(
        self,
        ctx: RuleContext,
        loop: cst.For,
        facts: _Scope,
        loader: str,
        inner: cst.For,
        aliases: set[str],
    ) -> None:
        tree = ctx.tree
        epoch = _epoch_name(loop)
        assert epoch is not None  # run() follows only loops that have one
        if loader not in facts.builds:  # for batch in loaders["train"]
            if not any(True for _ in _set_epoch_receivers(loop)):
                ctx.report(loop, self._cannot_tell(f"a DataLoader in {loader}", epoch))
            return
        builds = [
            b
            for b in facts.builds[loader]
            if tree.order(b.assign) < tree.order(loop) or tree.contains(loop, b.assign)
        ]
        if not builds or _already_set(loop, loader, aliases, builds):
            return
        # every build inside the loop, also one that feeds a second inner loop further down
        # (a task loop in an ``else`` branch): right after a build the sampler is bound
        in_loop = [b for b in builds if tree.contains(loop, b.assign)]
        if in_loop:  # right after each build: the sampler has just been evaluated
            replacements: dict[cst.CSTNode, Around] = {}
            for build in in_loop:
                if build.line is None:  # `if x: loader = DataLoader(...)`: no line to add after
                    ctx.report(build.assign, self._cannot_tell(loader, epoch))
                    return
                call = self._call(tree, build.sampler or f"{loader}.sampler", epoch)
                replacements[build.line] = Around(after=(call,))
            top = self._top_receiver(tree, loop, loader, facts, builds, in_loop)
            if top is not None:  # also built before the loop: epochs that skip the rebuild
                first_statement = loop.body.body[0]
                replacements[first_statement] = Around(before=(self._call(tree, top, epoch),))
            first = in_loop[0]
            receiver = first.sampler or f"{loader}.sampler"
            ctx.fix(
                first.assign,
                f"{loader} is built inside the epoch loop: call {receiver}.set_epoch({epoch}) "
                "right after it is built, or every epoch repeats the same shuffle",
                replacements,
            )
            return
        samplers = {b.sampler for b in builds}
        sampler = next(iter(samplers)) if len(samplers) == 1 else None
        if sampler is not None and _bound_at(tree, sampler, loop):
            receiver = sampler
            message = f"{sampler} may be a DistributedSampler here"
        elif loader in facts.plain and _bound_at(tree, loader, loop):
            receiver = f"{loader}.sampler"
            message = f"{loader}.sampler may be a DistributedSampler here"
        else:
            ctx.report(loop, self._cannot_tell(loader, epoch))
            return
        body = loop.body.with_changes(body=[self._call(tree, receiver, epoch), *loop.body.body])
        ctx.fix(
            loop,
            f"{message}: call set_epoch({epoch}) every epoch, or every epoch repeats the same "
            "shuffle",
            {loop: loop.with_changes(body=body)},
        )

    @staticmethod
    def _top_receiver(
        tree: Tree,
        loop: cst.For,
        loader: str,
        facts: _Scope,
        builds: list[_Build],
        in_loop: list[_Build],
    ) -> str | None:
        """What to call ``set_epoch`` on at the top of the loop when the loader is built
        before it as well as (maybe conditionally) inside it; None when not needed or unsafe."""
        before = [b for b in builds if not tree.contains(loop, b.assign)]
        if not before or any(dominates(tree, b.assign, loop.body.body[-1]) for b in in_loop):
            return None  # rebuilt every epoch: the calls after each build suffice
        samplers = {b.sampler for b in before}
        sampler = next(iter(samplers)) if len(samplers) == 1 else None
        if sampler is not None and _bound_at(tree, sampler, loop):
            return sampler
        if loader in facts.plain and _bound_at(tree, loader, loop):
            return f"{loader}.sampler"
        return None

    @staticmethod
    def _call(tree: Tree, receiver: str, epoch: str) -> cst.BaseStatement:
        quote = preferred_quote(tree.code)
        guard = f"if hasattr({receiver}, {quote}set_epoch{quote}):\n"
        code = f"{guard}    {receiver}.set_epoch({epoch})\n"
        return cst.parse_statement(code, config=tree.module.config_for_parsing)

    @staticmethod
    def _cannot_tell(loader: str, epoch: str) -> str:
        return (
            f"{loader} may draw from a DistributedSampler, but ddpfix cannot tell where the "
            f"sampler is bound: call set_epoch({epoch}) on it every epoch, once it exists, or "
            "every epoch repeats the same shuffle"
        )
