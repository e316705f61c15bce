"""PRT015 transformers5-model-code: a script's own model code against what transformers 5 dropped.

Model files that subclass transformers' classes (LongCoder's ``longcoder.py``, a Longformer
rewritten as a decoder) lean on two things transformers 5 changed, and each stops training at
the first forward:

- ``self.get_extended_attention_mask(mask, shape)``: 5 removed the method from
  ``PreTrainedModel`` (AttributeError). The call becomes ``get_extended_attention_mask(self,
  mask, shape)``, a module function with transformers 4's behaviour
  (``patches/_extended_mask.py``) the rule adds after the last import that comes before the
  module's first other top-level statement (so it exists before top-level code such as ``if
  __name__ == "__main__": main()`` runs; no such import: reported). It is rewritten only when
  ``self`` is the method's
  first parameter (not a static or class method), never rebound, and the class derives from
  transformers through classes of this module (and ``nn.Module``) none of which defines the
  method. A class with a base from another module is reported (it may define the method);
  calls on other receivers (``self.bert....``) and classes not from transformers are left
  alone. ``self.invert_attention_mask``, ``self.get_head_mask`` and
  ``self.create_extended_attention_mask_for_decoder``, gone too, are reported.
- A ``@dataclass`` output declaring ``past_key_values: ... = None`` on ``ModelOutput``: 5 (5.24
  here) renames ``past_key_values`` to ``cache`` in every ``ModelOutput`` (the constructor
  keyword, attribute writes and keys), so building the output with ``past_key_values=...``
  raises TypeError (``unexpected keyword argument 'cache'``) and a value given by position is
  stored where the field never sees it. The field is declared under the name the installed
  transformers uses: ``cache`` when ``ModelOutput`` has 5's ``past_key_values`` property (which
  reads ``cache``, as do ``out["past_key_values"]`` and ``past_key_values=`` on 5),
  ``past_key_values`` before, in the same place, so positions and ``to_tuple()`` are unchanged
  and the code runs on either.
  A class that declares ``cache`` too, or builds on another output class, is reported.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Replacement, Tree
from patches import _extended_mask
from patches._bundled import bundled
from patches._names import bindings_of
from patches._syntax import (
    dotted_name,
    last_import,
    method_self,
    module_binds,
    preferred_quote,
)

#: ``ModuleUtilsMixin`` methods transformers 5 removed that no fix here rebuilds.
GONE = ("invert_attention_mask", "get_head_mask", "create_extended_attention_mask_for_decoder")
FIELD = "past_key_values"
#: Classes a model class may also derive from that define none of the mask methods.
_NEUTRAL = frozenset({"object", "nn.Module", "torch.nn.Module", "Module"})


def _transformers_names(tree: Tree) -> dict[str, str]:
    """Names bound by ``from transformers... import X [as Y]`` → ``X``; ``import transformers``
    binds ``transformers`` (its attributes count)."""
    found: dict[str, str] = {}
    for node in tree.nodes(cst.ImportFrom):
        module = dotted_name(node.module) or ""
        if node.relative or not (module == "transformers" or module.startswith("transformers.")):
            continue
        if isinstance(node.names, cst.ImportStar):
            continue
        for alias in node.names:
            bound = alias.asname.name if alias.asname else alias.name
            if type(bound) is cst.Name:
                found[bound.value] = dotted_name(alias.name) or ""
    for node in tree.nodes(cst.Import):
        for alias in node.names:
            if dotted_name(alias.name) == "transformers" and alias.asname is None:
                found["transformers"] = "transformers"
    return found


class _Classes:
    """The module's classes and where their bases lead."""

    def __init__(self, tree: Tree) -> None:
        self.imported = _transformers_names(tree)
        self.local = {c.name.value: c for c in tree.module.body if type(c) is cst.ClassDef}

    def _local_bases(self, cls: cst.ClassDef, seen: frozenset[str]) -> list[cst.ClassDef]:
        names = [dotted_name(b.value) or "" for b in cls.bases if b.keyword is None]
        return [self.local[n] for n in names if n in self.local and n not in seen]

    def reaches(self, cls: cst.ClassDef, seen: frozenset[str] = frozenset()) -> bool | None:
        """True when ``cls`` derives from transformers (through this module's classes and
        neutral bases), False when it does not, None when a base is unknown."""
        seen = seen | {cls.name.value}
        found = False
        for base in cls.bases:
            if base.keyword is not None:
                continue
            dotted = dotted_name(base.value) or ""
            if dotted in _NEUTRAL:
                continue
            if dotted in self.imported or dotted.startswith("transformers."):
                found = True
            elif dotted in self.local:
                below = False if dotted in seen else self.reaches(self.local[dotted], seen)
                if below is None:
                    return None
                found = found or below
            else:
                return None
        return found

    def defines(self, cls: cst.ClassDef, method: str, seen: frozenset[str] = frozenset()) -> bool:
        """Whether ``cls`` or one of this module's classes it derives from defines ``method``."""
        if any(type(s) is cst.FunctionDef and s.name.value == method for s in cls.body.body):
            return True
        seen = seen | {cls.name.value}
        return any(self.defines(c, method, seen) for c in self._local_bases(cls, seen))

    def is_model_output(self, base: cst.BaseExpression) -> bool:
        dotted = dotted_name(base) or ""
        return self.imported.get(dotted) == "ModelOutput" or dotted == "transformers.ModelOutput"


