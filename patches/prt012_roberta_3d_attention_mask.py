"""PRT012 roberta-3d-attention-mask: a 3-D ``[batch, len, len]`` attention mask needs 4-D on 5.

GraphCodeBERT-style models give RoBERTa/BERT a per-example mask between code tokens and
data-flow nodes: ``encoder(inputs_embeds=e, attention_mask=attn_mask, ...)`` with ``attn_mask``
of shape ``[batch, len, len]``. transformers 4 extended it itself (``get_extended_attention_mask``:
``mask[:, None, :, :]``, then ``(1 - mask) * finfo(dtype).min``, added to the scores).
transformers 5 reads any mask that is not 4-D as a ``[batch, len]`` padding mask and crashes
(``expand(... [b, 1, 1, l, l], size=[b, -1, l, l])``); it passes a 4-D mask through unchanged,
where the eager attention *adds* it and SDPA reads a boolean as keep/drop. Only the additive
float form means the same under both (a boolean 4-D mask is wrong under eager and differs from
4 on fully masked rows under SDPA), and transformers 4 rejects every 4-D mask, so the rewrite
keeps the mask on 4 and builds 4's additive mask on 5::

    attention_mask=m if int(transformers.__version__.split(".")[0]) < 5
    else (1.0 - m[:, None, :, :].to(e.dtype)) * torch.finfo(e.dtype).min

The dtype comes from the call's ``inputs_embeds=e`` (4 used the model's dtype, which the
embeddings have). The mask must be known to be 3-D in the function making the call: a name bound
only by ``.view(a, b, c)`` / ``.reshape(a, b, c)`` / ``torch.zeros((a, b, c))``-style shapes, or
a parameter combined with a pairwise ``x[:, :, None] & y[:, None, :]`` product whose result
feeds a 3-index ``torch.einsum`` operand (the data-flow idiom: broadcasting with a
``[b, l, l]`` tensor and staying 3-D rules out a ``[b, l]`` padding mask and a 4-D one). A known
3-D mask without ``inputs_embeds=<name>`` is reported without a fix; masks already given
``[:, None, :, :]`` or ``.unsqueeze(1)`` are expressions, not names, and are left alone.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Replacement, Tree
from patches._args import keyword_arg
from patches._names import bindings_of, walk
from patches._syntax import callee_name, dotted_name, preferred_quote, string_value

#: ``torch.<factory>(shape)`` calls whose positional shape gives the number of dimensions.
_FACTORIES = frozenset({"zeros", "ones", "empty", "rand", "randn", "full"})


def _three_d(value: cst.BaseExpression) -> bool:
    """A tensor expression whose shape is literally three dimensions."""
    if not isinstance(value, cst.Call):
        return False
    name = callee_name(value)
    args = list(value.args)
    if any(a.star for a in args):
        return False
    positional = [a for a in args if a.keyword is None]
    if name in ("view", "reshape") and isinstance(value.func, cst.Attribute):
        if len(positional) == 1 and isinstance(positional[0].value, (cst.Tuple, cst.List)):
            return len(positional[0].value.elements) == 3
        return len(positional) == 3 and not isinstance(positional[0].value, (cst.Tuple, cst.List))
    dotted = dotted_name(value.func) or ""
    if name in _FACTORIES and dotted.startswith("torch."):
        if positional and isinstance(positional[0].value, (cst.Tuple, cst.List)):
            return len(positional[0].value.elements) == 3
        return name != "full" and len(positional) == 3
    return False


def _operands(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The operands of a chain of ``&`` / ``*`` (parentheses are part of the nodes)."""
    if isinstance(node, cst.BinaryOperation) and isinstance(
        node.operator, (cst.BitAnd, cst.Multiply)
    ):
        return _operands(node.left) + _operands(node.right)
    return [node]


def _none_at(node: cst.BaseExpression) -> int | None:
    """``x[:, :, None]`` → 2, ``x[:, None, :]`` → 1; anything else → None."""
    if not isinstance(node, cst.Subscript) or len(node.slice) != 3:
        return None
    kinds = []
    for element in node.slice:
        index = element.slice
        if isinstance(index, cst.Slice) and index.lower is None and index.upper is None:
            kinds.append(":")
        elif isinstance(index, cst.Index) and dotted_name(index.value) == "None":
            kinds.append("None")
        else:
            return None
    return kinds.index("None") if kinds.count("None") == 1 else None


def _einsum_three_index(fn: cst.FunctionDef, name: str) -> bool:
    """Whether ``name`` is a ``torch.einsum`` operand whose subscript has three indices."""
    for node in walk(fn.body, into_scopes=False):
        if not (isinstance(node, cst.Call) and (dotted_name(node.func) or "").endswith("einsum")):
            continue
        if not node.args:
            continue
        spec = string_value(node.args[0].value)
        if spec is None or "->" not in spec:
            continue
        inputs = [s.strip() for s in spec.split("->")[0].split(",")]
        for position, arg in enumerate(node.args[1:]):
            value = arg.value
            if isinstance(value, cst.Name) and value.value == name and position < len(inputs):
                if len(inputs[position]) == 3 and inputs[position].isalpha():
                    return True
    return False


