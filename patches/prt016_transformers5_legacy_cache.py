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
the call is a list comprehension (or ``tuple``/``list`` of a generator) over
``<output>.past_key_values`` whose element iterates the layer (``for x in y`` or ``enumerate(y)``),
and ``<output>`` has one binding, the same at the comprehension and the call, from a call that
runs before the call whenever it does. Any other iteration of a ``.past_key_values`` attribute is
reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Replacement, Tree
from patches import _legacy_cache
from patches._args import keyword_arg
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
    """One binding of the context: the ``<output>.past_key_values`` it iterates."""

    source: cst.Attribute
    output: cst.Name


def _cache_of(node: cst.BaseExpression) -> cst.Name | None:
    """``<name>.past_key_values`` → ``<name>``."""
    if isinstance(node, cst.Attribute) and node.attr.value == FIELD:
        return node.value if isinstance(node.value, cst.Name) else None
    return None


def _comprehension(value: cst.BaseExpression) -> cst.ListComp | cst.GeneratorExp | None:
    """``[... for ...]`` or ``tuple(... for ...)`` / ``list(... for ...)``."""
    if isinstance(value, cst.ListComp):
        return value
    if (
        isinstance(value, cst.Call)
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
    if isinstance(source, cst.Call) and callee_name(source) == "enumerate" and source.args:
        source = source.args[0].value if len(source.args) == 1 else source
    return isinstance(source, cst.Name) and source.value == layer


def _context(value: cst.BaseExpression) -> _Context | None:
    """A binding's value that rebuilds the per-layer tuples of ``<output>.past_key_values``."""
    outer = _comprehension(value)
    if outer is None or outer.for_in.inner_for_in is not None or outer.for_in.ifs:
        return None
    target, source = outer.for_in.target, outer.for_in.iter
    output = _cache_of(source)
    if output is None or not isinstance(target, cst.Name) or not _iterates(outer.elt, target.value):
        return None
    assert isinstance(source, cst.Attribute)
    return _Context(source, output)


def _contexts(tree: Tree, call: cst.Call, name: str) -> list[_Context] | None:
    """The contexts every binding of ``name`` reaching ``call`` builds, when all do, from one
    output whose single binding (a call's result) reaches both them and the call."""
    fn = tree.scope(call)
    if not isinstance(fn, cst.FunctionDef):
        return None
    found = []
    for binding in reaching(tree, fn, name, call):
        assign = tree.parent(binding)
        if not (
            isinstance(binding, cst.AssignTarget)
            and isinstance(binding.target, cst.Name)
            and isinstance(assign, cst.Assign)
            and len(assign.targets) == 1
        ):
            return None
        context = _context(assign.value)
        if context is None:
            return None
        found.append(context)
    outputs = {c.output.value for c in found}
    if len(outputs) != 1:
        return None
    output = outputs.pop()
    at_call = reaching(tree, fn, output, call)
    if len(at_call) != 1:
        return None
    made = tree.parent(at_call[0])
    if not (isinstance(made, cst.Assign) and isinstance(made.value, cst.Call)):
        return None
    if not tree.after(call, made) or not dominates(tree, made, call):
        return None  # the call's own output, or one it may run without: no cache to copy
    for context in found:
        if [id(b) for b in reaching(tree, fn, output, context.source)] != [id(at_call[0])]:
            return None
    return found


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
        tree = ctx.tree
        replacements: dict[cst.CSTNode, Replacement] = {}
        places: list[tuple[cst.CSTNode, str]] = []
        first: cst.CSTNode | None = None
        for call in tree.nodes(cst.Call):
            arg = keyword_arg(call, FIELD)
            if arg is None or not isinstance(arg.value, cst.Name):
                continue
            contexts = _contexts(tree, call, arg.value.value)
            if not contexts:
                continue
            source = contexts[0].source
            replacements[arg.value] = _wrapped(_legacy_cache.LIKE, arg.value, source.deep_clone())
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
