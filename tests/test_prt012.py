"""PRT012: the exact rewrite, idempotency, and that the rewritten mask means 4's 3-D mask.

The runtime tests build a tiny RobertaModel from a config (no hub) and compare the rewritten
code against transformers 4's handling of a 3-D mask, reproduced by hand: ``mask[:, None]`` made
additive with ``finfo(dtype).min``, under eager and SDPA attention. They run the rewritten
expression (GraphCodeBERT's inputs_embeds call), the rewritten ``causal_buffer`` fixture
(CodeExecutor: a registered causal buffer, the encoder's dtype) and the rewritten
``decoder_cache`` fixture (UniXcoder: the decoder's mask over the prompt's cache, against one
pass over prompt and target). On transformers 5 the original 3-D mask must crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from patcher.engine import fix_text
from patches.prt012_roberta_3d_attention_mask import Roberta3dAttentionMask

RULE = [Roberta3dAttentionMask()]

BEFORE = """\
import torch


def encode(encoder, ids, pos, m1, m2, l):
    attn_mask = torch.cat((m1.unsqueeze(1), m2.unsqueeze(1)), 1).view(-1, l, l)
    embeds = encoder.embeddings.word_embeddings(ids)
    return encoder(inputs_embeds=embeds, attention_mask=attn_mask, position_ids=pos)[0]
"""
AFTER = """\
import torch
import transformers


def encode(encoder, ids, pos, m1, m2, l):
    attn_mask = torch.cat((m1.unsqueeze(1), m2.unsqueeze(1)), 1).view(-1, l, l)
    embeds = encoder.embeddings.word_embeddings(ids)
    return encoder(inputs_embeds=embeds, attention_mask=attn_mask if int(\
transformers.__version__.split(".")[0]) < 5 else (1.0 - attn_mask[:, None, :, :].to(\
embeds.dtype)) * torch.finfo(embeds.dtype).min, position_ids=pos)[0]
"""
REWRITTEN = (
    "attn_mask if int(transformers.__version__.split('.')[0]) < 5 else "
    "(1.0 - attn_mask[:, None, :, :].to(embeds.dtype)) * torch.finfo(embeds.dtype).min"
)


def test_exact_rewrite_and_idempotent() -> None:
    output, findings = fix_text(BEFORE, RULE)
    assert output == AFTER
    assert [(f.line, f.fixed) for f in findings] == [(7, True)]
    again, findings = fix_text(output, RULE)
    assert again == output and not findings


@pytest.mark.parametrize(
    "mask",
    [
        "attn_mask[:, None, :, :]",
        "attn_mask.unsqueeze(1)",
        "attn_mask.view(-1, l, l)[:, None]",
    ],
)
def test_four_d_masks_are_left_alone(mask: str) -> None:
    source = BEFORE.replace("attention_mask=attn_mask", f"attention_mask={mask}")
    output, findings = fix_text(source, RULE)
    assert output == source and not findings


def test_mask_rebound_before_the_call_is_not_known() -> None:
    source = BEFORE.replace(
        "    embeds =", "    if l > 1:\n        attn_mask = attn_mask[:, 0]\n    embeds ="
    )
    output, findings = fix_text(source, RULE)
    assert output == source and not findings


def _tiny_roberta():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.RobertaConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
        type_vocab_size=1,
    )
    return torch, transformers, transformers.RobertaModel(config).eval()


def _by_hand(torch, model, embeds, attn_mask, pos):
    """The encoder computed here with transformers 4's reading of a 3-D mask: ``[b, 1, l, l]``,
    then ``(1 - m) * finfo(dtype).min`` added to every head's scores (eval mode, no dropout)."""
    extended = (1.0 - attn_mask[:, None, :, :].to(embeds.dtype)) * torch.finfo(embeds.dtype).min
    hidden = model.embeddings(
        inputs_embeds=embeds, position_ids=pos, token_type_ids=torch.zeros_like(pos)
    )
    heads = model.config.num_attention_heads
    batch, length, width = hidden.shape
    for layer in model.encoder.layer:
        attention = layer.attention.self

        def split(x):
            return x.view(batch, length, heads, width // heads).transpose(1, 2)

        query, key, value = (
            split(attention.query(hidden)),
            split(attention.key(hidden)),
            split(attention.value(hidden)),
        )
        scores = query @ key.transpose(-1, -2) / (width // heads) ** 0.5 + extended
        context = (scores.softmax(-1) @ value).transpose(1, 2).reshape(batch, length, width)
        out = layer.attention.output
        hidden = out.LayerNorm(out.dense(context) + hidden)
        inner = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(hidden))
        hidden = layer.output.LayerNorm(layer.output.dense(inner) + hidden)
    return hidden


def test_rewritten_mask_runs_and_matches_the_3d_reference() -> None:
    torch, transformers, model = _tiny_roberta()
    batch, length = 3, 24
    ids = torch.randint(3, 64, (batch, length))
    pos = torch.arange(2, length + 2).expand(batch, length)
    attn_mask = torch.rand(batch, length, length) > 0.5
    attn_mask |= torch.eye(length, dtype=torch.bool)
    attn_mask[0, length - 3 :, :] = False  # padding rows see nothing, as in GraphCodeBERT
    major = int(transformers.__version__.split(".")[0])
    with torch.no_grad():
        embeds = model.embeddings.word_embeddings(ids)
        if major >= 5:
            with pytest.raises(RuntimeError):
                model(inputs_embeds=embeds, attention_mask=attn_mask, position_ids=pos)
        mask = eval(REWRITTEN, {"torch": torch, "transformers": transformers}, locals())
        for implementation in ("eager", "sdpa"):
            model.config._attn_implementation = implementation
            if hasattr(model, "set_attn_implementation"):
                model.set_attn_implementation(implementation)
            got = model(inputs_embeds=embeds, attention_mask=mask, position_ids=pos)[0]
            want = _by_hand(torch, model, embeds, attn_mask, pos)
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), implementation
            # a boolean 4-D mask is not the same thing on 5 (eager adds it, SDPA differs on
            # rows that see nothing): the rule must not emit it
            if major >= 5:
                wrong = model(
                    inputs_embeds=embeds, attention_mask=attn_mask[:, None], position_ids=pos
                )[0]
                assert not torch.allclose(wrong, want, rtol=1e-5, atol=1e-6), implementation


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "PRT012"


