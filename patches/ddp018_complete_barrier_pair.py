"""DDP018 complete-barrier-pair: rank 0 joins the barrier the other ranks wait in.

The HF template caches a dataset with a barrier pair: ``if args.local_rank not in [-1, 0]:
torch.distributed.barrier()`` before building it (the others wait), and ``if args.local_rank ==
0: torch.distributed.barrier()`` after it (rank 0, done writing the cache, lets them go and read
it). Forks drop the second half (CodeXGLUE's NL-code-search-WebQuery ``run_classifier.py``): the
other ranks wait in a barrier rank 0 never joins, while rank 0 goes on to wrap its model in DDP,
a collective of its own. Under ``python -m torch.distributed.launch`` that hangs; under torchrun
the rank never reaches the script, so DDP001's read of LOCAL_RANK would wake the hang up and the
engine withdraws it (the script trains as N independent copies).

The rule adds the missing half, in the script's own rank expression and with the other terms of
the waiting half's test (``and not evaluate`` stays), in the same block, right before the first
statement there that reaches a collective on rank 0 (a ``torch.distributed`` call, a DDP wrap,
or a module function that joins one, such as ``train(...)``): the latest point that is still
before it, so everything between (building and caching the dataset) happens on rank 0 first and
the others read its cache. It reports instead when that point is not certain:

- no statement after the waiting half in its block reaches a collective on rank 0 (the next one
  is after the block, or in a caller), or that statement is a loop, ``with`` or ``try``, or an
  ``if`` whose collective is not in its test or its first statement (work before it would run
  after the others are let go);
- rank 0 may leave the block before it (``return``, ``raise``, ``break``, ``continue``,
  ``sys.exit()``);
- a non-rank term of the waiting half's test may change before that point (it calls, indexes,
  or reads a name or attribute assigned in between: ``not os.path.exists(cached)`` turns False
  once rank 0 has written the cache, so its copy would keep rank 0 out);
- the function reached there has a rank-0-only barrier of its own (whose half is the right one
  cannot be told).

An existing rank-0 half is taken as the pair when it follows the waiting half in the same
function; one that rank 0 reaches only on some paths (inside an ``if`` of its own or one whose
copied terms may change in between, not in the same loops as the waiting half, after a
``return``, ``break``, ``continue``, ``sys.exit()`` or caught ``raise`` in between; an
uncaught ``raise`` crashes rank 0 and the launcher ends the others) is reported, and so is
one that rank 0 reaches only after another collective (it is in that collective alone: hang).
Barrier halves are matched in order, as barriers meet: the k-th rank-0 half with the k-th
waiting half before it (a rank-0 half of an earlier pair in between is no such collective).

A pair that never runs is reported too: ``if args.local_rank not in [-1, 0] and not evaluate:``
in a cache loader that has no ``evaluate`` parameter reads the module's ``evaluate()``, always
true, so neither half runs and every rank builds the cache (or reads rank 0's half-written file).

The engine's post-condition sees pairs the same way (``patches/_barriers.py``): a rank-0 half
rank 0 may skip is no pair, so DDP001 does not wake such a barrier up (DNABERT's
``run_finetune.py`` closes its model-loading pair only when neither ``--do_visualize`` nor
``--do_ensemble_pred`` is given); with rank 0's half added, DDP001's read of LOCAL_RANK stands.
The rule judges the script with its rank awake (as DDP001 leaves it), also while it is still
dormant, so both fixes are made in the same pass and the post-condition judges them together; in
a script whose rank stays dormant the added half is dead code (``local_rank`` is -1 everywhere).
The added half is a collective of its own, which the other rules' analyses see: the rule does not
settle.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around
from patches._barriers import (
    code,
    halves,
    is_barrier,
    is_exit,
    is_rank_zero_half,
    unsteady_term,
    unsure,
)
from patches._gates import conjuncts, rank_comparison
from patches._names import names_bound_in, parameters, walk
from patches._ranks import RANK0, RankModel, model
from patches._syntax import callee_name, is_collective_call, module_functions

_HAND = "add `if {test}: {call}` where rank 0 is done with what the others wait for"


def _rank_zero_test(gate: cst.If, term: cst.BaseExpression) -> str:
    """The waiting half's test with its rank term turned to rank 0: ``args.local_rank not in
    [-1, 0] and not evaluate`` → ``args.local_rank == 0 and not evaluate``."""
    found = rank_comparison(term)
    assert found is not None  # as waiting_gate checked
    rank = code(found[0])
    zero = cst.parse_expression(f"{rank} == 0")
    if gate.test is term:
        return code(zero)
    return code(gate.test.deep_replace(term, zero))


def _collective_on_rank_zero(m: RankModel, node: cst.CSTNode, skip: cst.CSTNode) -> cst.Call | None:
    """The first call in ``node`` (not in ``skip``) that joins a collective on rank 0."""
    for child in walk(node, into_scopes=False):
        if (
            type(child) is cst.Call
            and not m.tree.contains(skip, child)
            and m.runs(child, RANK0) is not False
            and m.collective(child, RANK0) is not None
        ):
            return child
    return None


def _callees(m: RankModel, node: cst.CSTNode) -> set[str]:
    """The module functions ``node`` calls, transitively."""
    found: set[str] = set()
    pending = [node]
    while pending:
        for child in walk(pending.pop(), into_scopes=False):
            if type(child) is cst.Call and type(child.func) is cst.Name:
                name = child.func.value
                if name in m.functions and name not in found:
                    found.add(name)
                    pending.append(m.functions[name])
    return found


def _placement(m: RankModel, gate: cst.If) -> cst.CSTNode | str:
    """The statement rank 0's half goes right before, or why there is no certain one."""
    block = m.tree.parent(gate)
    siblings = list(getattr(block, "body", ()))
    if not isinstance(block, (cst.IndentedBlock, cst.Module)):
        return "the waiting half is not a statement of its own block"
    index = next(i for i, statement in enumerate(siblings) if statement is gate)
    for statement in siblings[index + 1 :]:
        joined = _collective_on_rank_zero(m, statement, gate)
        if joined is not None:
            if not isinstance(statement, (cst.SimpleStatementLine, cst.If)):
                return "the next collective rank 0 reaches is inside a loop, with or try"
            if type(statement) is cst.If and not (
                m.tree.contains(statement.test, joined)
                or m.tree.contains(statement.body.body[0], joined)
            ):
                return "the next collective rank 0 reaches is inside an if, after other work"
            callees = _callees(m, statement)
            lone = [
                c
                for c in m.tree.nodes(cst.Call)
                if is_barrier(c)
                and isinstance(scope := m.scope(c), cst.FunctionDef)
                and scope.name.value in callees
                and is_rank_zero_half(m, c)
            ]
            if lone:
                return "the function rank 0 calls next has a rank-0 barrier of its own"
            return statement
        if any(is_exit(n) for n in walk(statement, into_scopes=False)):
            return (
                "rank 0 may leave this block (return, raise, break, continue or exit) before its "
                "next collective"
            )
    return "no collective follows in the same block (the next one is after it, or in a caller)"


