"""Synthetic CodeXGLUE TypePrediction-TypeScript data (ManyTypes4TypeScript's files).

``train.py`` has no data flag: it runs ``load_dataset('ManyTypes4TypeScript.py')``, whose builder
reads ``../dataset/train{0,1,2}.jsonl``, ``valid.jsonl``, ``test.jsonl`` and the label vocabulary
``vocab_50000.txt`` (one type name a line; index 0 is the unknown type and 1 is ``any``, which
the script's scoring treats specially, then the most common types). The target asks verify to put
this directory there (``data_at``). Each JSON line is ``{"tokens", "labels"}``: a TypeScript
function with its annotations stripped, and per token the type the annotation gave (``null`` on
tokens without one). The script labels the first sub-token of each typed token and writes one
``index<TAB>type`` line per labelled test token, gathered from every process, so the keys are
those indexes; eight test functions fill one evaluation batch of four on each of two ranks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

#: The label vocabulary: unknown, ``any``, then the types the functions use.
TYPES = ("UNK", "any", "number", "string", "boolean", "void", "number[]", "string[]")
_VERBS = ("compute", "find", "check", "build", "get", "scan")
_NAMES = ("total", "value", "count", "text", "item", "limit", "left", "right")


def _function(number: int) -> tuple[list[str], list[str | None]]:
    """One function's tokens and labels: ``function f(a, b) { let s = a; return s; }``."""
    values = [t for t in TYPES[2:] if t != "void"]  # what a parameter or variable can hold
    param_type = values[number % len(values)]
    result_type = TYPES[2 + (number + 1) % (len(TYPES) - 2)]
    a, b, s = (_NAMES[(number + k) % len(_NAMES)] + str(k) for k in range(3))
    name = f"{_VERBS[number % len(_VERBS)]}{number}"
    typed = {name: result_type, a: param_type, b: param_type, s: param_type}
    tokens = ["function", name, "(", a, ",", b, ")", "{", "let", s, "=", a, ";"]
    tokens += ["return", s, ";", "}"]
    seen: set[str] = set()
    labels: list[str | None] = []
    for token in tokens:
        labels.append(typed[token] if token in typed and token not in seen else None)
        seen.add(token)  # only the declaration carries the type
    return tokens, labels


def type_prediction(out: Path) -> list[str]:
    """The five split files and the vocabulary; keys: the test tokens' running indexes."""
    splits = {
        "train0.jsonl": range(0, 8),
        "train1.jsonl": range(8, 16),
        "train2.jsonl": range(16, 24),
        "valid.jsonl": range(24, 32),
        "test.jsonl": range(32, 40),
    }
    labelled = 0
    for name, numbers in splits.items():
        lines = []
        for number in numbers:
            tokens, labels = _function(number)
            lines.append(json.dumps({"tokens": tokens, "labels": labels}) + "\n")
            if name == "test.jsonl":
                labelled += sum(label is not None for label in labels)
        (out / name).write_text("".join(lines))
    (out / "vocab_50000.txt").write_text("".join(t + "\n" for t in TYPES))
    return [str(i) for i in range(labelled)]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"type-prediction": type_prediction}