def _pairwise_three_d(fn: cst.FunctionDef, name: str) -> bool:
    """``t = x[:, :, None] & y[:, None, :] & name`` with ``t`` then a 3-index einsum operand."""
    for node in walk(fn.body, into_scopes=False):
        if not (isinstance(node, cst.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0].target
        if not isinstance(target, cst.Name):
            continue
        operands = _operands(node.value)
        has_name = any(isinstance(o, cst.Name) and o.value == name for o in operands)
        nones = {_none_at(o) for o in operands}
        if has_name and {1, 2} <= nones and _einsum_three_index(fn, target.value):
            return True
    return False


def known_three_d(tree: Tree, call: cst.Call, name: str) -> bool:
    """Whether the mask ``name`` passed in ``call`` is 3-D in the function making the call."""
    fn = tree.scope(call)
    if not isinstance(fn, cst.FunctionDef):
        return False
    loops = [a for a in tree.ancestors(call) if isinstance(a, (cst.For, cst.While))]
    bindings = [
        b
        for b in bindings_of(fn, name)
        if isinstance(b, cst.Param)
        or tree.order(b) < tree.order(call)
        or any(tree.contains(loop, b) for loop in loops)
    ]  # a binding after the call (outside any loop around it) cannot reach it
    if not bindings:
        return False
    if all(isinstance(b, cst.Param) for b in bindings):
        return _pairwise_three_d(fn, name)
    return all(
        isinstance(b, cst.AssignTarget)
        and isinstance(assign := tree.parent(b), cst.Assign)
        and _three_d(assign.value)
        for b in bindings
    )


def rewritten_mask(mask: str, embeds: str, quote: str = '"') -> cst.BaseExpression:
    """4's mask on transformers 4, 4's extended additive mask on 5 (same numbers)."""
    version = f"int(transformers.__version__.split({quote}.{quote})[0]) < 5"
    additive = f"(1.0 - {mask}[:, None, :, :].to({embeds}.dtype)) * torch.finfo({embeds}.dtype).min"
    return cst.parse_expression(f"{mask} if {version} else {additive}")


class Roberta3dAttentionMask(Rule):
    code = "PRT012"
    name = "roberta-3d-attention-mask"
    summary = "Give RoBERTa/BERT a 3-D [batch, len, len] mask in the 4-D form transformers 5 needs."
    rationale = __doc__
    settles = True
    triggers = ("attention_mask",)
    examples = (
        Example(
            before="""
                import torch
                def forward(self, ids, m1, m2, l):
                    mask = torch.cat((m1, m2), 0).view(-1, l, l)
                    e = self.encoder.embeddings.word_embeddings(ids)
                    return self.encoder(inputs_embeds=e, attention_mask=mask)[0]
            """,
            after="""
                import torch
                import transformers
                def forward(self, ids, m1, m2, l):
                    mask = torch.cat((m1, m2), 0).view(-1, l, l)
                    e = self.encoder.embeddings.word_embeddings(ids)
                    return self.encoder(inputs_embeds=e, attention_mask=mask if int(transformers.__version__.split(".")[0]) < 5 else (1.0 - mask[:, None, :, :].to(e.dtype)) * torch.finfo(e.dtype).min)[0]
            """,  # noqa: E501
            messages=(
                "mask is a 3-D [batch, len, len] mask: transformers 5 needs it 4-D and additive "
                "(as transformers 4 extended it)",
            ),
        ),
        Example(
            before="""
                import torch
                def forward(self, ids, l):
                    mask = torch.ones((ids.size(0), l, l))
                    return self.encoder(ids, attention_mask=mask)[0]
            """,
            reports=1,
            messages=(
                "mask is a 3-D [batch, len, len] mask, which transformers 5 reads as [batch, "
                "len]: give it the 4-D additive form (no inputs_embeds to take the dtype from)",
            ),
        ),
        Example(
            before="""
                def forward(self, ids):
                    mask = ids.ne(1).view(ids.size(0), -1)
                    return self.encoder(inputs_embeds=ids, attention_mask=mask)[0]
            """,
        ),
        Example(
            before="""
                def forward(self, e, mask):
                    return self.encoder(inputs_embeds=e, attention_mask=mask[:, None, :, :])
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        quote = preferred_quote(tree.code)
        for call in tree.nodes(cst.Call):
            arg = keyword_arg(call, "attention_mask")
            if arg is None or not isinstance(arg.value, cst.Name):
                continue
            mask = arg.value.value
            if not known_three_d(tree, call, mask):
                continue
            embeds = keyword_arg(call, "inputs_embeds")
            if embeds is None or not isinstance(embeds.value, cst.Name):
                ctx.report(
                    call,
                    f"{mask} is a 3-D [batch, len, len] mask, which transformers 5 reads as "
                    "[batch, len]: give it the 4-D additive form (no inputs_embeds to take "
                    "the dtype from)",
                )
                continue
            replacements: dict[cst.CSTNode, Replacement] = {
                arg.value: rewritten_mask(mask, embeds.value.value, quote)
            }
            ctx.fix(
                call,
                f"{mask} is a 3-D [batch, len, len] mask: transformers 5 needs it 4-D and "
                "additive (as transformers 4 extended it)",
                replacements,
                imports=("torch", "transformers"),
            )
