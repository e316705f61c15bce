"""DDP011 rank-zero-eval-blocks: evaluation blocks that write files run on one process.

The seq2seq scripts (and some forks of the classification template) evaluate and test in blocks
gated only on their flags: ``if args.do_eval:`` inside the epoch loop, ``if args.do_test:`` at the
end. Under a launcher every rank runs them: each decodes the whole dev set, and all of them write
``dev.output``, ``test_1.output`` and the checkpoints to the same paths at once. The rule adds a
global rank-0 condition to such a block, ``if args.do_eval and int(os.environ.get("RANK",
args.local_rank)) in [-1, 0]:`` (``(args.do_eval or args.do_test) and ...`` when the flags are
joined by ``or``), when the block writes files and trains nothing (no ``backward()``, no optimizer
step, no call to a train function). Blocks already behind a rank condition, and blocks in scripts
without ``--local_rank``, are left alone.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._gates import OTHER, RANK0, gates, truth
from patches._syntax import (
    callee_name,
    calls_in,
    dotted_name,
    global_rank,
    import_fix,
    is_eval_call,
    is_save_call,
    preferred_quote,
    walk,
)

FLAGS = ("do_eval", "do_test", "do_predict")


def _flag(test: cst.BaseExpression) -> cst.Attribute | None:
    for node in walk(test):
        if isinstance(node, cst.Attribute) and node.attr.value in FLAGS:
            return node
    return None


def _trains(body: cst.BaseSuite) -> bool:
    """``loss.backward()``, ``optimizer.step()`` or a call to a ``train...`` function
    (``model.train()`` only switches a mode)."""
    for call in calls_in(body):
        name = callee_name(call) or ""
        receiver = dotted_name(call.func.value) if isinstance(call.func, cst.Attribute) else ""
        if name == "backward" or (name == "step" and "optim" in (receiver or "")):
            return True
        if isinstance(call.func, cst.Name) and name.startswith("train"):
            return True
    return False


def _as_and_operand(test: cst.BaseExpression) -> cst.BaseExpression:
    """``a or b`` gets parentheses before ``and rank``: ``a or b and rank`` is ``a or (b and
    rank)``, and the block would still run on every rank when ``a`` holds."""
    binds_looser = (
        isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.Or)
    ) or isinstance(test, (cst.IfExp, cst.Lambda, cst.NamedExpr))
    if binds_looser and not test.lpar:
        return test.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return test


def _rank_gated(tree: Tree, node: cst.If) -> bool:
    tests = [node.test, *gates(tree, node)]
    return any(truth(t, OTHER) is not None or truth(t, RANK0) is not None for t in tests)


class RankZeroEvalBlocks(Rule):
    code = "DDP011"
    name = "rank-zero-eval-blocks"
    summary = "do_eval/do_test blocks that write files run on global rank 0 only."
    rationale = __doc__
    settles = False  # the block becomes a rank-0 region: DDP004/DDP005 may apply inside
    triggers = ("do_eval", "do_test", "do_predict")
    examples = (
        Example(
            before=(
                "import os\n"
                "parser.add_argument('--local_rank', type=int, default=-1)\n"
                "if args.do_test:\n"
                "    with open(os.path.join(args.output_dir, 'test.output'), 'w') as f:\n"
                "        f.write(decode(model))\n"
            ),
            after=(
                "import os\n"
                "parser.add_argument('--local_rank', type=int, default=-1)\n"
                "if args.do_test and int(os.environ.get('RANK', args.local_rank)) in [-1, 0]:\n"
                "    with open(os.path.join(args.output_dir, 'test.output'), 'w') as f:\n"
                "        f.write(decode(model))\n"
            ),
        ),
        Example(
            before=(
                "parser.add_argument('--local_rank', type=int, default=-1)\n"
                "if args.do_train:\n"
                "    loss.backward()\n"
                "    torch.save(model.state_dict(), 'model.bin')\n"
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        if "local_rank" not in tree.code:
            return
        quote = preferred_quote(tree.code)
        for node in tree.nodes(cst.If):
            flag = _flag(node.test)
            if flag is None or node.orelse is not None or _rank_gated(tree, node):
                continue
            calls = list(calls_in(node.body))
            writes = any(is_save_call(c) for c in calls)
            if (
                not writes
                or _trains(node.body)
                or not any(is_eval_call(c) or is_save_call(c) for c in calls)
            ):
                continue
            local_rank = cst.Attribute(flag.value, cst.Name("local_rank"))
            rank = cst.Comparison(
                global_rank(local_rank, quote),
                [
                    cst.ComparisonTarget(
                        cst.In(),
                        cst.List(
                            [
                                cst.Element(
                                    cst.UnaryOperation(cst.Minus(), cst.Integer("1")),
                                    comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
                                ),
                                cst.Element(cst.Integer("0")),
                            ]
                        ),
                    )
                ],
            )
            test = cst.BooleanOperation(
                left=_as_and_operand(node.test),
                operator=cst.And(),
                right=rank,
            )
            ctx.fix(
                node,
                f"every rank runs this {flag.attr.value} block and writes the same files: "
                "run it on global rank 0",
                {node: node.with_changes(test=test), **import_fix(tree.module, "os")},
            )
