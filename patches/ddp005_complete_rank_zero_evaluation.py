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
handled. Training samplers, which every rank builds, are left alone. A function that runs on rank
0 alone at some call sites and on every rank at others is reported without a fix.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._gates import SINGLE, GateTracker, rank_comparison, rank_zero_functions, truth
from patches._syntax import callee_name

DISTRIBUTED = "DistributedSampler"


def _sampler(node: cst.BaseExpression) -> str | None:
    return callee_name(node) if isinstance(node, cst.Call) else None


def _lone_branch(
    test: cst.BaseExpression, when_true: cst.CSTNode, when_false: cst.CSTNode
) -> cst.CSTNode | None:
    """The branch a lone process takes, if ``test`` is a plain local-rank comparison."""
    if rank_comparison(test) is None:
        return None
    value = truth(test, SINGLE)
    if value is None:
        return None
    return when_true if value else when_false


def _single_assignment(suite: cst.BaseSuite) -> tuple[cst.SimpleStatementLine, str] | None:
    if not isinstance(suite, cst.IndentedBlock) or len(suite.body) != 1:
        return None
    line = suite.body[0]
    if not (isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1):
        return None
    assign = line.body[0]
    if not (isinstance(assign, cst.Assign) and len(assign.targets) == 1):
        return None
    target = assign.targets[0].target
    sampler = _sampler(assign.value)
    if not isinstance(target, cst.Name) or sampler is None:
        return None
    return line, target.value


class _Sequential(GateTracker):
    def __init__(self, ctx: RuleContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.rank_zero, self.sometimes = rank_zero_functions(ctx.module)

    def _applies(self) -> bool:
        function = self.function
        return self.in_rank_zero_region() or (
            function is not None and function.name.value in self.rank_zero
        )

    def _mixed(self) -> bool:
        return self.function is not None and self.function.name.value in self.sometimes

    def _report(self, node: cst.CSTNode, sampler: str) -> None:
        self.ctx.report(
            node,
            f"only one process runs this evaluation: use {sampler} so it scores every example "
            f"in order (a {DISTRIBUTED} would give it 1/world_size of the data, shuffled)",
            fixed=True,
        )

    def leave_IfExp(self, original_node: cst.IfExp, updated_node: cst.IfExp) -> cst.BaseExpression:
        applies, mixed = self._applies(), self._mixed()
        if not (applies or mixed):
            return updated_node
        lone = _lone_branch(updated_node.test, updated_node.body, updated_node.orelse)
        other = updated_node.orelse if lone is updated_node.body else updated_node.body
        if lone is None or _sampler(other) != DISTRIBUTED:
            return updated_node
        sampler = _sampler(lone)  # type: ignore[arg-type]
        if sampler is None or sampler == DISTRIBUTED:
            return updated_node
        if not applies:
            assert self.function is not None
            self.ctx.report(
                original_node,
                f"{self.function.name.value}() runs on rank 0 alone at some call sites and on "
                f"every rank at others: there rank 0 scores a {DISTRIBUTED} shard; split the "
                "rank-0 path by hand",
                fixed=False,
            )
            return updated_node
        self._report(original_node, sampler)
        return lone  # type: ignore[return-value]

    def leave_If(
        self, original_node: cst.If, updated_node: cst.If
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        # The gate of this very `if` is not part of the region it sits in.
        if not self._applies() or not isinstance(updated_node.orelse, cst.Else):
            return updated_node
        then = _single_assignment(updated_node.body)
        otherwise = _single_assignment(updated_node.orelse.body)
        if then is None or otherwise is None or then[1] != otherwise[1]:
            return updated_node
        lone = _lone_branch(updated_node.test, then[0], otherwise[0])
        other = otherwise[0] if lone is then[0] else then[0]
        other_value = other.body[0].value  # type: ignore[union-attr]
        if lone is None or _sampler(other_value) != DISTRIBUTED:
            return updated_node
        sampler = _sampler(lone.body[0].value)  # type: ignore[union-attr]
        if sampler is None or sampler == DISTRIBUTED:
            return updated_node
        self._report(original_node, sampler)
        return lone.with_changes(leading_lines=updated_node.leading_lines)  # type: ignore[union-attr]


class CompleteRankZeroEvaluation(Rule):
    code = "DDP005"
    name = "complete-rank-zero-evaluation"
    summary = "Rank-0-only evaluation uses a SequentialSampler, not a DistributedSampler shard."
    rationale = __doc__
    triggers = (DISTRIBUTED,)
    examples = (
        Example(
            before=(
                "def evaluate(args, model, dataset):\n"
                "    sampler = SequentialSampler(dataset) if args.local_rank == -1 "
                "else DistributedSampler(dataset)\n"
                "    return score(model, sampler)\n"
                "\n"
                "if args.do_eval and args.local_rank in [-1, 0]:\n"
                "    evaluate(args, model, dataset)\n"
            ),
            after=(
                "def evaluate(args, model, dataset):\n"
                "    sampler = SequentialSampler(dataset)\n"
                "    return score(model, sampler)\n"
                "\n"
                "if args.do_eval and args.local_rank in [-1, 0]:\n"
                "    evaluate(args, model, dataset)\n"
            ),
        ),
        Example(
            before=(
                "def train(args, dataset):\n"
                "    sampler = RandomSampler(dataset) if args.local_rank == -1 "
                "else DistributedSampler(dataset)\n"
                "\n"
                "train(args, dataset)\n"
            ),
        ),
        Example(
            before=(
                "def evaluate(args, dataset):\n"
                "    sampler = SequentialSampler(dataset) if args.local_rank == -1 "
                "else DistributedSampler(dataset)\n"
                "\n"
                "if args.do_eval:\n"
                "    evaluate(args, dataset)\n"
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> cst.Module:
        return ctx.module.visit(_Sequential(ctx))
