"""Tiny models and tokenizers built locally, so verify never needs a model hub.

A byte-level BPE is trained with ``tokenizers`` on synthetic code, with the special tokens first
(``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>``=4: the scripts' model code hard-codes
``input_ids.ne(1)``). One model per family (:mod:`patcher.verify.families`): RoBERTa
(CodeBERT, GraphCodeBERT, UniXcoder), GPT-2 (CodeGPT), T5 with CodeT5's RoBERTa-style BPE,
BART and Longformer with RoBERTa's BPE (LongCoder); CodeReviewer's T5 (``t5-reviewer``: CodeT5's
order ``<pad>``=0, ``<s>``=1, and the span and diff tokens its scripts look up by name); T5 with a
sentencepiece-style unigram tokenizer (CoTexT, CodeTrans: ``t5-spm``) and XLM-RoBERTa with its
unigram (CodeXGLUE text-to-text: ``xlm-roberta``). The model (2 layers, 64 wide) is saved with
``save_pretrained`` so a script's own ``from_pretrained(path)`` loads it.

A build is deterministic: the tokenizers are trained on the same synthetic corpus and the weights
are initialised under a fixed seed, so every machine verifies against the same model (an unseeded
T5 could score F1 0 on the validation pairs of one build and not another, and then a script that
saves its best checkpoint only on improvement never writes it). Builds are cached per (model type,
library versions, :data:`BUILD_VERSION`): the second verify does not rebuild, and a cache from an
older build recipe is not reused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

from patcher.verify.families import FAMILIES
from patcher.verify.synthetic import docstring, functions

SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
#: CodeT5's own order (``<pad>``=0), which CodeReviewer keeps: its model hard-codes
#: ``CrossEntropyLoss(ignore_index=0)  # PAD_ID should be 0``.
CODET5_SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"]
#: The tokens CodeReviewer's tokenizer adds and its scripts look up by name
#: (``tokenizer.get_vocab()["<e99>"]``, ``["<msg>"]``, ...): span markers and diff tags.
REVIEWER_TOKENS = [f"<e{i}>" for i in range(99, -1, -1)] + [
    "<msg>",
    "<keep>",
    "<add>",
    "<del>",
    "<start>",
    "<end>",
]
#: The build recipe's version, part of the cache key: bump it whenever a build changes what it
#: writes (2: seeded weights, the t5-spm family).
BUILD_VERSION = "2"
#: The seed the weights are initialised under (the torch generator is restored afterwards).
SEED = 20240613
MODEL_TYPES = FAMILIES


def cache_root() -> Path:
    return Path(os.environ.get("DDPFIX_CACHE", Path.home() / ".cache" / "ddpfix"))


def _versions() -> str:
    """Library versions from package metadata: no need to import torch just to name the cache."""
    from importlib.metadata import version

    return f"torch{version('torch')}-tf{version('transformers')}-tok{version('tokenizers')}"


def model_path(model_type: str, hidden_size: int = 0) -> Path:
    """Where the tiny model is cached; one of another width (``hidden_size``) is another model."""
    width = f"-h{hidden_size}" if hidden_size else ""
    return cache_root() / "models" / f"{model_type}{width}-{_versions()}-v{BUILD_VERSION}"


def ensure_model(model_type: str, hidden_size: int = 0) -> tuple[Path, bool]:
    """The directory of a tiny ``model_type`` model and tokenizer; True when it was cached.
    ``hidden_size`` (0: the family's tiny width) makes it that wide, keeping its few layers,
    heads and small vocabulary: for a script whose own code hard-codes the pretrained model's
    width (WebQuery's ``nn.Linear(768*4, 768)`` head)."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"no tiny model for model type {model_type!r} (have {MODEL_TYPES})")
    if hidden_size and (hidden_size < 0 or hidden_size % _HEADS):
        raise ValueError(f"hidden size {hidden_size} is not a positive multiple of {_HEADS}")
    final = model_path(model_type, hidden_size)
    if (final / "ddpfix-built").exists():
        return final, True
    final.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{model_type}-", dir=final.parent))
    try:
        _build(model_type, building, hidden_size)
        (building / "ddpfix-built").write_text("ok\n")
        try:
            building.rename(final)
        except OSError:  # another verify built it meanwhile
            shutil.rmtree(building, ignore_errors=True)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return final, False


def _corpus() -> list[str]:
    texts = []
    for function in functions(48):
        texts.append(function.code)
        texts.append(docstring(function))
    return texts


#: RoBERTa's shape, 2 layers 64 wide; Longformer (LongCoder) is the same with attention windows.
_ROBERTA = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
}

#: Per family: tokenizer class and its extra arguments, config class and its sizes, model class
#: (names in ``transformers``). The BPE families share the BPE files and the special-token ids
#: ``<s>``=0, ``<pad>``=1, ``</s>``=2 the scripts hard-code (``t5-reviewer`` keeps CodeT5's
#: ``<pad>``=0 order). T5 is CodeT5's: a T5 encoder-decoder with a RoBERTa BPE tokenizer.
_FAMILIES: dict[str, tuple[str, dict, str, dict, str]] = {
    "roberta": ("RobertaTokenizer", {}, "RobertaConfig", _ROBERTA, "RobertaModel"),
    "gpt2": (
        "GPT2Tokenizer",
        {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"},
        "GPT2Config",
        {"n_embd": 64, "n_layer": 2, "n_head": 2, "n_positions": 512},
        "GPT2LMHeadModel",
    ),
    "t5": (
        "RobertaTokenizer",
        {},
        "T5Config",
        {
            "d_model": 64,
            "d_kv": 32,
            "d_ff": 128,
            "num_layers": 2,
            "num_decoder_layers": 2,
            "num_heads": 2,
            "decoder_start_token_id": 0,
        },
        "T5ForConditionalGeneration",
    ),
    # LongCoder's: a Longformer config (its model code reads attention_window as a per-layer
    # list and rebuilds it from --window_size) with RoBERTa's BPE
    "longformer": (
        "RobertaTokenizer",
        {},
        "LongformerConfig",
        {**_ROBERTA, "attention_window": [16, 16]},
        "LongformerModel",
    ),
    "bart": (
        "BartTokenizer",
        {},
        "BartConfig",
        {
            "d_model": 64,
            "encoder_layers": 2,
            "decoder_layers": 2,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 128,
            "decoder_ffn_dim": 128,
            "max_position_embeddings": 512,
            "decoder_start_token_id": 2,
            "forced_eos_token_id": 2,
        },
        "BartForConditionalGeneration",
    ),
}


#: What each family's config calls the model width, and the attention heads every family has
#: (a width asked for must split among them).
_WIDTH_KEYS = ("hidden_size", "n_embd", "d_model")
_HEADS = 2

#: CodeReviewer (``microsoft/codereviewer``): CodeT5's T5 with its BPE in CodeT5's special-token
#: order plus :data:`REVIEWER_TOKENS`.
_FAMILIES["t5-reviewer"] = _FAMILIES["t5"]
#: Per family built from a BPE: its special tokens (in id order) and the tokens added after them.
_BPE_TOKENS: dict[str, tuple[list[str], list[str]]] = {
    "t5-reviewer": (CODET5_SPECIAL, REVIEWER_TOKENS)
}


#: Families whose tokenizer is a unigram (patcher.verify.unigram): its builder, and the family
#: whose sizes and classes the model takes (with the config and model class named here).
_UNIGRAM: dict[str, tuple[str, str, str, str]] = {
    "t5-spm": ("build_t5_tokenizer", "t5", "T5Config", "T5ForConditionalGeneration"),
    "xlm-roberta": ("build_xlmr_tokenizer", "roberta", "XLMRobertaConfig", "XLMRobertaModel"),
}


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """No progress bars ("Writing model shards"), warnings or log lines from transformers and
    huggingface_hub while a tiny model is built: they would stay above the verdict."""
    import huggingface_hub.utils as hub
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    hub_bars = not hub.are_progress_bars_disabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    hub.disable_progress_bars()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
        if hub_bars:
            hub.enable_progress_bars()


def _build(model_type: str, out: Path, hidden_size: int = 0) -> None:
    with _quiet_libraries():
        _build_quietly(model_type, out, hidden_size)


def _widened(sizes: dict, hidden_size: int) -> dict:
    """``sizes`` with the model width set to ``hidden_size`` (0: as it is), under the name the
    family's config gives it."""
    if not hidden_size:
        return sizes
    key = next(k for k in _WIDTH_KEYS if k in sizes)
    return {**sizes, key: hidden_size}


def _build_quietly(model_type: str, out: Path, hidden_size: int = 0) -> None:
    import torch
    import transformers

    if model_type in _UNIGRAM:
        from patcher.verify import unigram

        builder, base, config_class, model_class = _UNIGRAM[model_type]
        vocab_size, ids = getattr(unigram, builder)(_corpus(), out)
        sizes = _FAMILIES[base][3]
    else:
        from tokenizers import ByteLevelBPETokenizer

        special, added = _BPE_TOKENS.get(model_type, (SPECIAL, []))
        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(  # show_progress: no "Tokenize words" / "Count pairs" bars
            _corpus(), vocab_size=600, min_frequency=1, special_tokens=special, show_progress=False
        )
        bpe.save_model(str(out))
        tokenizer_class, tokenizer_args, config_class, sizes, model_class = _FAMILIES[model_type]
        tokenizer = getattr(transformers, tokenizer_class)(
            str(out / "vocab.json"), str(out / "merges.txt"), **tokenizer_args
        )
        if added:
            tokenizer.add_special_tokens({"additional_special_tokens": added})
        tokenizer.save_pretrained(str(out))
        vocab_size = len(tokenizer) if added else bpe.get_vocab_size()
        ids = {
            f"{name}_token_id": special.index(token)
            for name, token in (("bos", "<s>"), ("pad", "<pad>"), ("eos", "</s>"))
        }
    sizes = _widened(sizes, hidden_size)
    config = getattr(transformers, config_class)(vocab_size=vocab_size, **ids, **sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = getattr(transformers, model_class)(config)
    model.save_pretrained(str(out))
