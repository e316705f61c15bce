"""DDP004 evaluate-unwrapped-model: rank 0 evaluates the model, not its DDP wrapper.

The forward of ``DistributedDataParallel`` is a collective: it broadcasts module buffers (RoBERTa
has ``position_ids``) and, in training mode, prepares a gradient all-reduce. When rank 0 evaluates
alone, the other ranks never join: gloo aborts with a collective mismatch, NCCL hangs until the
process-group timeout.

Where a name holds a wrapped model (``model = DistributedDataParallel(model, ...)`` with any import
path or alias, apex included, or a parameter that a caller passes a wrapped model for) and an
evaluate/test-like function is called with it behind a gate that only rank 0 (or a lone process)
passes (a local-rank test, or a global one: ``args.global_rank == 0``, ``get_rank() == 0``), the
argument becomes ``model.module if hasattr(model, "module") else model``; a forward
written inline there (``model(source_ids=...)``) calls that expression instead. The last
assignment before the call decides (a model reloaded with ``from_pretrained`` is not wrapped).
An evaluation is known by its name (``evaluate``, ``run_eval``, ``test_bleu``...) or by what it
does (``patches/_eval_wraps.evaluations``): a module function that trains nothing (no
``backward``/``step``/``zero_grad``, itself or in the module functions it calls) and calls the
parameter the wrapped model is passed for, GAN-CodeBERT's ``valid_acc(args, model, ...)``
running ``model(x, x_mask)``. Such a call gets the unwrapped model for that parameter when the
function uses it only as a model (calls it, asks it for attributes other than ``module``, or
hands it to ``DataParallel``); when it also treats it as the wrapper (``model.module``, passes it
on) the call is reported. A helper whose forward feeds training in the code rank 0 runs alone
there (``loss = forward_loss(model, batch); loss.backward()``) is left alone: unwrapped, rank 0
would update its replica alone where the wrapper at least stops.
Calls that every rank makes are left alone: there the wrapper is right. So are calls behind a
gate that keeps rank 0 out too, such as ``if args.local_rank == -1:`` when no rule turns it into
a rank-0 gate (it has an ``else``, or its evaluation joins collectives): under a launcher no
process runs it, and a lone process has no wrapper to take off. Only code that rank 0 of a
distributed job really runs alone gets the unwrapped model.

A function that runs on rank 0 alone may also wrap the model itself: CodeXGLUE's token-level
completion ``eval_acc()`` does ``if args.local_rank != -1: model = DistributedDataParallel(model,
...)`` before scoring the test set (upstream: "Only works on single GPU"). Building the wrapper
broadcasts rank 0's parameters to ranks that never come. Such a wrap is removed (the ``if``
holding it alone goes with it) when the function trains nothing and, after the wrap, only calls
the model or asks it for attributes other than ``module`` (``patches/_eval_wraps.py``): the
evaluation has no gradients to synchronise, and it computes the same predictions unwrapped.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._eval_wraps import (
    WRAPPER,
    Evaluation,
    evaluation_wraps,
    evaluations,
    trains,
    wrapper_aliases,
)
from patches._gates import gates
from patches._names import SCOPES
from patches._ranks import OTHER, RANK0, model, truth
from patches._syntax import (
    callee_name,
    dominates,
    is_eval_call,
    module_functions,
    preferred_quote,
    unwrapped,
)


def _rank_zero_alone(tree: Tree, node: cst.CSTNode) -> bool:
    """Whether rank 0 of a distributed job runs ``node`` while the other ranks do not: some gate
    around it keeps the other ranks out, and none keeps rank 0 out. The gates are judged by the
    rank model, so a global test (``args.global_rank == 0``, ``get_rank() == 0``) counts as
    well as a local one. ``if args.local_rank == -1:`` alone is not such a gate: under a
    launcher nobody runs it, and a lone process has no wrapper (DDP003 turns it into a rank-0
    gate when it evaluates; then this rule applies)."""
    tests = gates(tree, node)
    return any(truth(t, OTHER) is False for t in tests) and all(
        truth(t, RANK0) is not False for t in tests
    )


def _forwarded(call: cst.Call, evals: dict[str, Evaluation], flow: _Flow) -> dict[int, str]:
    """For a call of an evaluation known by what it does (a module function that trains
    nothing and calls a parameter), the arguments holding a wrapped model that land on a
    parameter it calls: their index → that parameter."""
    evaluation = evals.get(call.func.value) if type(call.func) is cst.Name else None
    if evaluation is None:
        return {}
    params = _parameters(evaluation.function)
    found: dict[int, str] = {}
    for index, arg in enumerate(call.args):
        if arg.star:
            return {}  # which parameter gets what is unknown
        name = arg.keyword.value if arg.keyword is not None else None
        if name is None and index < len(params):
            name = params[index]
        if name in evaluation.forwards and flow.is_wrapped(arg.value, call):
            found[index] = name
    return found


def _trains_in_gate(tree: Tree, call: cst.Call, functions: dict[str, cst.FunctionDef]) -> bool:
    """Whether the code that rank 0 runs alone around ``call`` (the body of the outermost
    ``if`` keeping the other ranks out) trains: then the helper's forward feeds a training step
    (``loss = forward_pass(model, batch); loss.backward()``), and handing it the unwrapped model
    would turn the wrapper's hang into replicas that silently diverge."""
    body = None
    for ancestor in tree.ancestors(call):
        if type(ancestor) in SCOPES:
            break
        if type(ancestor) is cst.If and tree.contains(ancestor.body, call):
            if truth(ancestor.test, OTHER) is False:
                body = ancestor.body
    return body is None or trains(body, functions)


