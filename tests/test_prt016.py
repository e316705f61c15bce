"""PRT016: the helpers and the rewritten beam search against one pass over source and prefix.

The runtime tests build a tiny RoBERTa decoder from a config (no hub), rewrite the
``beam_context`` fixture (UniXcoder's seq2seq) with PRT012 (its 3-D masks) and PRT016, and check
every decoding step's logits against transformers 4's numbers computed by hand over the
example's unpadded source followed by the prefix (``test_prt012._by_hand``). Equal logits at
every step also mean the context is not appended to between steps. On transformers 5 the same
code without PRT016 must fail in the beam search. The ``resliced_every_step`` fixture (CodeXGLUE
Method-Generation's GPT-2 beam search) runs on a tiny GPT-2 against passes without a cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_prt012 import _by_hand, _positions, _tiny_decoder

from patcher.engine import fix_text
from patches import _legacy_cache
from patches.prt012_roberta_3d_attention_mask import Roberta3dAttentionMask
from patches.prt016_transformers5_legacy_cache import Transformers5LegacyCache

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "PRT016"
RULE = [Transformers5LegacyCache()]


def _helpers(transformers) -> dict:
    namespace: dict = {"transformers": transformers}
    exec(_legacy_cache.HELPERS, namespace)
    return namespace


def _module(rules: list, name: str = "beam_context") -> dict:
    """Fixture ``name`` as ``rules`` rewrite it (no rules: as it is), executed."""
    output, findings = fix_text((FIXTURES / f"{name}.in.py").read_text(), rules)
    assert all(f.fixed for f in findings) and bool(findings) == bool(rules)
    namespace: dict = {"__name__": f"prt016_{name}"}
    exec(compile(output, f"{name}.out.py", "exec"), namespace)
    return namespace


def test_rewrite_is_idempotent() -> None:
    source = (FIXTURES / "beam_context.in.py").read_text()
    output, findings = fix_text(source, RULE)
    assert [(f.line, f.fixed) for f in findings] == [(35, True), (44, True)]
    again, findings = fix_text(output, RULE)
    assert again == output and not findings


@pytest.mark.parametrize(
    "source",
    [
        # the output is bound in a branch the call may run without
        "def generate(self, ids, flag):\n"
        "    if flag:\n"
        "        out = self.encoder(ids, use_cache=True)\n"
        "    context = [[x[:, :, :4] for x in y] for y in out.past_key_values]\n"
        "    return self.decoder(ids, past_key_values=context)\n",
        # the context is sliced from the cache the same call returned, a step before
        "def generate(self, ids):\n"
        "    for _ in range(3):\n"
        "        out = self.decoder(ids, past_key_values=context)\n"
        "        context = [[x[:, :, :4] for x in y] for y in out.past_key_values]\n",
    ],
)
def test_output_not_certainly_before_the_call_is_reported(source: str) -> None:
    output, findings = fix_text(source, RULE)
    assert output == source
    assert [(f.code, f.fixed, f.message) for f in findings] == [
        ("PRT016", False, findings[0].message)
    ]
    assert findings[0].message.startswith("iterating a model's past_key_values")


def test_helpers_leave_tuples_and_lists_as_they_are() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    helpers = _helpers(transformers)
    layers = ((torch.zeros(1, 2, 3, 4), torch.ones(1, 2, 3, 4)),)
    assert helpers[_legacy_cache.LAYERS](layers) is layers
    context = [[layers[0][0], layers[0][1]]]
    assert helpers[_legacy_cache.LIKE](context, layers) is context


def test_helpers_on_a_dynamic_cache_give_tuples_and_a_fresh_cache_each_call() -> None:
    """On 5 the model's own cache; on 4 the same tensors in 4's DynamicCache."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config, model = _tiny_decoder(torch, transformers, is_decoder=True)
    helpers = _helpers(transformers)
    ids = torch.randint(3, 64, (2, 5))
    major = int(transformers.__version__.split(".")[0])
    with torch.no_grad():
        returned = model(ids, use_cache=True).past_key_values
        if major < 5:  # 4 returned the tuples; its DynamicCache holds them as 5's does
            assert helpers[_legacy_cache.LAYERS](returned) is returned
            returned = transformers.DynamicCache.from_legacy_cache(returned)
        layers = helpers[_legacy_cache.LAYERS](returned)
        assert len(layers) == config.num_hidden_layers
        assert all(len(layer) == 2 and layer[0].shape == (2, 2, 5, 8) for layer in layers)
        context = [[x[:, :, :3] for x in y] for y in layers]
        for _ in range(2):  # the same context twice: 3 cached positions each time
            cache = helpers[_legacy_cache.LIKE](context, returned)
            assert cache is not context and cache.get_seq_length() == 3
            model(ids[:, :2], past_key_values=cache)
            # 5 appends to the cache it is given (4's RoBERTa read it as tuples)
            assert cache.get_seq_length() == (5 if major >= 5 else 3)
    assert all(x.shape[2] == 3 for y in context for x in y)


