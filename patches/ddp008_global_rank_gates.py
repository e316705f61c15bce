"""DDP008 global-rank-gates: one writer per job, not one per node.

``args.local_rank in [-1, 0]`` is true on local rank 0 of *every* node. On one machine that is
rank 0; in a multi-node job every node's first process evaluates, saves the checkpoint and writes
the predictions, and on a shared filesystem they overwrite each other (or interleave). The rule
rewrites such gates, where the body evaluates or saves (the same test as DDP003), to the global
rank: ``int(os.environ.get("RANK", args.local_rank)) in [-1, 0]``. Every launcher sets ``RANK``;
without one the expression falls back to the local rank, so single-process and single-node runs
behave exactly as before.

Gates that bind and gates that read must agree. When a rewritten gate (or one the script
already gates on the global rank) binds a name (``tb_writer = SummaryWriter(log_dir)``) that
another local-rank-0 gate of the same function (or of the module-level code) reads, or reads a
name such a gate binds, that gate is rewritten the same way even though it neither saves nor
evaluates, and so on transitively; otherwise local rank 0 of the second node skips the first
gate and dies with ``UnboundLocalError`` in the second. When one gate of such a group cannot be
rewritten (the cache save of a per-node barrier pair, a gate that joins a barrier, in either
branch, or a test the rule does not rewrite, such as ``local_rank in [-1, 0] or debug``), none of
the group is, and the rule reports why. A gate of the group with an ``else`` (``tb_writer =
None`` there) is rewritten too: the other nodes' local rank 0 then take the ``else``, as every
other rank does.

In a script whose rank stays dormant under a modern launcher (``patches/_ranks.rank_dormant``:
every process keeps ``local_rank == -1`` and trains alone, with no process group), ``RANK`` is
the one thing that tells the processes apart, so the rewrite is no longer a no-op on one node.
The rank model withdraws it where the split matters: a save that every process reads back, and
an early stop (the gate's ``return``, or a patience it counts that every process's ``break``
reads) in a loop that trains on: rank 0 would stop alone while the others train every epoch and
save over its model. A gate whose body only logs or saves what nobody reads back still goes on
``RANK``.

Gates that are already global are left alone: a test with ``torch.distributed.get_rank() == 0``,
``int(os.environ["RANK"]) == 0``, ``args.rank == 0``, ``args.global_rank in [-1, 0]``,
``accelerator.is_main_process``, ``trainer.is_world_process_zero()`` or ``is_main_process(...)``
among its ``and`` terms (or ``local_rank == -1 or get_rank() == 0``), or a gate inside such a
gate, gets no redundant ``RANK`` clause.

The barrier pairs around downloading and caching (``if args.local_rank not in [-1, 0]:
barrier()`` … ``if args.local_rank == 0: barrier()``, in one function) are per node by nature
when each node has its own cache, and stay; so does the cache save between their two halves
(the HF template's ``if args.local_rank in [-1, 0]: torch.save(features, cached_features_file)``,
also in an ``if``/``else`` branch there): every node builds its own cache once, and the node's
other ranks wait for it. If the cache directory is shared between nodes, set ``shared_cache =
true`` in ``[tool.ddpfix.rules.DDP008]``: the pairs and the saves between them then gate on the
global rank together, so one process in the whole job builds the cache and every other waits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from patcher.rule import Example, Option, Rule, RuleContext
from patcher.tree import Replacement, Tree
from patches._gates import (
    OTHER,
    RANK0,
    SINGLE,
    conjuncts,
    gates,
    global_rank_source,
    rank_comparison,
    truth,
)
from patches._names import BINDERS, SCOPES, bound_names, is_read, walk
from patches._syntax import (
    callee_name,
    calls_in,
    global_rank,
    int_collection,
    int_literal,
    is_collective_call,
    is_eval_call,
    is_local_rank,
    is_save_call,
    preferred_quote,
    string_value,
)

RANK_ZERO = (frozenset({-1, 0}), frozenset({0}))
NOT_RANK_ZERO = frozenset({-1, 0})
_BARRIERS = frozenset({"barrier", "monitored_barrier"})
# Booleans (attribute or call) that are true on global rank 0 only.
_MAIN_PROCESS = frozenset({"is_main_process", "is_world_process_zero"})
# ``args.rank``, ``self.global_rank``, ``accelerator.process_index``: global ranks.
_RANK_ATTRS = frozenset({"rank", "global_rank", "world_rank", "process_index"})
_RANK_NAMES = frozenset({"global_rank", "world_rank"})


# --- what is already global ------------------------------------------------------------------


def _global_rank_expr(node: cst.BaseExpression) -> bool:
    """``get_rank()``, ``int(os.environ["RANK"])``, ``os.environ.get("RANK")``, ``args.rank``."""
    if global_rank_source(node) is not None:
        return True
    if type(node) is cst.Attribute:
        return node.attr.value in _RANK_ATTRS
    if type(node) is cst.Name:
        return node.value in _RANK_NAMES
    if type(node) is cst.Subscript and len(node.slice) == 1:  # os.environ["RANK"]
        index = node.slice[0].slice
        return type(index) is cst.Index and string_value(index.value) == "RANK"
    if type(node) is cst.Call and callee_name(node) in ("get", "getenv") and node.args:
        return string_value(node.args[0].value) == "RANK"
    return False


def _rank_values(node: cst.BaseExpression) -> frozenset[int] | None:
    text = string_value(node)
    if text is not None:
        return frozenset({int(text)}) if text.lstrip("-").isdigit() else None
    value = int_literal(node)
    return frozenset({value}) if value is not None else int_collection(node)


def _global_zero(node: cst.BaseExpression) -> bool:
    """Whether ``node`` is true on global rank 0 (or a lone process) only."""
    if type(node) is cst.BooleanOperation:
        sides = [node.left, node.right]
        if type(node.operator) is cst.And:
            return any(_global_zero(side) for side in sides)
        # ``local_rank == -1 or get_rank() == 0``: a lone process, or global rank 0
        lone = [truth(s, RANK0) is False and truth(s, OTHER) is False for s in sides]
        zero = [_global_zero(s) for s in sides]
        return any(zero) and all(z or one for z, one in zip(zero, lone))
    if type(node) is cst.Attribute:
        return node.attr.value in _MAIN_PROCESS
    if type(node) is cst.Call:
        return callee_name(node) in _MAIN_PROCESS
    if type(node) is not cst.Comparison or len(node.comparisons) != 1:
        return False
    target = node.comparisons[0]
    left, right = node.left, target.comparator
    if not _global_rank_expr(left) and type(target.operator) is cst.Equal:
        left, right = right, left
    if not _global_rank_expr(left):
        return False
    if type(target.operator) is cst.Equal:
        values = _rank_values(right)
    elif type(target.operator) is cst.In:
        values = int_collection(right)
    else:
        return False
    return values is not None and 0 in values and values <= NOT_RANK_ZERO


def _ours(node: cst.BaseExpression) -> bool:
    """``int(os.environ.get("RANK", x.local_rank)) ...``: a gate this rule (or DDP011) made
    global. Unlike a global test the script was written with, it does not make the gates
    inside it redundant: they were rewritten along with it."""
    if type(node) is not cst.Comparison or global_rank_source(node.left) != "env":
        return False
    call = node.left
    assert type(call) is cst.Call
    inner = call.args[0].value
    return type(inner) is cst.Call and any(is_local_rank(a.value) for a in inner.args[1:])


def _on_global_rank(term: cst.BaseExpression) -> bool:
    """True on global rank 0 only, or any other test of the global rank (the first half of a
    shared cache's barrier pair: ``int(os.environ.get("RANK", ...)) not in [-1, 0]``)."""
    if type(term) is cst.Comparison and len(term.comparisons) == 1:
        if _global_rank_expr(term.left):
            return True
    return _global_zero(term)


def _global_test(test: cst.BaseExpression, *, ours: bool = True) -> bool:
    return any(_on_global_rank(t) and (ours or not _ours(t)) for t in conjuncts(test))


def _global_around(tree: Tree, gate: cst.If) -> bool:
    """A test the script wrote around ``gate`` admits global rank 0 only."""
    return any(_global_test(test, ours=False) for test in gates(tree, gate))


# --- names a gate binds and reads --------------------------------------------------------------


_BINDING = frozenset(BINDERS)
_DEFINING = frozenset((cst.FunctionDef, cst.ClassDef))
_IMPORTS = frozenset((cst.Import, cst.ImportFrom))


def _names(tree: Tree, gate: cst.If) -> tuple[frozenset[str], frozenset[str]]:
    """(names the gate binds, names it reads before binding them in it): a read counts when
    its statement is not after the gate's first binding of the name (``x = x + 1`` and ``x +=
    1`` read ``x``; ``x = f()`` then ``g(x)`` does not). Node types are compared exactly
    (LibCST's are final): ``isinstance`` on its tuples is the slow part."""
    binding: set[int] = set()
    first: dict[str, int] = {}  # name → source order of the statement that first binds it
    own: set[str] = set()  # comprehension variables: not read from outside, not exported

    def bind(name: str, at: cst.CSTNode) -> None:
        order = tree.order(tree.statement(at))
        if order < first.get(name, order + 1):
            first[name] = order

    names: list[cst.Name] = []
    # dispatch on the exact type (cheaper than isinstance chains on every node of every gate);
    # mypy does not narrow through ``kind``: the ignores below name what it cannot see
    for node in walk(gate, into_scopes=False):
        kind = type(node)
        if kind is cst.Name:
            names.append(node)  # type: ignore[arg-type]
        elif kind in _BINDING:
            for name in bound_names(node):
                binding.add(id(name))
                bind(name.value, node)
        elif kind is cst.CompFor:
            target = node.target  # type: ignore[attr-defined]
            own.update(n.value for n in walk(target, into_scopes=False) if type(n) is cst.Name)
        elif kind in _DEFINING:
            bind(node.name.value, node)  # type: ignore[attr-defined]
        elif kind in _IMPORTS and type(node.names) is not cst.ImportStar:  # type: ignore[attr-defined]
            for alias in node.names:  # type: ignore[attr-defined]
                bound = alias.asname.name if alias.asname else alias.name
                while type(bound) is cst.Attribute:
                    bound = bound.value
                if type(bound) is cst.Name:
                    bind(bound.value, node)
    reads = set()
    for name in names:
        if name.value in own or name.value in reads or not is_read(tree, name):
            continue
        bound_at = first.get(name.value)
        if id(name) in binding:  # x += 1 reads x (other bindings only bind)
            if isinstance(tree.parent(name), cst.AugAssign):
                reads.add(name.value)
        elif bound_at is None or tree.order(tree.statement(name)) <= bound_at:
            reads.add(name.value)
    return frozenset(first), frozenset(reads)


# --- the gates of one scope ------------------------------------------------------------------


@dataclass(frozen=True)
class _Joins:
    """The ``if`` statements (by id) that join a barrier or another collective: in their body,
    and anywhere in them (``else`` included). Found from the calls, not by walking every
    ``if``."""

    body: frozenset[int]
    anywhere: frozenset[int]

    @staticmethod
    def of(tree: Tree) -> _Joins:
        body: set[int] = set()
        anywhere: set[int] = set()
        for call in tree.nodes(cst.Call):
            if not (callee_name(call) in _BARRIERS or is_collective_call(call)):
                continue
            child: cst.CSTNode = call
            for ancestor in tree.ancestors(call):
                if isinstance(ancestor, SCOPES):
                    break
                if type(ancestor) is cst.If:
                    anywhere.add(id(ancestor))
                    if child is ancestor.body:
                        body.add(id(ancestor))
                child = ancestor
        return _Joins(frozenset(body), frozenset(anywhere))


def _rank_tests(tree: Tree) -> tuple[frozenset[int], frozenset[int]]:
    """The ``if`` statements (by id) whose test compares a local or global rank, and those whose
    test has ``local_rank in [-1, 0]`` anywhere, also under ``or`` (local rank 0 of every node
    passes ``local_rank in [-1, 0] or args.debug``). Found from the comparisons."""
    ranked: set[int] = set()
    rank_zero: set[int] = set()
    for comparison in tree.nodes(cst.Comparison):
        found = rank_comparison(comparison)
        if found is None and not _global_rank_expr(comparison.left):
            continue
        child: cst.CSTNode = comparison
        for ancestor in tree.ancestors(comparison):
            if type(ancestor) is cst.If:
                if child is ancestor.test:
                    ranked.add(id(ancestor))
                    if found is not None and found[2] and found[1] in RANK_ZERO:
                        rank_zero.add(id(ancestor))
                break
            if isinstance(ancestor, (cst.BaseStatement, cst.BaseSmallStatement)):
                break
            child = ancestor
    return frozenset(ranked), frozenset(rank_zero)


def _local_terms(test: cst.BaseExpression, *, barrier: bool) -> list[cst.Comparison]:
    """The ``and`` terms to rewrite: ``local_rank in [-1, 0]`` / ``== 0`` (and, for a barrier
    gate of a shared cache, ``not in [-1, 0]``). One such term on the global rank makes the
    whole ``and`` chain global; none (``local_rank in [-1, 0] or debug``) is a form the rule
    does not rewrite."""
    terms = []
    for term in conjuncts(test):
        found = rank_comparison(term)
        if found is None:
            continue
        _, values, positive = found
        if (positive and values in RANK_ZERO) or (
            barrier and not positive and values == NOT_RANK_ZERO
        ):
            assert type(term) is cst.Comparison
            terms.append(term)
    return terms


@dataclass
class _Gate:
    """An ``if`` of one scope that local rank 0 may run, or one already on the global rank."""

    node: cst.If
    global_: bool
    terms: list[cst.Comparison]
    writes: bool = False
    barrier: bool = False  # joins a barrier and neither saves nor evaluates
    seed: bool = False  # rewritten for what it does itself
    blocker: str | None = None  # why it cannot be rewritten
    binds: frozenset[str] = field(default_factory=frozenset)
    reads: frozenset[str] = field(default_factory=frozenset)


def _barrier_pairs(tree: Tree, ifs: list[cst.If], joins: _Joins) -> list[tuple[cst.If, cst.If]]:
    """``if local_rank not in [-1, 0]: barrier()`` … ``if local_rank == 0: barrier()``: the
    first half keeps local rank 0 out, the second admits it alone; each first half pairs with
    the next second half."""
    firsts, pairs = [], []
    for gate in ifs:
        if id(gate) not in joins.body:
            continue
        test = gate.test
        if truth(test, RANK0) is False and truth(test, OTHER) is not False:
            firsts.append(gate)
        elif (
            firsts
            and truth(test, SINGLE) is False
            and truth(test, OTHER) is False
            and truth(test, RANK0) is not False
        ):
            first = firsts.pop()
            if tree.after(gate, first):
                pairs.append((first, gate))
    return pairs


def _short(tree: Tree, gate: cst.If) -> str:
    text = " ".join(tree.module.code_for_node(gate.test).split())
    return f"if {text if len(text) <= 60 else text[:57] + '...'}:"


def _scope_gates(
    tree: Tree,
    ifs: list[cst.If],
    joins: _Joins,
    tests: tuple[frozenset[int], frozenset[int]],
    shared_cache: bool,
) -> tuple[list[_Gate], list[tuple[int, int]]]:
    """The gates of one scope that local rank 0 may run (and the global ones), with the edges
    that tie them: shared names, and for a shared cache the barrier pairs and their saves."""
    pairs = _barrier_pairs(tree, ifs, joins)
    halves = {id(g) for pair in pairs for g in pair}
    found: list[_Gate] = []
    index: dict[int, int] = {}
    edges: list[tuple[int, int]] = []
    ranked, rank_zero = tests
    for gate in ifs:
        own = _global_test(gate.test)
        joined = id(gate) in joins.body
        if not (own or id(gate) in ranked or (shared_cache and joined)):
            continue
        rank0 = truth(gate.test, RANK0) is not False and (
            id(gate) in rank_zero or truth(gate.test, OTHER) is False
        )
        if not (own or rank0 or (shared_cache and joined)):
            continue
        is_global = own or _global_around(tree, gate)
        writes = any(is_eval_call(c) or is_save_call(c) for c in calls_in(gate.body))
        barrier = joined and not writes and (id(gate) in halves or _barrier_only(gate.body))
        if not (is_global or rank0 or barrier):
            continue
        terms = [] if is_global else _local_terms(gate.test, barrier=shared_cache and barrier)
        info = _Gate(gate, is_global, terms, writes, barrier)
        inside = [p for p in pairs if tree.after(gate, p[0]) and tree.after(p[1], gate)]
        pinned = bool(inside) and writes and not shared_cache
        if not is_global:
            joined_anywhere = id(gate) in joins.anywhere
            info.blocker = _blocker(info, pinned, joined_anywhere, shared_cache)
            info.seed = bool(terms) and (
                (writes and gate.orelse is None and not pinned) or (shared_cache and barrier)
            )
        index[id(gate)] = len(found)
        found.append(info)
        if shared_cache and writes:
            edges.extend((index[id(p[0])], index[id(gate)]) for p in inside if id(p[0]) in index)
    if shared_cache:
        edges.extend((index[id(a)], index[id(b)]) for a, b in pairs if id(a) in index)
    if not any(info.seed or info.global_ for info in found):
        return found, edges  # nothing would be made global here: no ties to find
    for info in found:
        info.binds, info.reads = _names(tree, info.node)
    for i, one in enumerate(found):
        for j in range(i + 1, len(found)):
            two = found[j]
            if tree.contains(one.node, two.node) or tree.contains(two.node, one.node):
                continue
            if (one.reads & two.binds) or (one.binds & two.reads):
                edges.append((i, j))
    return found, edges


def _blocker(gate: _Gate, pinned: bool, joins: bool, shared_cache: bool) -> str | None:
    """Why ``gate`` cannot be gated on the global rank; None when it can."""
    if not gate.terms:
        return "has a test the rule does not rewrite"
    if pinned:
        return (
            "saves a cache between the halves of a per-node barrier pair "
            "(set shared_cache = true if the nodes share the cache)"
        )
    if joins and not (shared_cache and gate.barrier):
        return "joins a barrier that every node's local rank 0 must reach"
    return None  # an else branch is fine: other nodes' local rank 0 then run it, as rank 1 does


def _barrier_only(body: cst.BaseSuite) -> bool:
    calls = list(calls_in(body))
    return bool(calls) and all(callee_name(c) in _BARRIERS for c in calls)


def _groups(count: int, edges: list[tuple[int, int]]) -> list[list[int]]:
    """Connected components, each in source order."""
    neighbours: dict[int, set[int]] = {i: set() for i in range(count)}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen: set[int] = set()
    groups = []
    for start in range(count):
        if start in seen:
            continue
        group, stack = [], [start]
        seen.add(start)
        while stack:
            current = stack.pop()
            group.append(current)
            for other in neighbours[current] - seen:
                seen.add(other)
                stack.append(other)
        groups.append(sorted(group))
    return groups


def _shared(one: _Gate, others: list[_Gate]) -> list[str]:
    names: set[str] = set()
    for other in others:
        if other is not one:
            names |= (one.reads & other.binds) | (one.binds & other.reads)
    return sorted(names)


def _global(term: cst.Comparison, quote: str) -> cst.BaseExpression:
    """``int(os.environ.get("RANK", x.local_rank)) <the same comparison>``."""
    found = rank_comparison(term)
    assert found is not None
    if found[0] is term.left:
        return term.with_changes(left=global_rank(found[0], quote))
    # -1 == x.local_rank: the rank goes left, as the rule writes it
    operator = term.comparisons[0].with_changes(comparator=term.left)
    return term.with_changes(left=global_rank(found[0], quote), comparisons=[operator])


class GlobalRankGates(Rule):
    code = "DDP008"
    name = "global-rank-gates"
    summary = "Saves and evaluation gated on local rank 0 run on global rank 0 (RANK) only."
    rationale = __doc__
    settles = True
    triggers = ("local_rank",)
    options = {
        "shared_cache": Option(
            False, "the nodes share the cache directory: barrier pairs gate on the global rank"
        )
    }
    examples = (
        Example(
            before="""
                import os
                if args.local_rank in [-1, 0] and args.save_steps > 0:
                    torch.save(model.state_dict(), path)
            """,
            after="""
                import os
                if int(os.environ.get("RANK", args.local_rank)) in [-1, 0] and args.save_steps > 0:
                    torch.save(model.state_dict(), path)
            """,
            messages=(
                "local rank 0 exists on every node: gate saves and evaluation on the global rank "
                "(RANK)",
            ),
        ),
        Example(
            before="""
                import os
                def train(args, model):
                    if args.local_rank in [-1, 0]:
                        tb_writer = SummaryWriter(args.output_dir)
                        torch.save(args, os.path.join(args.output_dir, "args.bin"))
                    loss = model(batch)
                    if args.local_rank in [-1, 0]:
                        tb_writer.add_scalar("loss", loss)
            """,
            after="""
                import os
                def train(args, model):
                    if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:
                        tb_writer = SummaryWriter(args.output_dir)
                        torch.save(args, os.path.join(args.output_dir, "args.bin"))
                    loss = model(batch)
                    if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:
                        tb_writer.add_scalar("loss", loss)
            """,
            messages=(
                "local rank 0 exists on every node: gate saves and evaluation on the global rank "
                "(RANK)",
                "local rank 0 exists on every node: this gate shares tb_writer with gates on the "
                "global rank (RANK); gate it the same way, or other nodes' local rank 0 read "
                "what they never bound",
            ),
        ),
        Example(
            before="""
                def load_and_cache_examples(args, evaluate=False):
                    if args.local_rank not in [-1, 0] and not evaluate:
                        torch.distributed.barrier()  # the node's other ranks use the cache
                    if os.path.exists(cached_file):
                        features = torch.load(cached_file)
                    else:
                        features = convert_examples_to_features(args)
                        if args.local_rank in [-1, 0]:
                            torch.save(features, cached_file)
                    if args.local_rank == 0 and not evaluate:
                        torch.distributed.barrier()
                    return features
            """,
        ),
        Example(
            before="""
                if args.local_rank in [-1, 0] and torch.distributed.get_rank() == 0:
                    torch.save(model.state_dict(), path)
                if accelerator.is_main_process:
                    if args.local_rank in [-1, 0]:
                        evaluate(args, model)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        shared_cache = bool(self.option(ctx, "shared_cache"))
        quote = preferred_quote(tree.code)
        scopes: dict[int, list[cst.If]] = {}
        for gate in tree.nodes(cst.If):
            scopes.setdefault(id(tree.scope(gate)), []).append(gate)
        joins, tests = _Joins.of(tree), _rank_tests(tree)
        for ifs in scopes.values():
            found, edges = _scope_gates(tree, ifs, joins, tests, shared_cache)
            for group in _groups(len(found), edges):
                members = [found[i] for i in group]
                local = [g for g in members if not g.global_]
                seeds = [g for g in local if g.seed]
                if not local or not (seeds or len(local) < len(members)):
                    continue  # nothing made global, or every gate stays per node together
                blocked = [g for g in local if g.blocker]
                if blocked:
                    self._report(ctx, members, seeds or blocked, blocked[0])
                    continue
                for gate in local:
                    self._fix(ctx, gate, members, quote)

    @staticmethod
    def _fix(
        ctx: RuleContext,
        gate: _Gate,
        members: list[_Gate],
        quote: str,
    ) -> None:
        assert gate.terms
        if gate.seed:
            what = (
                "the shared cache" if gate.barrier and not gate.writes else "saves and evaluation"
            )
            message = f"local rank 0 exists on every node: gate {what} on the global rank (RANK)"
        else:
            names = ", ".join(_shared(gate, members))
            message = (
                f"local rank 0 exists on every node: this gate shares {names} with gates on the "
                "global rank (RANK); gate it the same way, or other nodes' local rank 0 read "
                "what they never bound"
            )
        fixes: dict[cst.CSTNode, Replacement] = {t: _global(t, quote) for t in gate.terms}
        ctx.fix(gate.node, message, fixes, imports=("os",))

    @staticmethod
    def _report(ctx: RuleContext, members: list[_Gate], seeds: list[_Gate], blocker: _Gate) -> None:
        names = ", ".join(_shared(blocker, members))
        tied = f"tied by {names} to" if names else "tied to"
        ctx.report(
            seeds[0].node,
            f"local rank 0 exists on every node, but this gate is {tied} "
            f"`{_short(ctx.tree, blocker.node)}`, which {blocker.blocker}: the gates that bind "
            "and read these names are left per node; gate them on the global rank together by "
            "hand",
        )
