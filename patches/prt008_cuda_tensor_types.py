"""PRT008 cuda-tensor-types: ``torch.cuda.LongTensor`` needs CUDA; fall back to ``torch``.

The seq2seq models' beam search allocates with the legacy typed constructors of the CUDA module:
``torch.cuda.LongTensor(1)``, or ``self.tt = torch.cuda`` and then ``self.tt.FloatTensor(size)``.
Without CUDA these raise ``TypeError: type torch.cuda.LongTensor not available``. The rule picks
the module by ``torch.cuda.is_available()``: ``torch.cuda`` on a GPU machine as before, the CPU
``torch`` constructors (same names, same arguments) otherwise.
"""

from __future__ import annotations

import re

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._syntax import dotted_name, mentions_cuda_check

MODULE = "torch.cuda if torch.cuda.is_available() else torch"
TYPED = re.compile(r"^[A-Z][a-z]*Tensor$")


class CudaTensorTypes(Rule):
    code = "PRT008"
    name = "cuda-tensor-types"
    summary = "torch.cuda.LongTensor(...) and tt = torch.cuda fall back to torch without CUDA."
    rationale = __doc__
    settles = True
    triggers = ("torch.cuda",)
    examples = (
        Example(
            before="""
                zero = torch.cuda.LongTensor(1).fill_(0)
            """,
            after="""
                zero = (torch.cuda if torch.cuda.is_available() else torch).LongTensor(1).fill_(0)
            """,
            messages=("torch.cuda.LongTensor needs CUDA: use torch's when it is not available",),
        ),
        Example(
            before="""
                self.tt = torch.cuda
            """,
            after="""
                self.tt = torch.cuda if torch.cuda.is_available() else torch
            """,
            messages=("the typed constructors of torch.cuda need CUDA: fall back to torch's",),
        ),
        Example(
            before="""
                x = torch.cuda.device_count()
                t = torch.LongTensor(1)
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        for node in tree.nodes(cst.Attribute):
            if dotted_name(node.value) != "torch.cuda" or not TYPED.match(node.attr.value):
                continue
            module = cst.parse_expression(MODULE).with_changes(
                lpar=[cst.LeftParen()], rpar=[cst.RightParen()]
            )
            ctx.fix(
                node,
                f"torch.cuda.{node.attr.value} needs CUDA: use torch's when it is not available",
                {node.value: module},
            )
        for assign in tree.nodes(cst.Assign):
            if dotted_name(assign.value) != "torch.cuda" or mentions_cuda_check(assign.value):
                continue
            ctx.fix(
                assign,
                "the typed constructors of torch.cuda need CUDA: fall back to torch's",
                {assign.value: cst.parse_expression(MODULE)},
            )
