"""PRT007 config-torchscript: ``config.torchscript`` no longer exists in transformers 5.

The seq2seq models of CodeXGLUE and CodeBERT tie their LM head to the encoder's embeddings with a
copy of an old transformers helper that reads ``self.config.torchscript`` (clone the weights
instead of sharing them when exporting to TorchScript). transformers 5 dropped the attribute, so
building the model raises ``AttributeError: 'RobertaConfig' object has no attribute
'torchscript'``. The rule reads it with ``getattr(config, "torchscript", False)``, which is what
the attribute defaulted to.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._bundled import bundled
from patches._syntax import preferred_quote

ATTRIBUTE = "torchscript"


class ConfigTorchscript(Rule):
    code = "PRT007"
    name = "config-torchscript"
    summary = 'config.torchscript becomes getattr(config, "torchscript", False) (gone in v5).'
    rationale = __doc__
    settles = True
    triggers = (ATTRIBUTE,)
    examples = (
        Example(
            before="""
                if self.config.torchscript:
                    weights = weights.clone()
            """,
            after="""
                if getattr(self.config, "torchscript", False):
                    weights = weights.clone()
            """,
            messages=("transformers 5 configs have no .torchscript: read it with a False default",),
        ),
        Example(
            before="""
                self.config.torchscript = True
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        if bundled(ctx.path, "transformers"):
            return  # the script imports the copy its project ships, not today's transformers
        tree = ctx.tree
        q = preferred_quote(tree.code)
        for node in tree.nodes(cst.Attribute):
            if node.attr.value != ATTRIBUTE:
                continue
            parent = tree.parent(node)
            if isinstance(parent, (cst.AssignTarget, cst.AugAssign, cst.Del)) or (
                type(parent) is cst.AnnAssign and parent.target is node
            ):
                continue  # setting it is fine
            owner = tree.module.code_for_node(node.value)
            new = cst.parse_expression(f"getattr({owner}, {q}{ATTRIBUTE}{q}, False)")
            ctx.fix(
                node,
                "transformers 5 configs have no .torchscript: read it with a False default",
                {node: new.with_changes(lpar=node.lpar, rpar=node.rpar)},
            )