def _parameters(function: cst.FunctionDef) -> list[str]:
    params = function.params
    return [p.name.value for p in (*params.posonly_params, *params.params)]


class _Flow:
    """Which local names hold a DDP-wrapped model at a given point, in source order.

    A wrap in any branch (``if args.local_rank != -1: model = DDP(model)``) makes the name
    possibly wrapped; a later assignment that always runs before the point
    (``model = Model.from_pretrained(...)``) unwraps it, one in another branch (``elif n_gpu > 1:
    model = DataParallel(model)``) does not.
    Parameters start wrapped when some caller passes a wrapped model for them.
    """

    def __init__(self, tree: Tree, aliases: set[str]) -> None:
        self.tree = tree
        self.assignments: dict[int, list[tuple[cst.Assign, str, bool]]] = {}
        for assign in tree.nodes(cst.Assign):
            scope = tree.scope(assign)
            wraps = type(assign.value) is cst.Call and callee_name(assign.value) in aliases
            for target in assign.targets:
                node = target.target
                elements = node.elements if isinstance(node, (cst.Tuple, cst.List)) else ()
                for name in [node, *(e.value for e in elements)]:
                    if type(name) is cst.Name:
                        entry = (assign, name.value, wraps and name is node)
                        self.assignments.setdefault(id(scope), []).append(entry)
        self.wrapped_params: dict[str, set[str]] = {}

    def is_wrapped(self, expr: cst.BaseExpression, at: cst.CSTNode) -> bool:
        """May ``expr`` hold a wrapped model at ``at``? A wrap in any branch says yes, until an
        assignment that always runs (not in another branch) rebinds the name."""
        if type(expr) is not cst.Name:
            return False
        scope = self.tree.scope(at)
        state = None
        for assign, name, wraps in self.assignments.get(id(scope), ()):
            if name == expr.value and self.tree.after(at, assign):
                if wraps:
                    state = True
                elif dominates(self.tree, assign, at):
                    state = False
        if state is not None:
            return state
        return type(scope) is cst.FunctionDef and expr.value in self.wrapped_params.get(
            scope.name.value, set()
        )

    def propagate(self, functions: dict[str, cst.FunctionDef]) -> None:
        """Mark the parameters that callers pass wrapped models for, to a fixed point."""
        calls = [
            c
            for c in self.tree.nodes(cst.Call)
            if type(c.func) is cst.Name and c.func.value in functions
        ]
        changed = True
        while changed:
            changed = False
            for call in calls:
                assert type(call.func) is cst.Name
                params = _parameters(functions[call.func.value])
                received = self.wrapped_params.setdefault(call.func.value, set())
                for index, arg in enumerate(call.args):
                    if arg.star or not self.is_wrapped(arg.value, call):
                        continue
                    name = arg.keyword.value if arg.keyword is not None else None
                    if name is None and index < len(params):
                        name = params[index]
                    if name is not None and name not in received:
                        received.add(name)
                        changed = True


