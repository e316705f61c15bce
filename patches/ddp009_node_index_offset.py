"""DDP009 node-index-offset: take the global rank from the launcher, not from --node_index.

The CodeXGLUE language-model scripts (CodeCompletion-token/line, text-to-code,
Method-Generation) turn the local rank into a global one by hand:
``args.local_rank += args.node_index * args.gpu_per_node``, with both flags defaulting to -1. Under
torchrun or accelerate nobody passes them, so every rank adds (-1)·(-1) = 1: no process is rank 0,
nothing is logged, evaluated or saved, and ``device_ids=[args.local_rank % args.gpu_per_node]``
puts every rank on device 0. The rule keeps the old computation when both flags are given
explicitly (a per-node launch as the README describes) and otherwise reads the global rank from
``RANK``, which every launcher sets; ``x % args.gpu_per_node`` becomes
``int(os.environ.get("LOCAL_RANK", x % args.gpu_per_node))``.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._syntax import preferred_quote


def _attr(node: cst.CSTNode, name: str) -> bool:
    return type(node) is cst.Attribute and node.attr.value == name


def _offset(node: cst.CSTNode) -> bool:
    """``x.node_index * x.gpu_per_node`` in either order."""
    return (
        type(node) is cst.BinaryOperation
        and type(node.operator) is cst.Multiply
        and {_attr(node.left, "node_index"), _attr(node.right, "node_index")} == {True, False}
        and (_attr(node.left, "gpu_per_node") or _attr(node.right, "gpu_per_node"))
    )


class NodeIndexOffset(Rule):
    code = "DDP009"
    name = "node-index-offset"
    summary = "local_rank += node_index * gpu_per_node only with explicit flags; else RANK."
    rationale = __doc__
    settles = True
    triggers = ("node_index",)
    examples = (
        Example(
            before="""
                import os
                args.local_rank += args.node_index * args.gpu_per_node
            """,
            after="""
                import os
                if args.node_index >= 0 and args.gpu_per_node > 0:  # the old per-node flags
                    args.local_rank += args.node_index * args.gpu_per_node
                else:  # ddpfix: torchrun / accelerate give the global rank as RANK
                    args.local_rank = int(os.environ.get("RANK", args.local_rank))
            """,
            messages=(
                "--node_index/--gpu_per_node default to -1 under a launcher (no rank 0): take "
                "the global rank from RANK unless both are given",
            ),
        ),
        Example(
            before="""
                rank = args.local_rank + args.node_index
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        module = tree.module
        q = preferred_quote(tree.code)
        for line in tree.nodes(cst.SimpleStatementLine):
            node = line.body[0]
            if not (
                len(line.body) == 1
                and type(node) is cst.AugAssign
                and type(node.operator) is cst.AddAssign
                and _attr(node.target, "local_rank")
                and _offset(node.value)
                and isinstance(tree.parent(line), (cst.IndentedBlock, cst.Module))
            ):
                continue
            if any(
                type(a) is cst.If and "node_index" in module.code_for_node(a.test)
                for a in tree.ancestors(line)
            ):
                continue  # already guarded by the flags
            assert type(node.target) is cst.Attribute
            who = module.code_for_node(node.target.value)
            code = (
                f"if {who}.node_index >= 0 and {who}.gpu_per_node > 0:  # the old per-node flags\n"
                f"    {module.code_for_node(node)}\n"
                "else:  # ddpfix: torchrun / accelerate give the global rank as RANK\n"
                f"    {who}.local_rank = int(os.environ.get({q}RANK{q}, {who}.local_rank))\n"
            )
            new = cst.parse_statement(code, config=module.config_for_parsing)
            new = new.with_changes(leading_lines=line.leading_lines)
            ctx.fix(
                line,
                "--node_index/--gpu_per_node default to -1 under a launcher (no rank 0): "
                "take the global rank from RANK unless both are given",
                {line: new},
                imports=("os",),
            )
        for node in tree.nodes(cst.BinaryOperation):
            if not (type(node.operator) is cst.Modulo and _attr(node.right, "gpu_per_node")):
                continue
            parent = tree.parent(node)
            if type(parent) is cst.Arg and parent.keyword is None:
                call = tree.parent(parent)
                if type(call) is cst.Call and "LOCAL_RANK" in module.code_for_node(call):
                    continue  # already wrapped
            code = f"int(os.environ.get({q}LOCAL_RANK{q}, {module.code_for_node(node)}))"
            ctx.fix(
                node,
                "x % gpu_per_node is 0 for every rank when gpu_per_node is -1: use LOCAL_RANK",
                {node: cst.parse_expression(code, config=module.config_for_parsing)},
                imports=("os",),
            )
