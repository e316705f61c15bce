"""Tokenizers of the sentencepiece kind, trained locally: T5's (CoTexT, CodeTrans) and XLM-R's.

Real T5 checkpoints ship a sentencepiece unigram model: ``<pad>``=0, ``</s>``=1, ``<unk>``=2, pieces
with scores, ``▁`` marking a word start. The tokenizer is trained with ``tokenizers``' Unigram
trainer on the synthetic corpus and saved twice over, so both kinds of script load it:

* ``tokenizer.json`` (through ``T5Tokenizer(vocab=...)``'s ``save_pretrained``): what
  transformers 5's ``T5Tokenizer`` and 4.x's ``T5TokenizerFast``/``AutoTokenizer`` read;
* ``spiece.model``: what 4.x's slow ``T5Tokenizer`` reads with ``sentencepiece``. It is the same
  pieces and scores, written here as sentencepiece's ``ModelProto`` message (a few protobuf
  fields, encoded by hand so that building needs neither sentencepiece nor protobuf).

XLM-RoBERTa's (CodeXGLUE text-to-text loads ``XLMRobertaTokenizer``) is the same kind of unigram
with fairseq's ids: ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3 (the scripts' ``ne(1)`` holds),
``<mask>`` last. It is saved as ``tokenizer.json`` only: transformers 5 reads that; 4.x's slow
tokenizer would want a ``sentencepiece.bpe.model`` with fairseq's id offset, not written here.
"""

from __future__ import annotations

import inspect
import json
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

#: T5's special pieces, in its id order.
SPECIAL = ("<pad>", "</s>", "<unk>")
#: XLM-R's, in its id order (``<mask>`` comes after the pieces).
XLMR_SPECIAL = ("<s>", "<pad>", "</s>", "<unk>")
VOCAB_SIZE = 400
#: Sentinel tokens ``<extra_id_N>`` appended after the pieces (T5 has 100; span-masking code uses
#: a few, fine-tuning none).
EXTRA_IDS = 8

# sentencepiece_model.proto: SentencePiece.Type and TrainerSpec.ModelType values.
_NORMAL, _UNKNOWN, _CONTROL = 1, 2, 3
_UNIGRAM = 1


def train(corpus: Iterable[str], special: Sequence[str] = SPECIAL) -> list[tuple[str, float]]:
    """(piece, score) in id order: the special pieces first (score 0), then the learned ones."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=list(special), unk_token="<unk>", show_progress=False
    )
    tokenizer.train_from_iterator(list(corpus), trainer=trainer)
    vocab = json.loads(tokenizer.to_str())["model"]["vocab"]
    # The trainer's pieces are the same on every run, but its scores are not quite: its sums run
    # in hash order (differences of 1e-15), and the pieces it adds to cover every character get
    # -10.15xx scores in that order. Scores rounded to 0.01, ties ordered by the piece, make the
    # vocabulary, its ids and so the model built over it the same on every run.
    learned = sorted(
        ((str(piece), round(float(score), 2)) for piece, score in vocab if piece not in special),
        key=lambda item: (-item[1], item[0]),
    )
    return [(piece, 0.0) for piece in special] + learned


# --- protobuf wire format, just what ModelProto needs ----------------------------------------


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 fields are sign-extended to 64 bits
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _bytes(field: int, value: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(value)) + value


def _float(field: int, value: float) -> bytes:
    return _varint(field << 3 | 5) + struct.pack("<f", value)


def model_proto(pieces: list[tuple[str, float]]) -> bytes:
    """sentencepiece's serialized ``ModelProto`` for a unigram model of ``pieces``."""
    kinds = {"<pad>": _CONTROL, "</s>": _CONTROL, "<unk>": _UNKNOWN}
    body = b"".join(
        _bytes(
            1,
            _bytes(1, piece.encode()) + _float(2, score) + _int(3, kinds.get(piece, _NORMAL)),
        )
        for piece, score in pieces
    )
    trainer_spec = (
        _int(3, _UNIGRAM)
        + _int(4, len(pieces))
        + _int(40, SPECIAL.index("<unk>"))
        + _int(41, -1)  # no <s>
        + _int(42, SPECIAL.index("</s>"))
        + _int(43, SPECIAL.index("<pad>"))
    )
    normalizer_spec = _bytes(1, b"identity") + _int(3, 1) + _int(4, 1) + _int(5, 1)
    return body + _bytes(2, trainer_spec) + _bytes(3, normalizer_spec)


def build_t5_tokenizer(corpus: Iterable[str], out: Path) -> tuple[int, dict[str, int]]:
    """Write the tokenizer into ``out``; returns the model's vocabulary size and special ids."""
    from transformers import T5Tokenizer

    pieces = train(corpus)
    (out / "spiece.model").write_bytes(model_proto(pieces))
    if "vocab" in inspect.signature(T5Tokenizer.__init__).parameters:  # transformers >= 5
        tokenizer = T5Tokenizer(vocab=pieces, extra_ids=EXTRA_IDS)
    else:  # 4.x: the slow tokenizer reads spiece.model (with sentencepiece)
        tokenizer = T5Tokenizer(str(out / "spiece.model"), extra_ids=EXTRA_IDS)
    tokenizer.save_pretrained(str(out))
    ids = {"pad_token_id": 0, "eos_token_id": 1}
    return len(tokenizer), ids


def build_xlmr_tokenizer(corpus: Iterable[str], out: Path) -> tuple[int, dict[str, int]]:
    """XLM-R's tokenizer into ``out``; returns the model's vocabulary size and special ids."""
    from transformers import XLMRobertaTokenizer

    pieces = [*train(corpus, XLMR_SPECIAL), ("<mask>", 0.0)]
    tokenizer = XLMRobertaTokenizer(vocab=pieces)
    tokenizer.save_pretrained(str(out))
    return len(tokenizer), {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2}