class EvaluateUnwrappedModel(Rule):
    code = "DDP004"
    name = "evaluate-unwrapped-model"
    summary = "Evaluation that runs on rank 0 alone gets model.module, not the DDP wrapper."
    rationale = __doc__
    settles = False  # dropping a rank-0 evaluation's own wrap removes a collective DDP003 reports
    triggers = (WRAPPER, "DDP(")
    examples = (
        Example(
            before="""
                def train(args, model):
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
                    if args.local_rank in [-1, 0] and args.evaluate_during_training:
                        results = evaluate(args, model, eval_when_training=True)
            """,
            after="""
                def train(args, model):
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
                    if args.local_rank in [-1, 0] and args.evaluate_during_training:
                        results = evaluate(args, model.module if hasattr(model, "module") else model, eval_when_training=True)
            """,  # noqa: E501
            messages=(
                "rank 0 evaluates alone: pass the unwrapped model (DDP's forward is a collective "
                "the other ranks never join)",
            ),
        ),
        Example(
            before="""
                def valid_acc(args, model, dataset):
                    model.eval()
                    with torch.no_grad():
                        return accuracy(model(dataset.inputs), dataset.labels)

                def train(args, model, dataset):
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
                    if args.local_rank in [-1, 0]:
                        print(valid_acc(args, model, dataset))
            """,
            after="""
                def valid_acc(args, model, dataset):
                    model.eval()
                    with torch.no_grad():
                        return accuracy(model(dataset.inputs), dataset.labels)

                def train(args, model, dataset):
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
                    if args.local_rank in [-1, 0]:
                        print(valid_acc(args, model.module if hasattr(model, "module") else model, dataset))
            """,  # noqa: E501
            messages=(
                "rank 0 evaluates alone: valid_acc() runs its model forward and trains nothing, "
                "so pass the unwrapped model (DDP's forward is a collective the other ranks "
                "never join)",
            ),
        ),
        Example(
            before="""
                def train(args, model):
                    model = DDP(model)
                    results = evaluate(args, model)
            """,
        ),
        Example(
            before="""
                def main(args, model):
                    if args.do_eval and args.local_rank in [-1, 0]:
                        evaluate(args, model)
            """,
        ),
        Example(
            before="""
                def train(args, model):
                    if args.local_rank != -1:
                        model = DDP(model)
                    if args.local_rank == -1:  # a lone process: no wrapper here
                        results = evaluate(args, model)
                    else:
                        results = evaluate_on_every_rank(args, model)
            """,
        ),
        Example(
            before="""
                def eval_acc(args, model, dataset):
                    model.to(args.device)
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
                    model.eval()
                    return score(model(dataset.inputs), dataset.labels)

                def main(args, model, dataset):
                    if args.do_eval and args.local_rank in [-1, 0]:
                        print(eval_acc(args, model, dataset))
            """,
            after="""
                def eval_acc(args, model, dataset):
                    model.to(args.device)
                    model.eval()
                    return score(model(dataset.inputs), dataset.labels)

                def main(args, model, dataset):
                    if args.do_eval and args.local_rank in [-1, 0]:
                        print(eval_acc(args, model, dataset))
            """,
            messages=(
                "eval_acc() runs on rank 0 alone: evaluate model unwrapped (building the DDP "
                "wrapper is a collective the other ranks never join; an evaluation has no "
                "gradients to synchronise)",
            ),
        ),
        Example(
            before="""
                def eval_acc(args, model, dataset):
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
                    return model.module.score(dataset)

                def main(args, model, dataset):
                    if args.do_eval and args.local_rank in [-1, 0]:
                        print(eval_acc(args, model, dataset))
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        self._drop_rank_zero_wraps(ctx)
        flow = _Flow(tree, wrapper_aliases(tree))
        functions = module_functions(tree.module)
        flow.propagate(functions)
        evals = evaluations(tree)
        quote = preferred_quote(tree.code)
        for call in tree.nodes(cst.Call):
            inline = flow.is_wrapped(call.func, call)  # evaluation written inline: model(...)
            forwarded = None if inline or is_eval_call(call) else _forwarded(call, evals, flow)
            if not (inline or is_eval_call(call) or forwarded):
                continue
            if not _rank_zero_alone(tree, call):
                continue  # (the gates are judged last: most calls are neither)
            if forwarded:
                if not _trains_in_gate(tree, call, functions):
                    self._unwrap_forwarded(ctx, call, forwarded, evals, quote)
                continue
            if inline:
                assert type(call.func) is cst.Name
                inner = unwrapped(call.func.value, quote).with_changes(
                    lpar=[cst.LeftParen()], rpar=[cst.RightParen()]
                )
                ctx.fix(
                    call,
                    f"rank 0 runs {call.func.value} alone here: call the unwrapped model (DDP's "
                    "forward broadcasts buffers, a collective the other ranks never join)",
                    {call.func: inner},
                )
                continue
            args = []
            changed = []
            for arg in call.args:
                if not arg.star and flow.is_wrapped(arg.value, call):
                    assert type(arg.value) is cst.Name
                    changed.append(arg.value.value)
                    arg = arg.with_changes(value=unwrapped(arg.value.value, quote))
                args.append(arg)
            if changed:
                ctx.fix(
                    call,
                    f"rank 0 evaluates alone: pass the unwrapped {changed[0]} (DDP's forward is "
                    "a collective the other ranks never join)",
                    {call: call.with_changes(args=args)},
                )

    @staticmethod
    def _unwrap_forwarded(
        ctx: RuleContext,
        call: cst.Call,
        forwarded: dict[int, str],
        evals: dict[str, Evaluation],
        quote: str,
    ) -> None:
        """Hand an evaluation (known by what it does) the unwrapped model for each parameter
        it runs forward; report when it also uses that parameter as a wrapper."""
        assert type(call.func) is cst.Name
        function = call.func.value
        evaluation = evals[function]
        blocked = sorted({p for p in forwarded.values() if p not in evaluation.unwrappable})
        first = call.args[min(forwarded)].value
        assert type(first) is cst.Name
        if blocked:
            ctx.report(
                call,
                f"rank 0 runs {function}() alone here, and it calls {blocked[0]}, which is "
                f"handed the DDP wrapper {first.value}: the wrapper's forward is a collective the "
                f"other ranks never join. {function}() also uses {blocked[0]} as a wrapper "
                "(`.module`, or passes it on), so it cannot simply be handed the unwrapped "
                "model: unwrap it by hand",
            )
            return
        args = [
            arg.with_changes(value=unwrapped(arg.value.value, quote))
            if index in forwarded and type(arg.value) is cst.Name
            else arg
            for index, arg in enumerate(call.args)
        ]
        ctx.fix(
            call,
            f"rank 0 evaluates alone: {function}() runs its {forwarded[min(forwarded)]} forward "
            f"and trains nothing, so pass the unwrapped {first.value} (DDP's forward is a "
            "collective the other ranks never join)",
            {call: call.with_changes(args=args)},
        )

    @staticmethod
    def _drop_rank_zero_wraps(ctx: RuleContext) -> None:
        """A wrap an evaluation function makes of its own model, in a function (or a branch)
        that the other ranks never run: without it the function computes the same."""
        ranks = model(ctx.tree)
        for wrap in evaluation_wraps(ctx.tree).values():
            statement = wrap.statement
            if ranks.runs(statement, OTHER) is not False or ranks.runs(statement, RANK0) is False:
                continue
            ctx.fix(
                statement,
                f"{wrap.function.name.value}() runs on rank 0 alone: evaluate {wrap.name} "
                "unwrapped (building the DDP wrapper is a collective the other ranks never join; "
                "an evaluation has no gradients to synchronise)",
                {statement: []},
            )
