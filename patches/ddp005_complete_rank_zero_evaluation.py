"""DDP005 complete-rank-zero-evaluation: rank 0 evaluating alone reads every example, in order.

``evaluate()`` and ``test()`` in the HuggingFace-style template build
``SequentialSampler(d) if args.local_rank == -1 else DistributedSampler(d)``. Once rank 0 runs
them alone (DDP003, or the ``in [-1, 0]`` gates around ``--do_eval``/``--do_test``), rank 0 gets a
DistributedSampler: it scores 1/world_size of the data, shuffled, and ``test()`` then zips the
examples in file order with those predictions. predictions.txt has half its lines and labels on
the wrong pairs; the official evaluator prints "Missing prediction" and exits 0.

In a function that only ever runs in one process (every call to it is behind a gate that only rank
0 or a lone process passes, or inside such a function) or directly behind such a gate, the rule
replaces the sampler choice by the branch a lone process takes: the ``SequentialSampler``. Both
the conditional expression (either operand order) and the ``if``/``else`` statement form are
handled. Training samplers, which every rank builds, are left alone: a sampler whose loader
feeds a loop of its function that calls ``backward`` or steps an optimizer (through
``tqdm(loader)`` and the like) is a training sampler even when an upstream bug indents it under a
rank-0 gate (DDP013 reports the loader unbound on the other ranks; once dedented, every rank
must still get its own shard).

A function that runs on rank 0 alone at some call sites and on every rank at others (an epoch-0
``results = evaluate(args, model, tokenizer)`` before training, then rank-0 evaluations behind
``if args.local_rank in [-1, 0] and ...:``) gets the ``SequentialSampler`` too: it is right for
both kinds of call. At the every-rank calls each rank then scores the whole set in the same
order and computes the same full metrics (instead of metrics of its own shard); every rank makes
the same number of forward passes, so the DDP wrapper's buffer broadcasts stay matched. Each rank
does world_size times the evaluation work there. Files the function writes are still written by
every rank at those calls (now the same complete content instead of clashing shards); this rule
does not gate them. The rule reports without a fix when an every-rank call reaches a collective
that carries data (``all_gather``/``all_reduce`` of per-shard predictions, accelerate's
``gather_for_metrics``/``reduce``), in the function or on its result in the caller: with a
SequentialSampler it would gather every prediction world_size times. Barriers carry no data and
do not count.

A function that only every rank runs, through the same choice, and that writes files (a
representation dump, a test pass) is reported: each rank writes its own shard to the same path
and the last writer wins. Which fix is right (rank 0 alone, or gathering the shards) depends on
what the callers need.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import TypeVar

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._gates import (
    SINGLE,
    flag_arguments,
    in_rank_zero_region,
    local_names,
    rank_comparison,
    rank_zero_functions,
    reached_through_calls,
    truth,
)
from patches._names import walk
from patches._ranks import rank_dormant, suspected
from patches._syntax import (
    callee_name,
    dotted_name,
    is_collective_call,
    is_save_call,
    module_functions,
    one_line,
)

DISTRIBUTED = "DistributedSampler"
# Collectives that only synchronise: their count, not the data they carry, is what matters, and
# every rank calls them equally often with either sampler.
_NO_DATA = frozenset({"barrier", "monitored_barrier"})
_N = TypeVar("_N", bound=cst.CSTNode)
# accelerate's gathers that ``is_collective_call`` does not list.
_ACCELERATE_GATHERS = frozenset({"gather_for_metrics", "pad_across_processes"})


def _sampler(node: cst.BaseExpression) -> str | None:
    return callee_name(node) if type(node) is cst.Call else None


def _lone_branch(test: cst.BaseExpression, when_true: _N, when_false: _N) -> _N | None:
    """The branch a lone process takes, if ``test`` is a plain local-rank comparison."""
    if rank_comparison(test) is None:
        return None
    value = truth(test, SINGLE)
    if value is None:
        return None
    return when_true if value else when_false


def _assigned(line: cst.SimpleStatementLine) -> cst.BaseExpression:
    return cst.ensure_type(line.body[0], cst.Assign).value


def _single_assignment(suite: cst.BaseSuite) -> tuple[cst.SimpleStatementLine, str] | None:
    if type(suite) is not cst.IndentedBlock or len(suite.body) != 1:
        return None
    line = suite.body[0]
    if not (type(line) is cst.SimpleStatementLine and len(line.body) == 1):
        return None
    assign = line.body[0]
    if not (type(assign) is cst.Assign and len(assign.targets) == 1):
        return None
    target = assign.targets[0].target
    sampler = _sampler(assign.value)
    if type(target) is not cst.Name or sampler is None:
        return None
    return line, target.value


def _sampler_choice(
    node: cst.IfExp | cst.If,
) -> tuple[cst.CSTNode, str] | None:
    """For ``Seq(d) if rank == -1 else Dist(d)`` (or the if/else statement form): the branch a
    lone process takes and its sampler, when the other branch is a DistributedSampler."""
    if type(node) is cst.IfExp:
        lone = _lone_branch(node.test, node.body, node.orelse)
        other = node.orelse if lone is node.body else node.body
        if lone is None or _sampler(other) != DISTRIBUTED:
            return None
        sampler = _sampler(lone)
    else:
        if type(node.orelse) is not cst.Else:
            return None
        then = _single_assignment(node.body)
        otherwise = _single_assignment(node.orelse.body)
        if then is None or otherwise is None or then[1] != otherwise[1]:
            return None
        lone = _lone_branch(node.test, then[0], otherwise[0])
        other = otherwise[0] if lone is then[0] else then[0]
        # each branch is one line of one assignment (_single_assignment)
        if lone is None or _sampler(_assigned(other)) != DISTRIBUTED:
            return None
        sampler = _sampler(_assigned(lone))
        lone = lone.with_changes(leading_lines=node.leading_lines)
    if sampler is None or sampler == DISTRIBUTED:
        return None
    return lone, sampler


#: Calls that train: a backward pass, an optimizer (or scheduler) step.
_TRAINING_CALLS = frozenset({"backward", "step"})


def _feeds_training(tree: Tree, choice: cst.IfExp | cst.If) -> bool:
    """Whether the sampler ``choice`` binds feeds a training loop: a ``for`` loop of its function
    over the loader built from it (or over a name derived from that: ``tqdm(loader)``) that
    calls ``backward`` or steps an optimizer. Such a sampler is every rank's shard of the
    training data, even when an upstream bug indents it under a rank-0 gate."""
    return any(
        any(
            type(c) is cst.Call and callee_name(c) in _TRAINING_CALLS
            for c in walk(loop.body, into_scopes=False)
        )
        for loop in _loops_over(tree, choice)
    )


def _rank_zero_loop(tree: Tree, choice: cst.IfExp | cst.If) -> cst.For | None:
    """A loop over the loader built from ``choice`` that only rank 0 runs, in the function
    that builds it: there rank 0 alone iterates whatever sampler every rank chose."""
    return next(
        (loop for loop in _loops_over(tree, choice) if in_rank_zero_region(tree, loop)), None
    )


def _loops_over(tree: Tree, choice: cst.IfExp | cst.If) -> Iterator[cst.For]:
    """The ``for`` loops of ``choice``'s function over the loader built from the sampler it
    binds (or over a name derived from that: ``tqdm(loader)``)."""
    statement = tree.statement(choice)
    if type(choice) is cst.If:
        statement = next(
            (n for n in walk(choice.body, into_scopes=False) if type(n) is cst.Assign),
            statement,
        )
    derived = _bound_by(statement)
    if not derived:
        return
    scope = tree.scope(choice)
    body = scope.body if type(scope) is cst.FunctionDef else scope
    assigns = [n for n in walk(body, into_scopes=False) if type(n) is cst.Assign]
    grown = True
    while grown:
        grown = False
        for assign in assigns:
            if _mentions(assign.value, derived) and not _bound_by(assign) <= derived:
                derived |= _bound_by(assign)
                grown = True
    for loop in walk(body, into_scopes=False):
        if type(loop) is cst.For and _mentions(loop.iter, derived):
            yield loop


def _bound_by(statement: cst.CSTNode) -> set[str]:
    """The plain names an assignment binds."""
    if type(statement) is not cst.Assign:
        return set()
    return {t.target.value for t in statement.targets if type(t.target) is cst.Name}


def _mentions(node: cst.CSTNode, names: set[str]) -> bool:
    return any(type(n) is cst.Name and n.value in names for n in walk(node, into_scopes=False))


def _data_collective(call: cst.Call) -> str | None:
    """The name of a collective whose result depends on what each rank holds; None otherwise."""
    name = callee_name(call)
    if is_collective_call(call):
        return None if name in _NO_DATA else name
    receiver = dotted_name(call.func.value) if type(call.func) is cst.Attribute else None
    if name in _ACCELERATE_GATHERS and (receiver or "").endswith("accelerator"):
        return name
    return None


def _reached_functions(
    function: cst.FunctionDef, functions: dict[str, cst.FunctionDef], call: cst.Call | None
) -> Iterator[cst.CSTNode]:
    """Every node ``call`` runs in ``function`` and the module functions it calls, in any
    process (only branches dead for the flags are left out)."""
    return reached_through_calls(function, functions, None, flag_arguments(function, call, {}))


def _every_rank_calls(tree: Tree, names: set[str], only: set[str]) -> dict[str, list[cst.Call]]:
    """The calls of ``names`` that every rank makes: outside rank-0 gates and outside functions
    that only rank 0 runs (the sites ``rank_zero_functions`` counts against them)."""
    shadowed = local_names(tree)
    found: dict[str, list[cst.Call]] = {}
    for call in tree.nodes(cst.Call):
        func = call.func
        if not (type(func) is cst.Name and func.value in names):
            continue
        scope = tree.scope(call)
        caller = scope.name.value if type(scope) is cst.FunctionDef else None
        if type(scope) is cst.FunctionDef and func.value in shadowed.get(id(scope), ()):
            continue
        if caller in only or in_rank_zero_region(tree, call):
            continue
        found.setdefault(func.value, []).append(call)
    return found


def _result_collective(tree: Tree, call: cst.Call) -> str | None:
    """A data collective that the caller applies, later in its function, to a name bound from
    ``call`` (``results = evaluate(...)`` then ``dist.all_reduce(results["loss"])``)."""
    statement = tree.statement(call)
    if not (type(statement) is cst.Assign and tree.contains(statement.value, call)):
        return None
    bound = {
        node.value
        for target in statement.targets
        for node in walk(target.target, into_scopes=False)
        if type(node) is cst.Name
    }
    scope = tree.scope(call)
    for later in tree.nodes(cst.Call):
        if tree.order(later) <= tree.order(statement) or tree.scope(later) is not scope:
            continue
        name = _data_collective(later)
        if name is not None and any(
            type(node) is cst.Name and node.value in bound
            for arg in later.args
            for node in walk(arg.value, into_scopes=False)
        ):
            return name
    return None


def _shard_collective(
    tree: Tree,
    function: cst.FunctionDef,
    functions: dict[str, cst.FunctionDef],
    calls: list[cst.Call],
) -> tuple[cst.Call, str] | None:
    """An every-rank call whose evaluation (or its result) goes through a data collective: with
    a SequentialSampler each rank would contribute the whole set, world_size copies of it."""
    for call in calls:
        for node in _reached_functions(function, functions, call):
            name = _data_collective(node) if type(node) is cst.Call else None
            if name is not None:
                return call, name
        name = _result_collective(tree, call)
        if name is not None:
            return call, name
    return None


def _caller(tree: Tree, call: cst.CSTNode) -> str:
    """Where a call is, by function (lines shift as other rules fix the file)."""
    scope = tree.scope(call)
    return f"in {scope.name.value}()" if type(scope) is cst.FunctionDef else "at module level"


def _writes(function: cst.FunctionDef, functions: dict[str, cst.FunctionDef]) -> bool:
    """Whether running ``function`` may write a file (``open(..., "w")``, ``torch.save`` ...)."""
    return any(
        type(node) is cst.Call and is_save_call(node)
        for node in _reached_functions(function, functions, None)
    )


class CompleteRankZeroEvaluation(Rule):
    code = "DDP005"
    name = "complete-rank-zero-evaluation"
    summary = "Rank-0-only evaluation uses a SequentialSampler, not a DistributedSampler shard."
    rationale = __doc__
    settles = True
    triggers = (DISTRIBUTED,)
    examples = (
        Example(
            before="""
                def evaluate(args, model, dataset):
                    sampler = SequentialSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
                    return score(model, sampler)

                if args.do_eval and args.local_rank in [-1, 0]:
                    evaluate(args, model, dataset)
            """,  # noqa: E501
            after="""
                def evaluate(args, model, dataset):
                    sampler = SequentialSampler(dataset)
                    return score(model, sampler)

                if args.do_eval and args.local_rank in [-1, 0]:
                    evaluate(args, model, dataset)
            """,
            messages=(
                "only one process runs this evaluation: use SequentialSampler so it scores every "
                "example in order (a DistributedSampler would give it 1/world_size of the data, "
                "shuffled)",
            ),
        ),
        Example(
            before="""
                def train(args, dataset):
                    sampler = RandomSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)

                train(args, dataset)
            """,  # noqa: E501
        ),
        Example(
            before="""
                def evaluate(args, dataset):
                    sampler = SequentialSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)

                if args.do_eval:
                    evaluate(args, dataset)
            """,  # noqa: E501
        ),
        Example(  # a training loader an upstream bug put under the gate: DDP013 reports it
            before="""
                def train(args, dataset, model, optimizer):
                    if args.local_rank in [-1, 0]:
                        sampler = RandomSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
                        loader = DataLoader(dataset, sampler=sampler)
                    for batch in tqdm(loader):
                        model(batch).backward()
                        optimizer.step()
            """,  # noqa: E501
        ),
        Example(
            before="""
                def evaluate(args, model, dataset):
                    sampler = SequentialSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
                    return score(model, sampler)

                def train(args, model, dataset):
                    results = evaluate(args, model, dataset)  # epoch 0, every rank
                    for epoch in range(args.epochs):
                        if args.local_rank in [-1, 0] and args.evaluate_during_training:
                            results = evaluate(args, model, dataset)
            """,  # noqa: E501
            after="""
                def evaluate(args, model, dataset):
                    sampler = SequentialSampler(dataset)
                    return score(model, sampler)

                def train(args, model, dataset):
                    results = evaluate(args, model, dataset)  # epoch 0, every rank
                    for epoch in range(args.epochs):
                        if args.local_rank in [-1, 0] and args.evaluate_during_training:
                            results = evaluate(args, model, dataset)
            """,
            messages=(
                "evaluate() runs on rank 0 alone at some call sites and on every rank at others "
                "(in train()): use SequentialSampler at both, so rank 0 scores every example in "
                "order and every rank computes the same full metrics (a DistributedSampler gives "
                "each 1/world_size of the data, shuffled)",
            ),
        ),
        Example(
            before="""
                def evaluate(args, model, dataset):
                    sampler = SequentialSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)
                    preds = predict(model, sampler)
                    torch.distributed.all_gather_object(shards, preds)

                results = evaluate(args, model, dataset)
                if args.local_rank in [-1, 0]:
                    results = evaluate(args, model, dataset)
            """,  # noqa: E501
            reports=1,
            messages=(
                "evaluate() runs on rank 0 alone at some call sites and on every rank at others "
                "(at module level), where it goes through all_gather_object(): with a "
                "SequentialSampler every rank would contribute the whole set, world_size copies "
                "of it; with the DistributedSampler rank 0 alone scores a shard. Split the "
                "rank-0 path by hand",
            ),
        ),
        Example(
            before="""
                def main(args, model, dev):
                    sampler = SequentialSampler(dev) if args.local_rank == -1 else DistributedSampler(dev)
                    loader = DataLoader(dev, sampler=sampler)
                    for epoch in range(args.epochs):
                        for batch in loader:  # every rank
                            model(batch)
                    if args.local_rank in [-1, 0]:
                        for batch in tqdm(loader):
                            write_predictions(model(batch))
            """,  # noqa: E501
            reports=1,
            messages=(
                "every rank builds this evaluation loader, but only rank 0 runs `for ... in "
                "tqdm(loader)` in main(): there rank 0 alone scores a DistributedSampler shard "
                "(1/world_size of the data, shuffled). Use the SequentialSampler where rank 0 "
                "evaluates alone, by hand (the loader is shared with code every rank runs)",
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        only, sometimes = rank_zero_functions(tree)
        functions = module_functions(tree.module)
        every_rank = _every_rank_calls(tree, sometimes, only) if sometimes else {}
        for node in tree.nodes(cst.IfExp, cst.If):
            choice = _sampler_choice(node)
            if choice is None:
                continue
            lone, sampler = choice
            if _feeds_training(tree, node):
                continue  # a training loader (DDP013 reports one that rank 0 alone builds)
            scope = tree.scope(node)
            function = scope.name.value if type(scope) is cst.FunctionDef else None
            if in_rank_zero_region(tree, node) or function in only:
                ctx.fix(
                    node,
                    f"only one process runs this evaluation: use {sampler} so it scores every "
                    f"example in order (a {DISTRIBUTED} would give it 1/world_size of the data, "
                    "shuffled)",
                    {node: lone},
                )
            elif function in sometimes and function in functions:
                calls = every_rank.get(function, [])
                where = ", ".join(dict.fromkeys(_caller(tree, c) for c in calls))
                blocker = _shard_collective(tree, functions[function], functions, calls)
                if blocker is not None:
                    call, collective = blocker
                    ctx.report(
                        node,
                        f"{function}() runs on rank 0 alone at some call sites and on every rank "
                        f"at others ({_caller(tree, call)}), where it goes through "
                        f"{collective}(): with a {sampler} every rank would contribute the whole "
                        f"set, world_size copies of it; with the {DISTRIBUTED} rank 0 alone "
                        "scores a shard. Split the rank-0 path by hand",
                    )
                    continue
                writes = (
                    "; the files it writes are still written by every rank there (now the "
                    "same complete content; this rule does not gate them)"
                    if _writes(functions[function], functions)
                    else ""
                )
                ctx.fix(
                    node,
                    f"{function}() runs on rank 0 alone at some call sites and on every rank at "
                    f"others ({where}): use {sampler} at both, so rank 0 scores every "
                    "example in order and every rank computes the same full metrics (a "
                    f"{DISTRIBUTED} gives each 1/world_size of the data, shuffled){writes}",
                    {node: lone},
                )
            elif (alone := _rank_zero_loop(tree, node)) is not None:
                ctx.report(
                    node,
                    "every rank builds this evaluation loader, but only rank 0 runs "
                    f"`for ... in {one_line(tree, alone.iter, 40)}` {_caller(tree, alone)}: "
                    "there rank 0 alone scores a "
                    f"{DISTRIBUTED} shard (1/world_size of the data, shuffled). Use the "
                    f"{sampler} where rank 0 evaluates alone, by hand (the loader is shared "
                    "with code every rank runs)",
                )
            elif _shard_writer(tree, functions, function, sampler):
                ctx.report(
                    node,
                    f"{function}() runs on every rank through a {DISTRIBUTED} shard and writes "
                    "files: each rank writes its own shard to the same path and the last one "
                    f"wins. Run it on rank 0 alone (with the {sampler}), or gather the shards "
                    "before writing",
                )


def _shard_writer(
    tree: Tree, functions: dict[str, cst.FunctionDef], function: str | None, sampler: str
) -> bool:
    """Whether ``function``, run on every rank through the evaluation sampler choice, writes
    files from its shard (and gathers nothing first): what the rule reports and what the
    post-condition forbids a fix to bring about."""
    return (
        function is not None
        and function in functions
        and sampler == "SequentialSampler"
        and _writes(functions[function], functions)
        and not _shard_collective(tree, functions[function], functions, [])
    )


def shard_writers(tree: Tree) -> dict[Hashable, str]:
    """Post-condition: no function that every rank runs through a DistributedSampler shard
    writes files (each rank writes its own shard to one path; the last writer wins). Checked
    in the engine like the rank model's, so a fix that makes this happen (DDP001 reading
    LOCAL_RANK wakes the shard up) is withdrawn; in a version whose rank is dormant under a
    launcher, every process takes the lone branch and writes the whole set."""
    if rank_dormant(tree) or DISTRIBUTED not in tree.code:
        return {}
    only, sometimes = rank_zero_functions(tree)
    functions = module_functions(tree.module)
    found: dict[Hashable, str] = {}
    for node in tree.nodes(cst.IfExp, cst.If):
        choice = _sampler_choice(node)
        if choice is None or in_rank_zero_region(tree, node):
            continue
        scope = tree.scope(node)
        function = scope.name.value if type(scope) is cst.FunctionDef else None
        if function is None or function in only or function in sometimes:
            continue
        if _shard_writer(tree, functions, function, choice[1]):
            found[("shard-write", function)] = (
                f"{function}() would run on every rank through a {DISTRIBUTED} shard and write "
                "files: each rank writes its own shard to the same path"
            )
    return suspected(tree, found)
