"""PRT015's helper: transformers 4's ``get_extended_attention_mask``, as a module function.

transformers 5 removed the method (and the rest of 4's ``ModuleUtilsMixin`` mask helpers) from
``PreTrainedModel``; model code of its own that calls ``self.get_extended_attention_mask(mask,
shape)`` stops with an AttributeError on its first forward. The helper does what the method did,
taking the model first: a 3-D ``[batch, from, to]`` mask gets a head axis, a 2-D ``[batch, to]``
mask gets two (and, for a config with ``is_decoder``, is combined with a causal mask that lets
every query see the cached positions before the input), then the mask becomes additive in the
model's dtype: ``(1 - mask) * finfo.min``, 0 where attended. Longformer-style masks with 2 for
global tokens come out positive there, as in 4.
"""

from __future__ import annotations

import libcst as cst

NAME = "get_extended_attention_mask"

HELPER = '''
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
'''


def helper() -> cst.FunctionDef:
    """The helper as a statement, two blank lines above it."""
    definition = cst.ensure_type(cst.parse_statement(HELPER.lstrip("\n")), cst.FunctionDef)
    return definition.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])