def _rewritten_module(name: str, torch, transformers) -> dict:
    """The rule's output for fixture ``name``, executed (the fixture's own module text)."""
    output, findings = fix_text((FIXTURES / f"{name}.in.py").read_text(), RULE)
    assert findings and all(f.fixed for f in findings)
    namespace: dict = {"__name__": f"prt012_{name}"}
    exec(compile(output, f"{name}.out.py", "exec"), namespace)
    return namespace


def _positions(ids, past: int = 0, pad: int = 1):
    """RoBERTa's position ids as transformers 4 made them from ``input_ids`` after ``past``
    cached positions: padding keeps ``pad``, the rest count on from ``pad + 1 + past``."""
    keep = ids.ne(pad).int()
    return (keep.cumsum(1) + past) * keep + pad


def _tiny_decoder(torch, transformers, **extra):
    torch.manual_seed(0)
    config = transformers.RobertaConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=80,
        type_vocab_size=1,
        **extra,
    )
    return config, transformers.RobertaModel(config).eval()


def _implementations(model):
    for implementation in ("eager", "sdpa"):
        model.config._attn_implementation = implementation
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(implementation)
        yield implementation


def test_causal_buffer_mask_matches_the_3d_reference() -> None:
    """CodeExecutor's shape: a registered ``[1, n, n]`` causal buffer or-ed with a pairwise
    prompt mask, no inputs_embeds (the dtype is the encoder's)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config, encoder = _tiny_decoder(torch, transformers)
    namespace = _rewritten_module("causal_buffer", torch, transformers)
    block = 12
    args = type("Args", (), {"block_size": block})()
    model = namespace["Model"](encoder, config, None, args).eval()
    ids = torch.randint(3, 64, (3, block))
    types = torch.full((3, block), 2)
    types[:, :5] = 1  # a 5-token prompt sees itself both ways; the rest is causal
    types[1, :7] = 1
    seen = []
    encoder.register_forward_hook(lambda _m, _i, out: seen.append(out.last_hidden_state))
    mask = model.bias | (types.eq(1)[:, :, None] * types.eq(1)[:, None, :])
    with torch.no_grad():
        embeds = encoder.embeddings.word_embeddings(ids)
        for implementation in _implementations(encoder):
            seen.clear()
            model(ids, types)
            want = _by_hand(torch, encoder, embeds, mask, _positions(ids))
            assert torch.allclose(seen[0], want, rtol=1e-5, atol=1e-6), implementation
        if int(transformers.__version__.split(".")[0]) >= 5:
            with pytest.raises(RuntimeError):
                encoder(ids, attention_mask=mask)


def test_decoder_cache_mask_matches_one_pass_over_prompt_and_target() -> None:
    """UniXcoder's shape: the prompt under a pairwise mask with ``use_cache``, then the target
    under a slice of the causal buffer over the cache: the same numbers as one pass over both
    with 4's ``[b, 1, l, l]`` additive block mask and 4's positions."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config, encoder = _tiny_decoder(torch, transformers, is_decoder=True)
    namespace = _rewritten_module("decoder_cache", torch, transformers)
    model = namespace["Seq2Seq"](encoder, encoder, config).eval()
    batch, s, t = 2, 6, 4
    source = torch.randint(3, 64, (batch, s))
    source[1, 4:] = 1
    target = torch.randint(3, 64, (batch, t))
    target[0, 3:] = 1
    ids = torch.cat((source, target), -1)
    block = torch.zeros(batch, s + t, s + t, dtype=torch.bool)
    block[:, :s, :s] = source.ne(1)[:, None, :] * source.ne(1)[:, :, None]
    block[:, s:, :] = torch.tril(torch.ones(s + t, s + t, dtype=torch.bool))[s:] & ids[
        :, None, :
    ].ne(1)
    positions = torch.cat((_positions(source), _positions(target, past=s)), 1)
    with torch.no_grad():
        embeds = encoder.embeddings.word_embeddings(ids)
        for implementation in _implementations(encoder):
            got = model(source, target)
            want = model.lm_head(_by_hand(torch, encoder, embeds, block, positions)[:, s:])
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), implementation


