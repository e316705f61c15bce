"""PRT016's helpers: a model's cache as transformers 4's per-layer tuples, and back.

transformers 5 returns a ``DynamicCache`` where 4 returned one ``(key, value)`` tuple per layer:
iterating it yields ``(key, value, sliding window)`` and it cannot be indexed. It also no longer
takes nested tuples or lists as ``past_key_values``, and a cache object given to a forward is
appended to (4 left a tuple as it was, so a script could pass the same context every step).
``legacy_cache_layers`` gives 4's tuples from a ``DynamicCache``; ``legacy_cache_like`` turns
per-layer tensors into a new ``DynamicCache`` on every call when the model returned one. Both
hand anything else back as it is (4's tuples, a model of the script's own that keeps lists), so
the rewritten code does on 4 exactly what it did.
"""

from __future__ import annotations

import libcst as cst

LAYERS = "legacy_cache_layers"
LIKE = "legacy_cache_like"
NAMES = (LAYERS, LIKE)

HELPERS = '''
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
'''


def helpers() -> list[cst.BaseStatement]:
    """The two helpers as statements, two blank lines above each."""
    module = cst.parse_module(HELPERS.lstrip("\n"))
    blank = [cst.EmptyLine(), cst.EmptyLine()]
    return [statement.with_changes(leading_lines=blank) for statement in module.body]
