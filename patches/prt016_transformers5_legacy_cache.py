"""PRT016 transformers5-legacy-cache: a cache rebuilt as per-layer tuples needs a Cache on 5.

UniXcoder's seq2seq models (code generation, summarization, completion; CodeExecutor's
inference) run RoBERTa as a decoder over the source's cache. The beam search slices the cache
the model returned for one example and passes it, unchanged, with the whole target prefix at
every step::

    encoder_output = self.encoder(source_ids, attention_mask=mask, use_cache=True)
    context = [[x[i:i+1, :, :n].repeat(k, 1, 1, 1) for x in y]
               for y in encoder_output.past_key_values]
    ...
    out = self.decoder(input_ids, attention_mask=mask, past_key_values=context)

transformers 4 returned one ``(key, value)`` tuple per layer and left a tuple given as
``past_key_values`` as it was. transformers 5 returns a ``DynamicCache``: iterating it yields
``(key, value, sliding window)`` (``None[i:i+1]`` fails), it cannot be indexed, nested lists
given back are not read (``'list' object has no attribute 'get_seq_length'``), and a cache
object given to a forward is appended to, so one built once and passed every step would grow.
The rule iterates ``legacy_cache_layers(encoder_output.past_key_values)`` (4's tuples from a
``DynamicCache``) and passes ``legacy_cache_like(context, encoder_output.past_key_values)``: a
new ``DynamicCache`` holding only the context on every call when the model returned one. Both
helpers, defined after the module's last import (``patches/_legacy_cache.py``), return anything
else as it is, so on 4, and for a model of the script's own that keeps lists (LongCoder), the
code runs as before (checked on 4.46.3 and 5.24). ``past_key_values=`` itself still works on 5.24,
with a FutureWarning: 5 renamed it ``cache`` and announces its removal for 5.40.

The shape must be certain: ``past_key_values=<name>`` where every binding of ``<name>`` reaching
the call is a list comprehension (or ``tuple``/``list`` of a generator) whose element iterates
the layer (``for x in y`` or ``enumerate(y)``) over a cache a model returned:
``<output>.past_key_values`` with ``<output>`` bound once (reaching the comprehension) to a
call's result, or a name bound once to a ``.past_key_values`` (CodeXGLUE Method-Generation's
GPT-2 beam search: ``outputs = model(inputs).past_key_values``, then each step's
``out.past_key_values`` re-sliced in the beams' order). The cache whose type the call copies
is one of these whose binding runs before the call whenever it does (not the call's own
output, not in a branch the call may run without). Any other iteration of a
``.past_key_values`` attribute is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Replacement, Tree
from patches import _legacy_cache
from patches._args import keyword_arg
from patches._bundled import bundled
from patches._names import reaching
from patches._syntax import callee_name, dominates, dotted_name, last_import, module_binds

FIELD = "past_key_values"
_FIX = (
    "transformers 5 returns a DynamicCache and appends to a cache it is given: the context is "
    "rebuilt as 4's per-layer tuples and passed as a new cache on every call"
)
_ITERATED = (
    "iterating a model's past_key_values: transformers 5 returns a DynamicCache, which iterates "
    "as (key, value, sliding window) per layer and cannot be indexed; rewrite by hand"
)


@dataclass(frozen=True)
class _Context:
    """One binding of the context: what it iterates (``<name>.past_key_values``, or ``<name>``
    bound to a ``.past_key_values``) and the name whose binding says it is a returned cache."""

    source: cst.BaseExpression
    name: cst.Name

    @property
    def is_output(self) -> bool:
        """Whether ``name`` is the model's output (else it is the cache itself)."""
        return type(self.source) is cst.Attribute


def _cache_of(node: cst.BaseExpression) -> cst.Name | None:
    """``<name>.past_key_values`` → ``<name>``."""
    if type(node) is cst.Attribute and node.attr.value == FIELD:
        return node.value if type(node.value) is cst.Name else None
    return None


