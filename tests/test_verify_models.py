"""Verify's tiny models: the same build on every machine, a new cache for a new recipe, and the
sentencepiece-style T5 (CoTexT, CodeTrans) that loads as the scripts load it."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch

from patcher.verify import families, models

TEXT = "int computeSum(int[] data) { int total = 0; return total; } sum of the array"


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


@pytest.mark.parametrize("family", ["t5", "t5-spm"])
def test_two_builds_give_identical_weights_and_tokenizers(
    family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Path] = []
    for name in ("one", "two"):
        monkeypatch.setenv("DDPFIX_CACHE", str(tmp_path / name))
        torch.manual_seed(len(name) * 7 + len(built))  # the caller's RNG state must not matter
        directory, cached = models.ensure_model(family)
        assert not cached
        built.append(directory)
    first, second = (_weights(d) for d in built)
    assert first.keys() == second.keys() and len(first) > 10
    for key in first:
        assert torch.equal(first[key], second[key]), key
    for name in ("tokenizer.json", "tokenizer_config.json", "config.json"):
        assert (built[0] / name).read_bytes() == (built[1] / name).read_bytes(), name


def test_the_build_leaves_the_callers_random_state_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DDPFIX_CACHE", str(tmp_path))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    models.ensure_model("roberta")
    assert torch.equal(torch.rand(3), expected)


def test_a_cache_from_an_older_build_recipe_is_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DDPFIX_CACHE", str(tmp_path))
    current = models.model_path("gpt2")
    old = current.with_name(current.name.replace(f"-v{models.BUILD_VERSION}", "-v1"))
    assert old != current
    old.mkdir(parents=True)
    (old / "ddpfix-built").write_text("ok\n")  # an unseeded build of the first recipe
    directory, cached = models.ensure_model("gpt2")
    assert directory == current and not cached
    assert (directory / "model.safetensors").exists()
    assert models.ensure_model("gpt2") == (current, True)


def test_cotext_and_codetrans_run_on_the_sentencepiece_t5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers import AutoTokenizer, T5ForConditionalGeneration, T5Tokenizer

    for args in (
        ["--model_name_or_path", "razent/cotext-1-ccg"],
        [
            "--model_name_or_path=SEBIS/code_trans_t5_small_program_synthese_transfer_learning_finetune"
        ],
        ["--model_type", "cotext"],
        ["--model_type=codetrans"],
    ):
        assert families.family(args) == "t5-spm", args
    monkeypatch.setenv("DDPFIX_CACHE", str(tmp_path))
    directory, _ = models.ensure_model("t5-spm")
    assert (directory / "spiece.model").exists()

    tokenizer = T5Tokenizer.from_pretrained(str(directory))
    assert type(AutoTokenizer.from_pretrained(str(directory))) is type(tokenizer)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    ids = tokenizer(TEXT).input_ids
    assert ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == TEXT
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert sum(token.startswith("▁") for token in tokens) >= 5  # sentencepiece's word starts

    model = T5ForConditionalGeneration.from_pretrained(str(directory))
    assert model.config.vocab_size >= len(tokenizer)
    batch = tokenizer([TEXT, "sum of the array"], padding=True, return_tensors="pt")
    labels = tokenizer(["return total ;", "sum"], padding=True, return_tensors="pt").input_ids
    labels[labels == tokenizer.pad_token_id] = -100
    out = model(**batch, labels=labels)
    assert out.logits.shape[:2] == labels.shape and torch.isfinite(out.loss)
    out.loss.backward()
    generated = model.generate(**batch, max_new_tokens=4, num_beams=2)
    assert generated.shape[0] == 2 and int(generated[0, 0]) == model.config.decoder_start_token_id


def test_the_sentencepiece_file_holds_the_same_tokenizer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """spiece.model (4.x's slow T5Tokenizer reads it) encodes as tokenizer.json does."""
    spm = pytest.importorskip("sentencepiece")
    from transformers import T5Tokenizer

    monkeypatch.setenv("DDPFIX_CACHE", str(tmp_path))
    directory, _ = models.ensure_model("t5-spm")
    processor = spm.SentencePieceProcessor(model_file=str(directory / "spiece.model"))
    tokenizer = T5Tokenizer.from_pretrained(str(directory))
    assert (processor.pad_id(), processor.eos_id(), processor.unk_id()) == (0, 1, 2)
    assert [*processor.encode(TEXT), 1] == tokenizer(TEXT).input_ids
    assert processor.decode(processor.encode(TEXT)) == TEXT


def test_the_xlm_roberta_stand_in_keeps_fairseqs_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CodeXGLUE text-to-text loads XLMRobertaTokenizer/XLMRobertaModel and masks with ne(1)."""
    from transformers import XLMRobertaModel, XLMRobertaTokenizer

    monkeypatch.setenv("DDPFIX_CACHE", str(tmp_path))
    directory, _ = models.ensure_model("xlm-roberta")
    tokenizer = XLMRobertaTokenizer.from_pretrained(str(directory))
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.unk_token_id == 3 and tokenizer.mask_token_id == len(tokenizer) - 1
    ids = tokenizer(TEXT).input_ids
    assert ids[0] == 0 and ids[-1] == 2 and 3 not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == TEXT
    model = XLMRobertaModel.from_pretrained(str(directory))
    batch = tokenizer([TEXT, "sum"], padding=True, return_tensors="pt")
    assert int(batch.input_ids[1, -1]) == 1  # padded with <pad> = 1
    hidden = model(batch.input_ids, attention_mask=batch.input_ids.ne(1)).last_hidden_state
    assert hidden.shape == (*batch.input_ids.shape, model.config.hidden_size)


def test_the_longformer_stand_in_has_per_layer_windows_and_robertas_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LongCoder rebuilds ``attention_window`` per layer from the config's list and ends
    statements at the byte-level newline token ``Ċ``."""
    from transformers import LongformerConfig, LongformerModel, RobertaTokenizer

    monkeypatch.setenv("DDPFIX_CACHE", str(tmp_path))
    directory, _ = models.ensure_model("longformer")
    config = LongformerConfig.from_pretrained(str(directory))
    assert config.attention_window == [16] * config.num_hidden_layers
    tokenizer = RobertaTokenizer.from_pretrained(str(directory))
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert tokenizer.tokenize("a\nb") == ["a", "Ċ", "b"]
    model = LongformerModel.from_pretrained(str(directory))
    ids = tokenizer(TEXT, return_tensors="pt").input_ids
    assert model(ids).last_hidden_state.shape == (*ids.shape, config.hidden_size)


def test_a_target_width_builds_a_model_that_wide_in_its_own_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WebQuery's head is hard-coded 768 wide: its target asks for a tiny RoBERTa that wide,
    with the family's few layers and heads (``hidden_size`` in the target)."""
    from transformers import AutoConfig, RobertaModel

    monkeypatch.setenv("DDPFIX_CACHE", str(tmp_path))
    directory, cached = models.ensure_model("roberta", 768)
    assert not cached and directory != models.model_path("roberta")
    config = AutoConfig.from_pretrained(directory)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (768, 2, 2)
    pooled = RobertaModel.from_pretrained(directory)(torch.tensor([[0, 5, 2]]))[1]
    assert pooled.shape == (1, 768)
    assert models.ensure_model("roberta", 768) == (directory, True)
    with pytest.raises(ValueError, match="not a positive multiple of 2"):
        models.ensure_model("roberta", 767)