def _between(m: RankModel, gate: cst.If, half: cst.Call, halves_: set[int]) -> cst.Call | None:
    """A collective rank 0 reaches after the waiting half and before its own half, other than
    the rank-0 halves of earlier pairs (``halves_``: those meet the others' earlier waits)."""
    start, end = m.tree.order(gate), m.tree.order(half)
    scope = m.scope(half)
    for call in m.tree.nodes(cst.Call):
        if (
            start < m.tree.order(call) < end
            and call is not half
            and id(call) not in halves_
            and m.scope(call) is scope
            and not m.tree.contains(gate, call)
            and m.runs(call, RANK0) is not False
            and m.collective(call, RANK0) is not None
        ):
            return call
    return None


class CompleteBarrierPair(Rule):
    code = "DDP018"
    name = "complete-barrier-pair"
    summary = "Rank 0 joins a barrier only the other ranks wait in, before its next collective."
    rationale = __doc__
    settles = False  # a new barrier is a collective the other rules' analyses see
    triggers = ("barrier",)

    @staticmethod
    def _dead_barriers(ctx: RuleContext, m: RankModel) -> None:
        """A barrier no process ever reaches because its test reads a module function as a flag
        (``not evaluate`` in a cache loader without an ``evaluate`` parameter: the function is
        always true): the template's "rank 0 builds the cache, the others wait and read it" does
        not happen, and every rank builds it, or reads rank 0's half-written file."""
        tree = ctx.tree
        defined = set(module_functions(tree.module)) | {
            c.name.value for c in tree.module.body if type(c) is cst.ClassDef
        }
        told: set[int] = set()
        for call in tree.nodes(cst.Call):
            if callee_name(call) != "barrier" or not is_collective_call(call):
                continue
            scope = m.scope(call)
            if id(scope) in told:
                continue
            own = names_bound_in(scope) if type(scope) is cst.FunctionDef else set()
            if type(scope) is cst.FunctionDef:
                own |= {p.name.value for p in parameters(scope)}
            flags = [
                term.expression.value
                for test, wanted in m.conditions(call)
                if wanted
                for term in conjuncts(test)
                if type(term) is cst.UnaryOperation
                and type(term.operator) is cst.Not
                and type(term.expression) is cst.Name
                and term.expression.value in defined
                and term.expression.value not in own
            ]
            if not flags:
                continue
            told.add(id(scope))
            name = flags[0]
            where = f"{scope.name.value}()" if type(scope) is cst.FunctionDef else "the module"
            ctx.report(
                call,
                f"this barrier never runs: {name!r} here is the module's {name}(), always "
                f"true, so `not {name}` is false and the other ranks never wait for "
                f"rank 0 (every rank builds what follows, or reads rank 0's half-written file); "
                f"make {name} a parameter of {where} (the template's `evaluate=False`)",
            )

    examples = (
        Example(
            before="""
                import torch
                def main(args, model):
                    if args.do_train:
                        if args.local_rank not in [-1, 0]:
                            torch.distributed.barrier()  # the others use rank 0's cache
                        train_dataset = load_and_cache(args)

                        train(args, train_dataset, model)
                def train(args, train_dataset, model):
                    model = torch.nn.parallel.DistributedDataParallel(model)
            """,
            after="""
                import torch
                def main(args, model):
                    if args.do_train:
                        if args.local_rank not in [-1, 0]:
                            torch.distributed.barrier()  # the others use rank 0's cache
                        train_dataset = load_and_cache(args)
                        if args.local_rank == 0:
                            torch.distributed.barrier()

                        train(args, train_dataset, model)
                def train(args, train_dataset, model):
                    model = torch.nn.parallel.DistributedDataParallel(model)
            """,
            messages=(
                "only ranks other than 0 wait in this barrier and rank 0 never joins it (it goes "
                "on to train()): add rank 0's half before that (hang otherwise)",
            ),
        ),
        Example(
            before="""
                import torch
                def load_and_cache(args, evaluate=False):
                    if args.local_rank not in [-1, 0] and not evaluate:
                        torch.distributed.barrier()
                    dataset = build(args)
                    if args.local_rank == 0 and not evaluate:
                        torch.distributed.barrier()
                    return dataset
            """,
        ),
        Example(
            before="""
                import torch
                def load_and_cache(args):
                    if args.local_rank not in [-1, 0]:
                        torch.distributed.barrier()
                    return build(args)
            """,
            reports=1,
            messages=(
                "only ranks other than 0 wait in this barrier and rank 0 never joins it: add "
                "rank 0's half by hand (rank 0 may leave this block (return, raise, break, "
                "continue or exit) before its next collective); add `if args.local_rank == 0: "
                "torch.distributed.barrier()` where rank 0 is done with what the others wait for",
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        m = model(ctx.tree)
        self._dead_barriers(ctx, m)
        pairs = list(halves(m))
        rank_zero_halves = {id(half) for *_, half in pairs if half is not None}
        for call, gate, term, half in pairs:
            test = _rank_zero_test(gate, term)
            barrier = code(call)
            hand = _HAND.format(test=test, call=barrier)
            if half is not None:
                if (why := unsure(m, gate, half)) is not None:
                    ctx.report(
                        call,
                        f"rank 0 reaches its half of this barrier only on some paths (it is "
                        f"{why}); on the others it never joins while the other ranks wait "
                        f"(hang): {hand}, on every path",
                    )
                elif (joined := _between(m, gate, half, rank_zero_halves)) is not None:
                    ctx.report(
                        call,
                        f"rank 0 reaches {code(joined.func)}() before its half of this barrier, "
                        "a collective the other ranks, waiting here, never join (hang): "
                        f"{hand}, before it",
                    )
                continue
            where = _placement(m, gate)
            if isinstance(where, str):
                ctx.report(
                    call,
                    "only ranks other than 0 wait in this barrier and rank 0 never joins it: add "
                    f"rank 0's half by hand ({where}); {hand}",
                )
                continue
            if (changing := unsteady_term(m, gate, where)) is not None:
                ctx.report(
                    call,
                    "only ranks other than 0 wait in this barrier and rank 0 never joins it: add "
                    f"rank 0's half by hand (the waiting half's `{code(changing)}` may change "
                    f"before rank 0's half, so rank 0 may skip a copy of it); {hand}",
                )
                continue
            joined = _collective_on_rank_zero(m, where, gate)
            assert joined is not None  # as _placement found
            statement = cst.parse_statement(f"if {test}:\n    {barrier}\n")
            ctx.fix(
                call,
                "only ranks other than 0 wait in this barrier and rank 0 never joins it (it goes "
                f"on to {code(joined.func)}()): add rank 0's half before that (hang otherwise)",
                {where: Around(before=(statement,), lead=False)},
            )
