"""PRT014: the exact rewrite, idempotency, and that the rewritten script runs where the original
breaks: a tiny RoBERTa saved locally (no hub), loaded with ``from_pretrained(..., config=config)``,
resized, then given a head sized from the config and tied to the resized embeddings."""

from __future__ import annotations

import pytest

from patcher.engine import fix_text
from patches.prt014_resized_model_config import ResizedModelConfig

RULE = [ResizedModelConfig()]

BEFORE = """\
import torch.nn as nn
from transformers import RobertaConfig, RobertaModel


class Model(nn.Module):
    def __init__(self, encoder, config):
        super().__init__()
        self.encoder = encoder
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.lm_head.weight = self.encoder.embeddings.word_embeddings.weight

    def forward(self, ids):
        return self.lm_head(self.encoder(ids).last_hidden_state)


def build(path, extra):
    config = RobertaConfig.from_pretrained(path)
    model = RobertaModel.from_pretrained(path, config=config)
    model.resize_token_embeddings(config.vocab_size + extra)
    model = Model(model, config)
    return model
"""
AFTER = BEFORE.replace(
    "    model = Model(model, config)\n", "    model = Model(model, model.config)\n"
)


def test_exact_rewrite_and_idempotent() -> None:
    output, findings = fix_text(BEFORE, RULE)
    assert output == AFTER
    # the size read inside the resize call itself is before it
    assert [(f.line, f.fixed) for f in findings] == [(20, True)]
    again, findings = fix_text(output, RULE)
    assert again == output and findings == []


def test_a_call_handed_config_is_reported_when_config_is_read_after_it() -> None:
    """``Model(model, config)`` may change ``config``; on transformers <= 4.35 the later
    ``config`` was ``model.config`` and saw the change. Moving the call alone to
    ``model.config`` would hide it from that later read, so both are reported."""
    source = BEFORE.replace("    return model\n", "    return model, config\n")
    output, findings = fix_text(source, RULE)
    assert output == source
    assert [(f.line, f.fixed) for f in findings] == [(20, False), (21, False)]
    assert "may be changed after the load" in findings[0].message


def test_rewritten_head_fits_the_resized_embeddings(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = transformers.RobertaConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=40,
        type_vocab_size=1,
    )
    transformers.RobertaModel(config).save_pretrained(tmp_path)
    ids = torch.randint(3, 70, (2, 9))
    copies = tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 36)

    original: dict = {}
    exec(compile(BEFORE, "before.py", "exec"), original)
    model = original["build"](str(tmp_path), 6)
    if copies:  # the head's bias kept the old size under the resized (tied) weight
        assert model.lm_head.bias.shape[0] == 64
        with pytest.raises(RuntimeError):
            model(ids)

    rewritten: dict = {}
    exec(compile(fix_text(BEFORE, RULE)[0], "after.py", "exec"), rewritten)
    model = rewritten["build"](str(tmp_path), 6)
    assert model.encoder.get_input_embeddings().num_embeddings == 70
    assert model.lm_head.bias.shape[0] == 70
    with torch.no_grad():
        logits = model(ids)
    assert logits.shape == (2, 9, 70)
    # the numbers of a head built as transformers <= 4.35 built it: from the model's config
    head = torch.nn.functional.linear(
        model.encoder(ids).last_hidden_state,
        model.encoder.embeddings.word_embeddings.weight,
        model.lm_head.bias,
    )
    assert torch.equal(logits, head.detach())


CHANGED = """\
from transformers import RobertaConfig, RobertaModel


def build(path, extra):
    config = RobertaConfig.from_pretrained(path)
    model = RobertaModel.from_pretrained(path, config=config)
    model.resize_token_embeddings(config.vocab_size + extra)
    config.output_hidden_states = True
    return model, config
"""


def test_change_after_load_is_reported_because_the_copy_misses_it(tmp_path) -> None:
    """Moving ``config`` to ``model.config`` after ``config.output_hidden_states = True`` would
    hand on the model's copy, which (4.36 and later) never saw the change."""
    output, findings = fix_text(CHANGED, RULE)
    assert output == CHANGED
    assert [(f.line, f.fixed) for f in findings] == [(9, False)]
    assert "may be changed after the load" in findings[0].message

    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.RobertaModel(
        transformers.RobertaConfig(
            vocab_size=64,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=40,
        )
    ).save_pretrained(tmp_path)
    namespace: dict = {}
    exec(compile(CHANGED, "changed.py", "exec"), namespace)
    model, config = namespace["build"](str(tmp_path), 6)
    assert config.output_hidden_states is True
    if tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 36):
        assert model.config is not config
        assert model.config.output_hidden_states is False  # what the rewrite would hand on
