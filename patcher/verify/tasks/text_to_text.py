"""Synthetic CodeXGLUE text-to-text data: line-aligned documentation sentences and their
translations (the Microsoft Docs pairs, en → da/lv/no/zh), read with ``--train_filename src,trg``.

The script is the seq2seq family of code refinement (:mod:`patcher.verify.tasks.seq2seq_pairs`):
``test_{idx}.gold`` lists each predicted example's target once, in order, so the keys are the
test targets, and the dev file (``test_0``) has the same targets as the test file (``test_1``).
The "translation" swaps words through a small table (a stand-in for Danish): every target line
is distinct, which the results check needs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from patcher.verify.synthetic import docstring, functions
from patcher.verify.tasks.seq2seq_pairs import HELD_OUT, TRAIN, _write_pairs

_WORDS = {
    "sum": "summen",
    "of": "af",
    "the": "den",
    "array": "tabellen",
    "largest": "største",
    "element": "element",
    "whether": "om",
    "string": "strengen",
    "is": "er",
    "a": "en",
    "reversed": "omvendt",
    "greatest": "største",
    "common": "fælles",
    "divisor": "divisor",
    "sort": "sortér",
    "in": "i",
    "place": "stedet",
    "count": "tæl",
    "occurrences": "forekomster",
    "character": "tegn",
    "returns": "returnerer",
}


def _sentence(number: int, name: str, text: str) -> str:
    return f"{name} returns the {text} ({number})"


def _translate(sentence: str) -> str:
    return " ".join(_WORDS.get(word, word) for word in sentence.split())


def text_to_text(out: Path) -> list[str]:
    """``{train,valid,test}.en-da.{en,da}``; the keys are the test targets, in order."""
    funcs = functions(TRAIN + HELD_OUT, seed=59)
    english = [_sentence(n, f.name, docstring(f)) for n, f in enumerate(funcs)]
    pairs = [(line, _translate(line)) for line in english]
    train, test = pairs[:TRAIN], pairs[TRAIN:]
    for split, rows in (("train", train), ("valid", test), ("test", test)):
        _write_pairs(out, f"{split}.en-da", ("en", "da"), rows)
    return [target for _, target in test]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"text-to-text": text_to_text}