def _comprehension(value: cst.BaseExpression) -> cst.ListComp | cst.GeneratorExp | None:
    """``[... for ...]`` or ``tuple(... for ...)`` / ``list(... for ...)``."""
    if type(value) is cst.ListComp:
        return value
    if (
        type(value) is cst.Call
        and dotted_name(value.func) in ("tuple", "list")
        and len(value.args) == 1
        and value.args[0].keyword is None
        and not value.args[0].star
        and isinstance(value.args[0].value, cst.GeneratorExp)
    ):
        return value.args[0].value
    return None


def _iterates(element: cst.BaseExpression, layer: str) -> bool:
    """Whether ``element`` is a comprehension over the layer ``layer`` (or its enumerate)."""
    inner = _comprehension(element)
    if inner is None or inner.for_in.inner_for_in is not None:
        return False
    source = inner.for_in.iter
    if type(source) is cst.Call and callee_name(source) == "enumerate" and source.args:
        source = source.args[0].value if len(source.args) == 1 else source
    return type(source) is cst.Name and source.value == layer


def _context(value: cst.BaseExpression) -> _Context | None:
    """A binding's value that rebuilds per-layer tuples from ``<output>.past_key_values`` or
    from a name (checked later to be bound to a ``.past_key_values``)."""
    outer = _comprehension(value)
    if outer is None or outer.for_in.inner_for_in is not None or outer.for_in.ifs:
        return None
    target, source = outer.for_in.target, outer.for_in.iter
    name = _cache_of(source) or (source if type(source) is cst.Name else None)
    if name is None or type(target) is not cst.Name or not _iterates(outer.elt, target.value):
        return None
    return _Context(source, name)


def _single_assign(
    tree: Tree, fn: cst.FunctionDef, name: cst.Name, at: cst.CSTNode
) -> cst.Assign | None:
    """The one assignment of ``name`` reaching ``at`` (its only target), or None."""
    bindings = reaching(tree, fn, name.value, at)
    if len(bindings) != 1 or not isinstance(bindings[0], cst.AssignTarget):
        return None
    assign = tree.parent(bindings[0])
    return assign if type(assign) is cst.Assign and len(assign.targets) == 1 else None


def _returned(context: _Context, assign: cst.Assign) -> bool:
    """Whether ``assign`` binds what ``context`` iterates as a model's cache: a call's output
    for ``<output>.past_key_values``, a ``.past_key_values`` for a name."""
    if context.is_output:
        return type(assign.value) is cst.Call
    return _cache_of(assign.value) is not None or (
        type(assign.value) is cst.Attribute
        and assign.value.attr.value == FIELD
        and type(assign.value.value) is cst.Call
    )


def _contexts(
    tree: Tree, call: cst.Call, name: str
) -> tuple[list[_Context], cst.BaseExpression] | None:
    """The contexts every binding of ``name`` reaching ``call`` builds, when all do, each from a
    cache a model returned (one binding of its name reaching the comprehension), and the cache
    the call copies the type of: one of them whose binding certainly runs before the call."""
    fn = tree.scope(call)
    if type(fn) is not cst.FunctionDef:
        return None
    found = []
    for binding in reaching(tree, fn, name, call):
        assign = tree.parent(binding)
        if not (
            type(binding) is cst.AssignTarget
            and type(binding.target) is cst.Name
            and type(assign) is cst.Assign
            and len(assign.targets) == 1
        ):
            return None
        context = _context(assign.value)
        if context is None:
            return None
        made = _single_assign(tree, fn, context.name, context.source)
        if made is None or not _returned(context, made):
            return None
        found.append((context, made))
    for context, made in found:
        if _single_assign(tree, fn, context.name, call) is not made:
            continue
        if tree.after(call, made) and dominates(tree, made, call):
            return [c for c, _ in found], context.source
    return None  # the call's own output, or one it may run without: no cache to copy


def _wrapped(name: str, *args: cst.BaseExpression) -> cst.Call:
    return cst.Call(cst.Name(name), [cst.Arg(a) for a in args])


