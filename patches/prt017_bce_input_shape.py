"""PRT017 bce-input-shape: a binary cross-entropy's input takes its target's shape.

Matching heads end in ``nn.Linear(hidden, 1)`` (and a ``Sigmoid``), so their output is
``[batch, 1]``, while the labels a dataset stacks from scalars are ``[batch]``::

    self.mlp = nn.Sequential(nn.Linear(768 * 4, 768), nn.Tanh(), nn.Linear(768, 1), nn.Sigmoid())
    self.loss_func = nn.BCELoss()
    ...
    loss = self.loss_func(logits, labels.float())

Old torch paired the two element by element with a deprecation warning; today's torch raises
``ValueError: Using a target size (torch.Size([8])) that is different to the input size
(torch.Size([8, 1]))`` in the first step (CodeXGLUE's WebQuery code search). The rule views the
input as the target: ``self.loss_func(logits.view_as(labels), labels.float())``. Where the
shapes already agree ``view_as`` changes nothing; where they hold a different number of elements
it fails as the loss did. It applies to calls of a name every binding of which in the module is
``BCELoss()`` or ``BCEWithLogitsLoss()`` (not one that is a ``CrossEntropyLoss()`` in another
branch), of ``BCELoss()(...)`` itself, and of
``binary_cross_entropy``/``binary_cross_entropy_with_logits``, when the target is a name, an
attribute or such a value converted (``labels.float()``, ``.long()``, ``.to(...)``, ``.type(...)``):
a loss built with a ``weight``/``pos_weight`` (shaped after the input) is left alone.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._syntax import callee_name, dotted_name

_LOSSES = frozenset({"BCELoss", "BCEWithLogitsLoss"})
_FUNCTIONS = frozenset({"binary_cross_entropy", "binary_cross_entropy_with_logits"})
#: Conversions that keep a tensor's shape: the target's shape is that of what they convert.
_CONVERSIONS = frozenset({"float", "double", "half", "long", "int", "to", "type", "cuda", "cpu"})
#: Already shaped by hand: ``logits.view(-1)``, ``logits.squeeze()``.
_RESHAPES = frozenset({"view", "view_as", "reshape", "reshape_as", "squeeze", "flatten"})


def _loss_constructor(node: cst.CSTNode) -> bool:
    """``nn.BCELoss()`` without a weight (a weight broadcasts against the input's shape)."""
    return (
        type(node) is cst.Call
        and callee_name(node) in _LOSSES
        and not any(a.keyword is not None and "weight" in a.keyword.value for a in node.args)
        and not any(a.keyword is None for a in node.args)
    )


def _shape_of(target: cst.BaseExpression) -> cst.BaseExpression | None:
    """The plain expression whose shape ``target`` has, or None when it is not plain."""
    while (
        type(target) is cst.Call
        and type(target.func) is cst.Attribute
        and target.func.attr.value in _CONVERSIONS
    ):
        target = target.func.value
    return target if dotted_name(target) is not None else None


def _viewed(node: cst.BaseExpression, like: cst.BaseExpression) -> cst.BaseExpression:
    base = node
    if not isinstance(node, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) or node.lpar:
        base = node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.Call(
        cst.Attribute(base, cst.Name("view_as")),
        [cst.Arg(like.deep_clone().with_changes(lpar=[], rpar=[]))],
    )


class BceInputShape(Rule):
    code = "PRT017"
    name = "bce-input-shape"
    summary = "A binary cross-entropy's input is viewed as its target ([batch, 1] vs [batch])."
    rationale = __doc__
    settles = True
    triggers = ("BCELoss", "BCEWithLogitsLoss", "binary_cross_entropy")
    examples = (
        Example(
            before="""
                class Model(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.mlp = nn.Sequential(nn.Linear(8, 1), nn.Sigmoid())
                        self.loss_func = nn.BCELoss()

                    def forward(self, x, labels):
                        logits = self.mlp(x)
                        loss = self.loss_func(logits, labels.float())
                        return loss, (logits > 0.5).int()
            """,
            after="""
                class Model(nn.Module):
                    def __init__(self):
                        super().__init__()
                        self.mlp = nn.Sequential(nn.Linear(8, 1), nn.Sigmoid())
                        self.loss_func = nn.BCELoss()

                    def forward(self, x, labels):
                        logits = self.mlp(x)
                        loss = self.loss_func(logits.view_as(labels), labels.float())
                        return loss, (logits > 0.5).int()
            """,
            messages=(
                "a binary cross-entropy's input and target must have one shape on today's torch "
                "(a [batch, 1] head against [batch] labels, which old torch paired element by "
                "element, is a ValueError): view the input as the target (a no-op where they "
                "agree)",
            ),
        ),
        Example(
            before="""
                loss = F.binary_cross_entropy(probs.view(-1), labels.float())
                weighted = nn.BCEWithLogitsLoss(pos_weight=w)(logits, labels)
                other = loss_fn(logits, labels)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        bound: dict[str | None, list[bool]] = {}
        for assign in tree.nodes(cst.Assign):
            for target in assign.targets:
                bound.setdefault(dotted_name(target.target), []).append(
                    _loss_constructor(assign.value)
                )
        # a name every binding of which is such a loss (not ``CrossEntropyLoss()`` in an else)
        losses = {name for name, kinds in bound.items() if name is not None and all(kinds)}
        for call in tree.nodes(cst.Call):
            func = call.func
            if not (
                dotted_name(func) in losses
                or _loss_constructor(func)
                or (callee_name(call) in _FUNCTIONS and not _weighted(call))
            ):
                continue
            if len(call.args) < 2 or any(a.keyword is not None or a.star for a in call.args[:2]):
                continue
            given, target = call.args[0].value, call.args[1].value
            like = _shape_of(target)
            if like is None or _reshaped(given):
                continue
            ctx.fix(
                call,
                "a binary cross-entropy's input and target must have one shape on today's torch "
                "(a [batch, 1] head against [batch] labels, which old torch paired element by "
                "element, is a ValueError): view the input as the target (a no-op where they "
                "agree)",
                {given: _viewed(given, like)},
            )


def _weighted(call: cst.Call) -> bool:
    return len(call.args) > 2 or any(
        a.keyword is not None and "weight" in a.keyword.value for a in call.args
    )


def _reshaped(node: cst.BaseExpression) -> bool:
    return (
        type(node) is cst.Call
        and type(node.func) is cst.Attribute
        and node.func.attr.value in _RESHAPES
    )