def _reference(torch, model, source, prefix):
    """The last position's logits of one pass over ``source`` (unpadded) then ``prefix`` as
    transformers 4 computed them: the source sees itself, the prefix is causal over both."""
    rows, n = prefix.size(0), source.size(-1)
    ids = torch.cat((source.repeat(rows, 1), prefix), -1)
    total = ids.size(-1)
    block = torch.tril(torch.ones(total, total, dtype=torch.bool)).repeat(rows, 1, 1)
    block[:, :n, :n] = True
    block &= ids[:, None, :].ne(1)
    positions = torch.cat((_positions(source.repeat(rows, 1)), _positions(prefix, past=n)), 1)
    embeds = model.encoder.embeddings.word_embeddings(ids)
    hidden = _by_hand(torch, model.encoder, embeds, block, positions)
    return model.lm_head(hidden[:, -1])


def test_rewritten_beam_search_matches_one_pass_over_source_and_prefix() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config, encoder = _tiny_decoder(torch, transformers, is_decoder=True)
    namespace = _module([Roberta3dAttentionMask(), *RULE])
    model = namespace["Seq2Seq"](encoder, encoder, config, beam_size=3, max_length=4, sos_id=0)
    model.eval()
    source = torch.randint(3, 64, (2, 7))
    source[1, 5:] = 1  # the second example is padded: its context is cut to 5 positions
    with torch.no_grad():
        for implementation in ("eager", "sdpa"):
            encoder.config._attn_implementation = implementation
            if hasattr(encoder, "set_attn_implementation"):
                encoder.set_attn_implementation(implementation)
            steps = model.generate(source)
            assert len(steps) == 2
            for i, (prefix, logits) in enumerate(steps):
                n = int(source[i].ne(1).sum())
                assert len(logits) == 4
                for step, got in enumerate(logits):
                    want = _reference(torch, model, source[i, :n], prefix[:, : step + 1])
                    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (implementation, i)


def test_without_the_rule_transformers_5_stops_in_the_beam_search() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4 reads the nested lists")
    config, encoder = _tiny_decoder(torch, transformers, is_decoder=True)
    namespace = _module([Roberta3dAttentionMask()])
    model = namespace["Seq2Seq"](encoder, encoder, config, beam_size=2, max_length=2, sos_id=0)
    with torch.no_grad(), pytest.raises(TypeError, match="NoneType"):
        model.eval().generate(torch.randint(3, 64, (1, 5)))


def test_rewritten_gpt2_resliced_cache_matches_passes_without_a_cache() -> None:
    """CodeXGLUE Method-Generation's shape on a tiny GPT-2: every step's logits equal those of
    one pass over the prompt and the beam row's history without a cache."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=40, n_positions=32, n_embd=16, n_layer=2, n_head=2)
    model = transformers.GPT2LMHeadModel(config).eval()
    decode = _module(RULE, "resliced_every_step")["decode"]
    inputs = torch.randint(3, 40, (2, 5))
    with torch.no_grad():
        found = decode(model, inputs, 3, 4)
        assert len(found) == 8
        for i, history, logits in found:
            ids = torch.cat((inputs[i : i + 1].expand(3, -1), history), -1)
            want = model(ids).logits[:, -1]
            assert torch.allclose(logits, want, rtol=1e-5, atol=1e-5), (i, history.shape)
        if int(transformers.__version__.split(".")[0]) >= 5:
            original = _module([], "resliced_every_step")["decode"]
            with pytest.raises(TypeError, match="NoneType"):
                original(model, inputs, 3, 1)