class Transformers5LegacyCache(Rule):
    code = "PRT016"
    name = "transformers5-legacy-cache"
    summary = "Rebuild a beam search's per-layer cache tuples as a fresh Cache on transformers 5."
    rationale = __doc__
    settles = True
    triggers = (FIELD,)
    examples = (
        Example(
            before="""
                import torch
                def generate(self, ids, n):
                    out = self.encoder(ids, use_cache=True)
                    context = [[x[:, :, :n] for x in y] for y in out.past_key_values]
                    for _ in range(3):
                        h = self.decoder(ids, past_key_values=context).last_hidden_state
                    return h
            """,
            after='''
                import torch
                import transformers


                def legacy_cache_layers(cache):
                    """A model's cache as transformers 4 returned it, one (key, value) per layer:
                    5 returns a DynamicCache (iterated as (key, value, sliding window), not
                    indexable); anything else is returned as it is."""
                    if not isinstance(cache, getattr(transformers, "DynamicCache", ())):
                        return cache
                    if hasattr(cache, "to_legacy_cache"):  # transformers 4's DynamicCache
                        return cache.to_legacy_cache()
                    return tuple((layer.keys, layer.values) for layer in cache.layers)


                def legacy_cache_like(layers, returned):
                    """Per-layer (key, value) tensors in the form the model returned its cache in:
                    for a DynamicCache a new one on every call (a forward appends to the cache it
                    is given, where transformers 4 left the tuples as they were)."""
                    cache_type = getattr(transformers, "DynamicCache", ())
                    if not isinstance(returned, cache_type):
                        return layers
                    layers = tuple(tuple(layer) for layer in layers)
                    if hasattr(cache_type, "from_legacy_cache"):  # transformers 4
                        return cache_type.from_legacy_cache(layers)
                    return cache_type(layers)
                def generate(self, ids, n):
                    out = self.encoder(ids, use_cache=True)
                    context = [[x[:, :, :n] for x in y] for y in legacy_cache_layers(out.past_key_values)]
                    for _ in range(3):
                        h = self.decoder(ids, past_key_values=legacy_cache_like(context, out.past_key_values)).last_hidden_state
                    return h
            ''',  # noqa: E501
            messages=("the context iterates 4's per-layer tuples", _FIX),
        ),
        Example(
            before="""
                def step(model, ids, past):
                    out = model(ids, past_key_values=past)
                    return [layer[0] for layer in out.past_key_values]
            """,
            reports=1,
            messages=(_ITERATED,),
        ),
        Example(
            before="""
                def step(model, ids):
                    out = model(ids, use_cache=True)
                    return model(ids, past_key_values=out.past_key_values)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        if bundled(ctx.path, "transformers"):
            return  # the script imports the copy its project ships, not today's transformers
        tree = ctx.tree
        replacements: dict[cst.CSTNode, Replacement] = {}
        places: list[tuple[cst.CSTNode, str]] = []
        first: cst.CSTNode | None = None
        for call in tree.nodes(cst.Call):
            arg = keyword_arg(call, FIELD)
            if arg is None or type(arg.value) is not cst.Name:
                continue
            shape = _contexts(tree, call, arg.value.value)
            if shape is None:
                continue
            contexts, returned = shape
            replacements[arg.value] = _wrapped(_legacy_cache.LIKE, arg.value, returned.deep_clone())
            if first is None:
                first = call
            else:
                places.append((call, "a new cache on every call here too"))
            for context in contexts:
                if context.source not in replacements:
                    replacements[context.source] = _wrapped(_legacy_cache.LAYERS, context.source)
                    places.append((context.source, "the context iterates 4's per-layer tuples"))
        rewritten = {id(n) for n in replacements}
        for node in tree.nodes(cst.CompFor, cst.For):
            if _cache_of(node.iter) is not None and id(node.iter) not in rewritten:
                ctx.report(node.iter, _ITERATED)
        if first is None:
            return
        last = last_import(tree.module)
        taken = [n for n in _legacy_cache.NAMES if module_binds(tree, n)]
        if last is None or taken:
            why = f"the module defines {taken[0]}" if taken else "the module has no import"
            ctx.report(first, f"{_FIX.split(':')[0]}: rewrite by hand ({why})")
            return
        replacements[last] = Around(after=tuple(_legacy_cache.helpers()))
        ctx.fix(first, _FIX, replacements, places, imports=("transformers",))
