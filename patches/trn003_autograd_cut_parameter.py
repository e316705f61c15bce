"""TRN003 autograd-cut-parameter: a Parameter read without autograd inside ``forward``.

``float(self.offset)``, ``self.offset.item()``, ``torch.tensor(self.offset)``, ``self.offset.data``
and ``self.offset.detach()`` all turn a learnable parameter into a constant: the forward still
computes, the loss still falls (other parameters learn), but this one never gets a gradient and
stays at its initial value. Moving it between devices with ``.to(device)`` does not help. The rule
reports these reads of ``self.<name>`` where ``<name>`` is an ``nn.Parameter`` of the class, inside
``forward``. Report only: a deliberate stop-gradient is possible.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._names import walk
from patches._syntax import dotted_name, self_attributes

_CUTTING_METHODS = ("item", "detach", "numpy", "tolist")
_CUTTING_FUNCTIONS = ("float", "int", "torch.tensor", "torch.as_tensor")


def _self_param(node: cst.CSTNode, params: set[str]) -> str | None:
    if type(node) is cst.Attribute and dotted_name(node.value) == "self":
        if node.attr.value in params:
            return node.attr.value
    return None


class AutogradCutParameter(Rule):
    code = "TRN003"
    name = "autograd-cut-parameter"
    summary = "A Parameter read with float()/.item()/.data/.detach() in forward gets no gradient."
    rationale = __doc__
    settles = True
    triggers = ("Parameter",)
    examples = (
        Example(
            before="""
                class Decay(nn.Module):
                    def __init__(self):
                        self.offset = nn.Parameter(torch.tensor(0.5))
                    def forward(self, d):
                        return torch.exp(-(d - self.offset.item()))
            """,
            reports=1,
            messages=(
                "self.offset is a Parameter: .item() in forward cuts autograd, so it never gets "
                "a gradient",
            ),
        ),
        Example(
            before="""
                class Decay(nn.Module):
                    def __init__(self):
                        self.offset = nn.Parameter(torch.tensor(0.5))
                    def forward(self, d):
                        return torch.exp(-(d - self.offset))
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        for cls in tree.nodes(cst.ClassDef):
            params = self_attributes(cls, "Parameter")
            if not params:
                continue
            for function in walk(cls.body, into_scopes=True):
                if not (type(function) is cst.FunctionDef and function.name.value == "forward"):
                    continue
                for node in walk(function.body, into_scopes=False):
                    self._check(ctx, node, params)

    def _check(self, ctx: RuleContext, node: cst.CSTNode, params: set[str]) -> None:
        found = None
        if type(node) is cst.Attribute and node.attr.value == "data":
            found = _self_param(node.value, params), ".data"
        elif type(node) is cst.Call and type(node.func) is cst.Attribute:
            if node.func.attr.value in _CUTTING_METHODS:
                found = _self_param(node.func.value, params), f".{node.func.attr.value}()"
        if (
            found is None
            and type(node) is cst.Call
            and dotted_name(node.func) in _CUTTING_FUNCTIONS
            and node.args
        ):
            found = _self_param(node.args[0].value, params), f"{dotted_name(node.func)}()"
        if found and found[0]:
            ctx.report(
                node,
                f"self.{found[0]} is a Parameter: {found[1]} in forward cuts autograd, so it "
                "never gets a gradient",
            )