def test_encoder_without_dtype_gets_the_dtype_of_its_parameters() -> None:
    """The encoder a model class is given may be a plain ``nn.Module`` around the transformer
    (no ``.dtype``: ``self.encoder.dtype`` would raise on 5); the rewrite reads the dtype of its
    first floating-point parameter, which is what ``PreTrainedModel.dtype`` is."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    _config, roberta = _tiny_decoder(torch, transformers)

    module: Any = torch.nn.Module  # torch is imported here, so mypy cannot see the class

    class Wrapper(module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids, attention_mask=None):
            return self.inner(ids, attention_mask=attention_mask).last_hidden_state

    wrapper = Wrapper(roberta)
    assert not hasattr(wrapper, "dtype")
    for dtype in (torch.bfloat16, torch.float32):  # the rewrite's dtype is the model's own
        roberta.to(dtype)
        own = next(p.dtype for p in wrapper.parameters() if p.is_floating_point())
        assert own == roberta.dtype == dtype
    namespace = _rewritten_module("wrapped_encoder", torch, transformers)
    block = 10
    model = namespace["Model"](wrapper, block).eval()
    ids = torch.randint(3, 64, (2, block))
    types = torch.full((2, block), 2)
    types[:, :4] = 1
    mask = model.bias | (types.eq(1)[:, :, None] * types.eq(1)[:, None, :])
    with torch.no_grad():
        embeds = roberta.embeddings.word_embeddings(ids)
        for implementation in _implementations(roberta):
            got = model(ids, types)
            want = _by_hand(torch, roberta, embeds, mask, _positions(ids))
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), implementation


DECORATED = """\
import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, encoder, n):
        super().__init__()
        self.encoder = encoder
        self.register_buffer("bias", torch.tril(torch.ones((n, n))).view(1, n, n))

    @{decorator}
    def generate(self, ids):
        length = ids.size(-1)
        return self.encoder(ids, attention_mask=self.bias[:, :length, :length])
"""


@pytest.mark.parametrize(
    ("decorator", "fixed"), [("torch.no_grad()", True), ("staticmethod", False)]
)
def test_decorated_methods_keep_their_instance_unless_static(decorator: str, fixed: bool) -> None:
    """The same question as PRT015 asks (``_syntax.method_self``): a decorator such as
    ``@torch.no_grad()`` keeps ``self`` first; a static method's first parameter is not it."""
    source = DECORATED.format(decorator=decorator)
    output, findings = fix_text(source, RULE)
    assert [f.fixed for f in findings] == ([True] if fixed else [])
    assert ("next(p.dtype for p in self.encoder.parameters()" in output) is fixed
