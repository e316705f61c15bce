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

The dtype is the one 4 used, the called model's (``get_extended_attention_mask`` defaults to
``self.dtype``): the call's ``inputs_embeds=e`` has it, else the model itself when it is an
attribute of ``self`` (``self.encoder(ids, attention_mask=m)``). The class often gets that model
as a constructor argument (CodeExecutor, UniXcoder: ``Model(encoder, ...)``, loaded in another
file), so it may be any ``nn.Module`` that hands the mask on, which has no ``.dtype``; the rewrite
takes what ``PreTrainedModel.dtype`` computes on 4 and 5 alike, the dtype of the first
floating-point parameter, ``next(p.dtype for p in self.encoder.parameters() if
p.is_floating_point())``, which any module with parameters (a wrapper included) answers. A model
called by any other name (a function's parameter or local) is reported, not rewritten: outside
a model class nothing says the callee is a module holding the model's parameters. A
``self.<name>`` the class sets to an instance of a class the module defines itself is a
hand-written layer that takes the mask as it is, not transformers': left alone.

The mask must be known to be 3-D in the function making the call, as a name (every binding
reaching the call) or as the argument itself:

- a ``.view(a, b, c)`` / ``.reshape(a, b, c)`` / ``torch.zeros((a, b, c))``-style shape;
- ``self.<name>`` for a buffer the class registers with such a shape
  (``register_buffer("bias", torch.tril(torch.ones((n, n))).view(1, n, n))``, UniXcoder and
  CodeExecutor's causal mask) and no code in the module assigns an attribute of that name; its
  slices ``self.bias[:, a:b, :c]`` are 3-D too;
- a pairwise ``x[:, :, None] * y[:, None, :]``, and ``|`` / ``&`` / ``*`` of these, with
  ``.bool()`` / ``.to(...)``-style casts and ``.eq(1)``-style comparisons with a number. A new
  axis on an (at least) 2-D tensor makes at least three dimensions, and transformers 4 rejected
  masks of more than three, so a script written for it passed exactly three;
- a parameter combined with a pairwise ``x[:, :, None] & y[:, None, :]`` product whose result
  feeds a 3-index ``torch.einsum`` operand (the data-flow idiom: broadcasting with a
  ``[b, l, l]`` tensor and staying 3-D rules out a ``[b, l]`` padding mask and a 4-D one).

With a cache (``past_key_values=``) the 3-D mask is ``[batch, new, past + new]``; the 4-D
additive ``[batch, 1, new, past + new]`` form is what 4 added to the scores, and 5 takes a 4-D
mask as it is (a cache 5 returned works; UniXcoder's beam search rebuilds the cache as nested
lists, which 5 no longer reads: that is not this rule's). Masks already given
``[:, None, :, :]`` or ``.unsqueeze(1)`` are not 3-D expressions and are left alone.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Replacement, Tree
from patches._args import keyword_arg
from patches._bundled import bundled
from patches._names import reaching, walk
from patches._syntax import (
    callee_name,
    dotted_name,
    method_self,
    preferred_quote,
    string_value,
)

#: ``torch.<factory>(shape)`` calls whose positional shape gives the number of dimensions.
_FACTORIES = frozenset({"zeros", "ones", "empty", "rand", "randn", "full"})


def _three_d(value: cst.BaseExpression) -> bool:
    """A tensor expression whose shape is literally three dimensions."""
    if type(value) is not cst.Call:
        return False
    name = callee_name(value)
    args = list(value.args)
    if any(a.star for a in args):
        return False
    positional = [a for a in args if a.keyword is None]
    if name in ("view", "reshape") and type(value.func) is cst.Attribute:
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
    if type(node) is cst.BinaryOperation and isinstance(node.operator, (cst.BitAnd, cst.Multiply)):
        return _operands(node.left) + _operands(node.right)
    return [node]


def _none_at(node: cst.BaseExpression) -> int | None:
    """``x[:, :, None]`` → 2, ``x[:, None, :]`` → 1; anything else → None."""
    if type(node) is not cst.Subscript or len(node.slice) != 3:
        return None
    kinds = []
    for element in node.slice:
        index = element.slice
        if type(index) is cst.Slice and index.lower is None and index.upper is None:
            kinds.append(":")
        elif type(index) is cst.Index and dotted_name(index.value) == "None":
            kinds.append("None")
        else:
            return None
    return kinds.index("None") if kinds.count("None") == 1 else None


def _einsum_three_index(fn: cst.FunctionDef, name: str) -> bool:
    """Whether ``name`` is a ``torch.einsum`` operand whose subscript has three indices."""
    for node in walk(fn.body, into_scopes=False):
        if not (type(node) is cst.Call and (dotted_name(node.func) or "").endswith("einsum")):
            continue
        if not node.args:
            continue
        spec = string_value(node.args[0].value)
        if spec is None or "->" not in spec:
            continue
        inputs = [s.strip() for s in spec.split("->")[0].split(",")]
        for position, arg in enumerate(node.args[1:]):
            value = arg.value
            if type(value) is cst.Name and value.value == name and position < len(inputs):
                if len(inputs[position]) == 3 and inputs[position].isalpha():
                    return True
    return False


def _pairwise_three_d(fn: cst.FunctionDef, name: str) -> bool:
    """``t = x[:, :, None] & y[:, None, :] & name`` with ``t`` then a 3-index einsum operand."""
    for node in walk(fn.body, into_scopes=False):
        if not (type(node) is cst.Assign and len(node.targets) == 1):
            continue
        target = node.targets[0].target
        if type(target) is not cst.Name:
            continue
        operands = _operands(node.value)
        has_name = any(type(o) is cst.Name and o.value == name for o in operands)
        nones = {_none_at(o) for o in operands}
        if has_name and {1, 2} <= nones and _einsum_three_index(fn, target.value):
            return True
    return False


#: Methods that keep a tensor's shape whatever their arguments: dtype and device changes.
_SAME_SHAPE = frozenset(
    {"bool", "byte", "int", "long", "float", "half", "double", "to", "type", "cuda", "cpu"}
    | {"contiguous", "clone", "detach"}
)
#: Element-wise comparisons: the same shape when the other side is a number.
_COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
#: ``dims`` answers: exactly three dimensions, or at least three (broadcast with ``[b, l, 1]``).
THREE, AT_LEAST_THREE = "3", "3+"


def _number(node: cst.BaseExpression) -> bool:
    if type(node) is cst.UnaryOperation and type(node.operator) is cst.Minus:
        node = node.expression
    return isinstance(node, (cst.Integer, cst.Float))


def _slice_kinds(node: cst.Subscript) -> list[str] | None:
    """``x[:, a:b, None]`` → [":", "a:b", "None"]; an integer or other index → None."""
    kinds = []
    for element in node.slice:
        index = element.slice
        if type(index) is cst.Slice:
            whole = index.lower is None and index.upper is None and index.step is None
            kinds.append(":" if whole else "a:b")
        elif type(index) is cst.Index and dotted_name(index.value) == "None":
            kinds.append("None")
        else:
            return None
    return kinds


def _stored_attributes(tree: Tree) -> set[str]:
    """Every attribute name assigned, augmented or deleted anywhere in the module."""

    def names() -> set[str]:
        found: set[str] = set()
        binders: list[cst.AssignTarget | cst.AugAssign | cst.AnnAssign | cst.Del | cst.For] = [
            *tree.nodes(cst.AssignTarget, cst.AugAssign, cst.AnnAssign),
            *tree.nodes(cst.Del, cst.For),
        ]
        for binder in binders:
            stored = walk(binder.target, into_scopes=False)
            found.update(n.attr.value for n in stored if type(n) is cst.Attribute)
        return found

    return tree.memo(("prt012", "stored attributes"), names)


def _three_d_buffer(tree: Tree, fn: cst.FunctionDef, node: cst.Attribute) -> bool:
    """``self.<name>`` where the class registers buffer ``<name>`` with a 3-D value, and nothing
    in the module assigns an attribute of that name (``self.bias = ...`` could change it)."""
    method = method_self(tree, fn)
    if method is None or dotted_name(node.value) != method[1]:
        return False
    cls = method[0]
    name = node.attr.value
    if name in _stored_attributes(tree):
        return False
    values = []
    for call in tree.nodes(cst.Call):
        if callee_name(call) != "register_buffer" or not call.args:
            continue
        if string_value(call.args[0].value) != name:
            continue
        scope = tree.scope(call)
        registers = method_self(tree, scope) if type(scope) is cst.FunctionDef else None
        if not (
            type(call.func) is cst.Attribute
            and registers is not None
            and registers[0] is cls
            and dotted_name(call.func.value) == registers[1]
            and len(call.args) >= 2
        ):
            return False  # registered on something else, or elsewhere: not provably this one
        values.append(call.args[1].value)
    return bool(values) and all(_three_d(value) for value in values)


def _broadcast(*dims: str | None) -> str | None:
    if any(d is None for d in dims):
        return None
    return THREE if all(d == THREE for d in dims) else AT_LEAST_THREE


def dims(
    tree: Tree, fn: cst.FunctionDef, node: cst.BaseExpression, seen: frozenset = frozenset()
) -> str | None:
    """``THREE`` / ``AT_LEAST_THREE`` when ``node`` is provably a tensor of that many dimensions
    in ``fn``; None when unknown."""
    if _three_d(node):
        return THREE
    if type(node) is cst.Attribute:
        return THREE if _three_d_buffer(tree, fn, node) else None
    if type(node) is cst.Subscript:
        kinds = _slice_kinds(node)
        if kinds is None or len(kinds) != 3:
            return None
        if kinds.count("None") == 1 and kinds.count(":") == 2:
            return AT_LEAST_THREE  # one new axis on an (at least) 2-D tensor
        if "None" not in kinds:
            return dims(tree, fn, node.value, seen)  # slices keep the dimensions
        return None
    if type(node) is cst.Call and type(node.func) is cst.Attribute:
        method = node.func.attr.value
        if method in _SAME_SHAPE or (
            method in _COMPARISONS
            and len(node.args) == 1
            and node.args[0].keyword is None
            and _number(node.args[0].value)
        ):
            return dims(tree, fn, node.func.value, seen)
        return None
    if type(node) is cst.BinaryOperation and isinstance(
        node.operator, (cst.BitOr, cst.BitAnd, cst.Multiply)
    ):
        return _broadcast(dims(tree, fn, node.left, seen), dims(tree, fn, node.right, seen))
    if type(node) is cst.Name:
        return _name_dims(tree, fn, node.value, node, seen)
    return None


def _name_dims(
    tree: Tree, fn: cst.FunctionDef, name: str, at: cst.CSTNode, seen: frozenset
) -> str | None:
    """The dimensions every binding of ``name`` reaching ``at`` gives it (a parameter: unknown)."""
    bindings = [b for b in reaching(tree, fn, name, at) if id(b) not in seen]
    if not bindings:
        return None
    found = []
    for b in bindings:  # one already being computed adds nothing: it is built from these
        assign = tree.parent(b)
        if not (
            type(b) is cst.AssignTarget
            and type(b.target) is cst.Name
            and type(assign) is cst.Assign
        ):
            return None
        found.append(dims(tree, fn, assign.value, seen | {id(b)}))
    return _broadcast(*found)


def known_three_d(tree: Tree, call: cst.Call, mask: cst.BaseExpression) -> bool:
    """Whether ``mask``, passed in ``call``, is 3-D in the function making the call.

    At least three dimensions is enough: transformers 4 rejected a mask of more than three
    (``get_extended_attention_mask``), so a script written for it passed exactly three."""
    fn = tree.scope(call)
    if type(fn) is not cst.FunctionDef:
        return False
    if type(mask) is cst.Name:
        bindings = reaching(tree, fn, mask.value, call)
        if bindings and all(type(b) is cst.Param for b in bindings):
            return _pairwise_three_d(fn, mask.value)
    return dims(tree, fn, mask) is not None


def _own_module(tree: Tree, call: cst.Call) -> bool:
    """Whether ``call`` calls ``self.<name>`` that its class sets to an instance of a class the
    module defines itself: a hand-written layer that takes the 3-D mask as it is, not
    transformers' (whose models are loaded or passed in)."""
    fn = tree.scope(call)
    callee = dotted_name(call.func) or ""
    method = method_self(tree, fn) if type(fn) is cst.FunctionDef else None
    if method is None:
        return False
    cls = method[0]
    self_name, _, attr = callee.partition(".")
    if self_name != method[1] or not attr or "." in attr:
        return False
    defined = {c.name.value for c in tree.nodes(cst.ClassDef)}
    for target in walk(cls.body, into_scopes=True):
        if not (type(target) is cst.AssignTarget and type(target.target) is cst.Attribute):
            continue
        assign = tree.parent(target)
        if (
            dotted_name(target.target) == f"{self_name}.{attr}"
            and type(assign) is cst.Assign
            and type(assign.value) is cst.Call
            and callee_name(assign.value) in defined
        ):
            return True
    return False


def _dtype_source(tree: Tree, call: cst.Call) -> str | None:
    """The dtype the extended mask takes: the call's ``inputs_embeds=<name>``'s, else that of
    the called model's first floating-point parameter when the model is an attribute of
    ``self`` (4 used the called model's dtype, which is that for a ``PreTrainedModel``; any
    module answers it, not only a ``PreTrainedModel``)."""
    embeds = keyword_arg(call, "inputs_embeds")
    if embeds is not None:
        return f"{embeds.value.value}.dtype" if type(embeds.value) is cst.Name else None
    fn = tree.scope(call)
    callee = dotted_name(call.func)
    if type(fn) is not cst.FunctionDef or callee is None:
        return None
    method = method_self(tree, fn)
    if method is None or not callee.startswith(f"{method[1]}."):
        return None
    return f"next(p.dtype for p in {callee}.parameters() if p.is_floating_point())"


_ATOMS = (cst.Name, cst.Attribute, cst.Subscript, cst.Call)


def rewritten_mask(
    mask: str, dtype: str, quote: str = '"', atom: bool = True
) -> cst.BaseExpression:
    """4's mask on transformers 4, 4's extended additive mask on 5 (same numbers)."""
    version = f"int(transformers.__version__.split({quote}.{quote})[0]) < 5"
    extended = f"{mask}[:, None, :, :]" if atom else f"({mask})[:, None, :, :]"
    additive = f"(1.0 - {extended}.to({dtype})) * torch.finfo({dtype}).min"
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
                from torch import nn
                class Model(nn.Module):
                    def __init__(self, encoder, n):
                        super().__init__()
                        self.encoder = encoder
                        self.register_buffer("bias", torch.tril(torch.ones((n, n))).view(1, n, n))
                    def forward(self, ids, t):
                        mask = self.bias.bool() | (t.eq(1)[:, :, None] * t.eq(1)[:, None, :])
                        return self.encoder(ids, attention_mask=mask)[0]
            """,
            after="""
                import torch
                import transformers
                from torch import nn
                class Model(nn.Module):
                    def __init__(self, encoder, n):
                        super().__init__()
                        self.encoder = encoder
                        self.register_buffer("bias", torch.tril(torch.ones((n, n))).view(1, n, n))
                    def forward(self, ids, t):
                        mask = self.bias.bool() | (t.eq(1)[:, :, None] * t.eq(1)[:, None, :])
                        return self.encoder(ids, attention_mask=mask if int(transformers.__version__.split(".")[0]) < 5 else (1.0 - mask[:, None, :, :].to(next(p.dtype for p in self.encoder.parameters() if p.is_floating_point()))) * torch.finfo(next(p.dtype for p in self.encoder.parameters() if p.is_floating_point())).min)[0]
            """,  # noqa: E501
            messages=(
                "mask is a 3-D [batch, len, len] mask: transformers 5 needs it 4-D and additive "
                "(as transformers 4 extended it)",
            ),
        ),
        Example(
            before="""
                import torch
                def encode(encoder, ids, l):
                    mask = torch.ones((ids.size(0), l, l))
                    return encoder(ids, attention_mask=mask)[0]
            """,
            reports=1,
            messages=(
                "mask is a 3-D [batch, len, len] mask, which transformers 5 reads as [batch, "
                "len]: give it the 4-D additive form (neither inputs_embeds nor a model of "
                "self's to take the dtype from)",
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
        if bundled(ctx.path, "transformers"):
            return  # the script imports the copy its project ships, not today's transformers
        tree = ctx.tree
        quote = preferred_quote(tree.code)
        for call in tree.nodes(cst.Call):
            arg = keyword_arg(call, "attention_mask")
            if arg is None or not known_three_d(tree, call, arg.value) or _own_module(tree, call):
                continue
            mask = tree.module.code_for_node(arg.value)
            dtype = _dtype_source(tree, call)
            if dtype is None:
                ctx.report(
                    call,
                    f"{mask} is a 3-D [batch, len, len] mask, which transformers 5 reads as "
                    "[batch, len]: give it the 4-D additive form (neither inputs_embeds nor "
                    "a model of self's to take the dtype from)",
                )
                continue
            atom = isinstance(arg.value, _ATOMS)
            replacements: dict[cst.CSTNode, Replacement] = {
                arg.value: rewritten_mask(mask, dtype, quote, atom)
            }
            ctx.fix(
                call,
                f"{mask} is a 3-D [batch, len, len] mask: transformers 5 needs it 4-D and "
                "additive (as transformers 4 extended it)",
                replacements,
                imports=("torch", "transformers"),
            )