def _is_dataclass(cls: cst.ClassDef) -> bool:
    for decorator in cls.decorators:
        target = decorator.decorator
        target = target.func if type(target) is cst.Call else target
        if dotted_name(target) in ("dataclass", "dataclasses.dataclass"):
            return True
    return False


def _field(statement: cst.CSTNode, name: str) -> cst.AnnAssign | None:
    """``name: T = value`` as a class-body line of its own."""
    if type(statement) is cst.SimpleStatementLine and len(statement.body) == 1:
        node = statement.body[0]
        if type(node) is cst.AnnAssign and dotted_name(node.target) == name:
            return node
    return None


def _either_name(
    line: cst.SimpleStatementLine, field: cst.AnnAssign, base: str, quote: str
) -> cst.If:
    """``if hasattr(<ModelOutput>, "past_key_values"): cache: T = v`` / ``else:`` the line."""
    test = cst.parse_expression(f"hasattr({base}, {quote}{FIELD}{quote})")
    cache = line.with_changes(body=[field.with_changes(target=cst.Name("cache"))], leading_lines=[])
    comment = cst.TrailingWhitespace(
        whitespace=cst.SimpleWhitespace("  "),
        comment=cst.Comment("# transformers 5 names it cache"),
    )
    return cst.If(
        test,
        cst.IndentedBlock([cache], header=comment),
        orelse=cst.Else(cst.IndentedBlock([line.with_changes(leading_lines=[])])),
        leading_lines=line.leading_lines,
    )


