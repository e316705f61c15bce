"""TRN002 clamped-sentinel-index: a -1 index clamped to 0 becomes a real embedding row.

Graph and span models mark "no edge" or "no token" with -1, then clamp the ids before the
embedding lookup (``ids.clamp(min=0)``, ``ids.clamp_min(0)``, ``torch.where(ids < 0, 0, ids)``),
because an embedding cannot index -1. Unless the looked-up vectors are masked afterwards, "no
edge" silently becomes relation 0 and reaches the loss. The rule reports an embedding whose index
is clamped this way and whose output is neither multiplied by a mask nor passed through
``masked_fill`` in the same function. Report only.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._names import walk
from patches._syntax import callee_name, int_literal, self_attributes


def _clamps_negatives(node: cst.CSTNode) -> bool:
    for call in walk(node, into_scopes=False):
        if type(call) is not cst.Call:
            continue
        name = callee_name(call)
        values = [a.value for a in call.args]
        keywords = {a.keyword.value: a.value for a in call.args if a.keyword}
        if name == "clamp" and (
            int_literal(keywords.get("min", cst.Name("x"))) == 0
            or (
                len(values) >= 1
                and not call.args[0].keyword
                and int_literal(values[-1]) == 0
                and type(call.func) is cst.Attribute
                and type(call.func.value) is not cst.Name
            )
        ):
            return True
        if name in ("clamp_min", "clamp_min_") and values and int_literal(values[0]) == 0:
            return True
        if name == "where" and any(int_literal(v) == 0 for v in values[1:]):
            return True
    return False


class ClampedSentinelIndex(Rule):
    code = "TRN002"
    name = "clamped-sentinel-index"
    summary = "An embedding index clamped from -1 to 0 and never masked (report)."
    rationale = __doc__
    settles = True
    triggers = ("Embedding",)
    examples = (
        Example(
            before="""
                class Graph(nn.Module):
                    def __init__(self):
                        self.relations = nn.Embedding(4, 16)
                    def forward(self, relation_ids):
                        return self.relations(relation_ids.clamp(min=0))
            """,
            reports=1,
            messages=(
                'self.relations looks up clamped indices: -1 ("none") becomes row 0 and '
                "reaches the loss unless the result is masked",
            ),
        ),
        Example(
            before="""
                class Graph(nn.Module):
                    def __init__(self):
                        self.relations = nn.Embedding(4, 16)
                    def forward(self, relation_ids):
                        mask = (relation_ids >= 0).unsqueeze(-1)
                        return self.relations(relation_ids.clamp(min=0)) * mask
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        for cls in tree.nodes(cst.ClassDef):
            embeddings = self_attributes(cls, "Embedding")
            if not embeddings:
                continue
            for call in walk(cls, into_scopes=True):
                if not (
                    type(call) is cst.Call
                    and type(call.func) is cst.Attribute
                    and type(call.func.value) is cst.Name
                    and call.func.value.value == "self"
                    and call.func.attr.value in embeddings
                    and call.args
                    and _clamps_negatives(call.args[0].value)
                ):
                    continue
                if self._masked(tree, call):
                    continue
                ctx.report(
                    call,
                    f'self.{call.func.attr.value} looks up clamped indices: -1 ("none") becomes '
                    "row 0 and reaches the loss unless the result is masked",
                )

    @staticmethod
    def _masked(tree: Tree, call: cst.Call) -> bool:
        parent = tree.parent(call)
        if type(parent) is cst.BinaryOperation and type(parent.operator) is cst.Multiply:
            return True
        statement = tree.statement(call)
        assigned = None
        if type(statement) is cst.Assign and isinstance(statement.targets[0].target, cst.Name):
            assigned = statement.targets[0].target.value
        if assigned is None:
            return False
        scope = tree.scope(call)
        for node in walk(scope, into_scopes=False):
            if type(node) is cst.BinaryOperation and type(node.operator) is cst.Multiply:
                if any(
                    type(n) is cst.Name and n.value == assigned for n in (node.left, node.right)
                ):
                    return True
            if type(node) is cst.Call and callee_name(node) in ("masked_fill", "masked_fill_"):
                receiver = node.func.value if type(node.func) is cst.Attribute else None
                if type(receiver) is cst.Name and receiver.value == assigned:
                    return True
        return False
