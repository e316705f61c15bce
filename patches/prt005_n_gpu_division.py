"""PRT005 n-gpu-division: never divide by ``args.n_gpu``, which is 0 on a CPU.

Scripts compute ``args.per_gpu_train_batch_size = args.train_batch_size // args.n_gpu`` with
``args.n_gpu = torch.cuda.device_count()``: on a machine without CUDA that is a
ZeroDivisionError before training starts. The rule divides by ``max(1, args.n_gpu)`` instead,
which is what the rest of the template already does (``* max(1, args.n_gpu)``) and changes
nothing when there is a GPU.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext


def _n_gpu(node: cst.CSTNode) -> bool:
    return type(node) is cst.Attribute and node.attr.value == "n_gpu"


class NGpuDivision(Rule):
    code = "PRT005"
    name = "n-gpu-division"
    summary = "x // args.n_gpu becomes x // max(1, args.n_gpu) (n_gpu is 0 on a CPU)."
    rationale = __doc__
    settles = True
    triggers = ("n_gpu",)
    examples = (
        Example(
            before="""
                args.per_gpu_train_batch_size=args.train_batch_size//args.n_gpu
            """,
            after="""
                args.per_gpu_train_batch_size=args.train_batch_size//max(1, args.n_gpu)
            """,
            messages=("args.n_gpu is 0 without CUDA: divide by max(1, n_gpu)",),
        ),
        Example(
            before="""
                args.train_batch_size = args.per_gpu_train_batch_size * max(1, args.n_gpu)
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        for node in ctx.tree.nodes(cst.BinaryOperation):
            if not isinstance(node.operator, (cst.FloorDivide, cst.Divide, cst.Modulo)):
                continue
            if not _n_gpu(node.right):
                continue
            divisor = node.right
            guarded = cst.Call(
                cst.Name("max"),
                [
                    cst.Arg(
                        cst.Integer("1"),
                        comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
                    ),
                    cst.Arg(divisor.with_changes(lpar=[], rpar=[])),
                ],
                lpar=divisor.lpar,
                rpar=divisor.rpar,
            )
            ctx.fix(
                node, "args.n_gpu is 0 without CUDA: divide by max(1, n_gpu)", {divisor: guarded}
            )