class Transformers5ModelCode(Rule):
    code = "PRT015"
    name = "transformers5-model-code"
    summary = "Model code's get_extended_attention_mask calls and past_key_values fields, for v5."
    rationale = __doc__
    settles = True
    triggers = (_extended_mask.NAME, FIELD, *GONE)
    examples = (
        Example(
            before="""
                import torch
                from transformers.modeling_utils import PreTrainedModel

                class Decoder(PreTrainedModel):
                    def forward(self, ids, mask):
                        mask = self.get_extended_attention_mask(mask, ids.shape)[:, 0, 0, :]
                        return self.encoder(self.embeddings(ids), mask)
            """,
            after='''
                import torch
                from transformers.modeling_utils import PreTrainedModel


                def get_extended_attention_mask(
                    model, attention_mask, input_shape, device=None, dtype=None
                ):
                    """transformers 4's PreTrainedModel.get_extended_attention_mask (gone in 5):
                    the mask made broadcastable to the attention scores, 0 where attended and the
                    dtype's minimum where masked; a decoder's 2-D mask is made causal as well."""
                    dtype = model.dtype if dtype is None else dtype
                    if attention_mask.dim() == 3:
                        extended = attention_mask[:, None, :, :]
                    elif attention_mask.dim() != 2:
                        shape = tuple(attention_mask.shape)
                        raise ValueError(f"attention_mask of shape {shape} is not 2-D or 3-D")
                    elif getattr(model.config, "is_decoder", False):
                        length = input_shape[1]
                        position = torch.arange(length, device=attention_mask.device)
                        causal = (position[None, :] <= position[:, None]).to(attention_mask.dtype)
                        cached = attention_mask.shape[1] - length
                        if cached > 0:  # positions before the input (cached): every query sees them
                            causal = torch.cat([causal.new_ones(length, cached), causal], dim=-1)
                        extended = causal[None, None, :, :] * attention_mask[:, None, None, :]
                    else:
                        extended = attention_mask[:, None, None, :]
                    extended = extended.to(dtype=dtype)
                    return (1.0 - extended) * torch.finfo(dtype).min

                class Decoder(PreTrainedModel):
                    def forward(self, ids, mask):
                        mask = get_extended_attention_mask(self, mask, ids.shape)[:, 0, 0, :]
                        return self.encoder(self.embeddings(ids), mask)
            ''',
            messages=(
                "get_extended_attention_mask was removed from PreTrainedModel in transformers 5: "
                "a module function with transformers 4's behaviour",
            ),
        ),
        Example(
            before="""
                from dataclasses import dataclass
                from typing import Optional, Tuple
                import torch
                from transformers.utils import ModelOutput

                @dataclass
                class DecoderOutput(ModelOutput):
                    last_hidden_state: torch.FloatTensor
                    past_key_values: Optional[Tuple[torch.FloatTensor]] = None
                    attentions: Optional[Tuple[torch.FloatTensor]] = None
            """,
            after="""
                from dataclasses import dataclass
                from typing import Optional, Tuple
                import torch
                from transformers.utils import ModelOutput

                @dataclass
                class DecoderOutput(ModelOutput):
                    last_hidden_state: torch.FloatTensor
                    if hasattr(ModelOutput, "past_key_values"):  # transformers 5 names it cache
                        cache: Optional[Tuple[torch.FloatTensor]] = None
                    else:
                        past_key_values: Optional[Tuple[torch.FloatTensor]] = None
                    attentions: Optional[Tuple[torch.FloatTensor]] = None
            """,
            messages=(
                "transformers 5 renames a ModelOutput's past_key_values to cache (building this "
                "output with past_key_values= raises TypeError): the field takes the name the "
                "installed transformers uses",
            ),
        ),
        Example(
            before="""
                from transformers import PreTrainedModel

                class Encoder(PreTrainedModel):
                    def forward(self, ids, mask, head_mask=None):
                        head_mask = self.get_head_mask(head_mask, self.config.num_hidden_layers)
                        return self.layers(ids, mask, head_mask)
            """,
            reports=1,
            messages=(
                "get_head_mask was removed from PreTrainedModel in transformers 5: write what "
                "it did in the model code",
            ),
        ),
        Example(
            before="""
                from transformers import PreTrainedModel

                class Encoder(PreTrainedModel):
                    def get_extended_attention_mask(self, mask, shape):
                        return mask[:, None, None, :]

                    def forward(self, ids, mask):
                        return self.get_extended_attention_mask(mask, ids.shape)
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        if bundled(ctx.path, "transformers"):
            return  # the script imports the copy its project ships, not today's transformers
        classes = _Classes(ctx.tree)
        self._mask_calls(ctx, classes)
        for cls in ctx.tree.nodes(cst.ClassDef):
            self._output_fields(ctx, classes, cls)

    def _mask_calls(self, ctx: RuleContext, classes: _Classes) -> None:
        tree = ctx.tree
        fixes: list[tuple[cst.Call, cst.Call]] = []
        for call in tree.nodes(cst.Call):
            func = call.func
            if not (type(func) is cst.Attribute and type(func.value) is cst.Name):
                continue
            method = func.attr.value
            if method != _extended_mask.NAME and method not in GONE:
                continue
            reaches = self._self_class(tree, func.value, classes, method)
            if reaches is False:
                continue  # not a transformers model's method: someone else's
            removed = f"{method} was removed from PreTrainedModel in transformers 5"
            if reaches is None:
                ctx.report(
                    call,
                    f"{removed}; whether this class gets it from there cannot be told here (a "
                    "base from another module): check it",
                )
                continue
            if method in GONE:
                ctx.report(call, f"{removed}: write what it did in the model code")
                continue
            receiver = cst.Arg(
                func.value, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            )
            new = call.with_changes(func=cst.Name(method), args=[receiver, *call.args])
            fixes.append((call, new))
        if not fixes:
            return
        first = fixes[0][0]
        message = f"{_extended_mask.NAME} was removed from PreTrainedModel in transformers 5"
        last = last_import(tree.module, before_code=True)
        if last is None or module_binds(tree, _extended_mask.NAME):
            for call, _ in fixes:
                ctx.report(call, f"{message}: the module has no place for the helper")
            return
        replacements: dict[cst.CSTNode, Replacement] = dict(fixes)
        replacements[last] = Around(after=(_extended_mask.helper(),))
        ctx.fix(
            first,
            f"{message}: a module function with transformers 4's behaviour",
            replacements,
            [(call, f"{message}: the module function instead") for call, _ in fixes[1:]],
            imports=("torch",),
        )

    @staticmethod
    def _self_class(tree: Tree, receiver: cst.Name, classes: _Classes, method: str) -> bool | None:
        """Whether ``receiver`` is ``self`` of a method of a class deriving from transformers
        (:meth:`_Classes.reaches`); False when it is not a transformers model's ``self`` or the
        module defines ``method`` for it."""
        function = tree.scope(receiver)
        if type(function) is not cst.FunctionDef:
            return False
        owner = method_self(tree, function)
        if owner is None or owner[1] != receiver.value:
            return False
        cls = owner[0]
        if classes.defines(cls, method):
            return False
        reaches = classes.reaches(cls)
        if reaches and len(bindings_of(function, receiver.value)) != 1:
            return None  # ``self`` rebound: not the model any more
        return reaches

    def _output_fields(self, ctx: RuleContext, classes: _Classes, cls: cst.ClassDef) -> None:
        lines = {
            name: [s for s in cls.body.body if _field(s, name) is not None]
            for name in (FIELD, "cache")
        }
        if not lines[FIELD] or not _is_dataclass(cls):
            return
        bases = [b for b in cls.bases if b.keyword is None]
        direct = len(bases) == 1 and classes.is_model_output(bases[0].value)
        if not direct:
            if classes.reaches(cls) is not False:
                ctx.report(
                    lines[FIELD][0],
                    "transformers 5 renames a ModelOutput's past_key_values to cache: check "
                    "how this output class is built on 5 (past_key_values= raises TypeError)",
                )
            return
        if lines["cache"] or len(lines[FIELD]) != 1:
            ctx.report(lines[FIELD][0], "past_key_values and cache both declared: rename by hand")
            return
        line = lines[FIELD][0]
        assert type(line) is cst.SimpleStatementLine
        field = _field(line, FIELD)
        assert field is not None
        base = ctx.tree.module.code_for_node(bases[0].value)
        ctx.fix(
            line,
            "transformers 5 renames a ModelOutput's past_key_values to cache (building this "
            "output with past_key_values= raises TypeError): the field takes the name the "
            "installed transformers uses",
            {line: _either_name(line, field, base, preferred_quote(ctx.code))},
        )
