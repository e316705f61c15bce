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
from patches._gates import (
    SINGLE,
    in_rank_zero_region,
    rank_comparison,
    rank_zero_functions,
    truth,
)
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


def _sampler_choice(
    node: cst.IfExp | cst.If,
) -> tuple[cst.CSTNode, str] | None:
    """For ``Seq(d) if rank == -1 else Dist(d)`` (or the if/else statement form): the branch a
    lone process takes and its sampler, when the other branch is a DistributedSampler."""
    if isinstance(node, cst.IfExp):
        lone = _lone_branch(node.test, node.body, node.orelse)
        other = node.orelse if lone is node.body else node.body
        if lone is None or _sampler(other) != DISTRIBUTED:  # type: ignore[arg-type]
            return None
        sampler = _sampler(lone)  # type: ignore[arg-type]
    else:
        if not isinstance(node.orelse, cst.Else):
            return None
        then = _single_assignment(node.body)
        otherwise = _single_assignment(node.orelse.body)
        if then is None or otherwise is None or then[1] != otherwise[1]:
            return None
        lone = _lone_branch(node.test, then[0], otherwise[0])
        other = otherwise[0] if lone is then[0] else then[0]
        if lone is None or _sampler(other.body[0].value) != DISTRIBUTED:  # type: ignore[union-attr]
            return None
        sampler = _sampler(lone.body[0].value)  # type: ignore[union-attr]
        lone = lone.with_changes(leading_lines=node.leading_lines)  # type: ignore[union-attr]
    if sampler is None or sampler == DISTRIBUTED:
        return None
    return lone, sampler


class CompleteRankZeroEvaluation(Rule):
    code = "DDP005"
    name = "complete-rank-zero-evaluation"
    summary = "Rank-0-only evaluation uses a SequentialSampler, not a DistributedSampler shard."
    rationale = __doc__
    settles = True
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

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        only, sometimes = rank_zero_functions(tree)
        for node in tree.nodes(cst.IfExp, cst.If):
            choice = _sampler_choice(node)
            if choice is None:
                continue
            scope = tree.scope(node)
            function = scope.name.value if isinstance(scope, cst.FunctionDef) else None
            if in_rank_zero_region(tree, node) or function in only:
                lone, sampler = choice
                ctx.fix(
                    node,
                    f"only one process runs this evaluation: use {sampler} so it scores every "
                    f"example in order (a {DISTRIBUTED} would give it 1/world_size of the data, "
                    "shuffled)",
                    {node: lone},
                )
            elif function in sometimes:
                ctx.report(
                    node,
                    f"{function}() runs on rank 0 alone at some call sites and on every rank at "
                    f"others: there rank 0 scores a {DISTRIBUTED} shard; split the rank-0 path "
                    "by hand",
                )
