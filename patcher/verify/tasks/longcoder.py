"""Synthetic LongCoder code completion data (LCC-style): JSON lines ``{"context", "gt"}``.

CodeBERT's LongCoder/run.py calls ``load_dataset(args.filename)`` and reads the splits
``train``, ``validation`` and ``test``; a local directory with ``train.jsonl``,
``validation.jsonl`` and ``test.jsonl`` is such a dataset. ``context`` is a Python file's
beginning (newlines kept: the script parses it with tree-sitter to find its global statements)
and ``gt`` the line that follows. Training reads every context (the model learns the file);
evaluation completes each context and writes ``{prefix}.output`` and ``{prefix}.gold`` (one
``gt`` a line, in file order), so the keys are the test ``gt`` lines, each distinct. The
validation split repeats the test split: the evaluation after every epoch writes ``dev.gold``,
and with the same lines it is held to the same keys (and the same single writer) as
``test.gold``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import jsonl

_OPS = ("+", "-", "*")
_NAMES = ("values", "items", "numbers", "scores", "weights", "counts")
#: Functions per file: long enough that every sequence passes position 255, where LongCoder
#: places its first bridge token (one every 256 positions); shorter inputs leave the bridge
#: attention's projections without a gradient.
_FUNCTIONS = 6


def _file(number: int) -> tuple[str, str]:
    """A Python module of a few functions and the line after it."""
    op = _OPS[number % len(_OPS)]
    name = _NAMES[number % len(_NAMES)]
    lines = ["import math", ""]
    for k in range(_FUNCTIONS):
        lines += [
            f"def combine{number}_{k}({name}, factor):",
            "    total = 0",
            f"    for item in {name}:",
            f"        total = total {op} item * factor + {k}",
            "    return total",
            "",
        ]
    lines += [
        f"class Box{number}:",
        "    def __init__(self, value):",
        "        self.value = value",
        "    def scaled(self, factor):",
    ]
    return "\n".join(lines) + "\n", f"return combine{number}_0([self.value], factor) {op} {number}"


def _rows(numbers: range) -> list[dict]:
    return [{"context": c, "gt": g} for c, g in map(_file, numbers)]


def longcoder(out: Path) -> list[str]:
    """16 training files and 8 test files, again as validation; keys: the test ``gt`` lines."""
    splits = {
        "train.jsonl": _rows(range(0, 16)),
        "validation.jsonl": _rows(range(16, 24)),
        "test.jsonl": _rows(range(16, 24)),
    }
    for name, rows in splits.items():
        jsonl(out / name, rows)
    return [row["gt"] for row in splits["test.jsonl"]]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"longcoder-lcc": longcoder}
