"""Synthetic concode data (CodeXGLUE text-to-code): JSON lines ``{"nl", "code"}``.

``nl`` is a description followed by the class environment (fields and other methods, separated
by ``concode_field_sep`` / ``concode_elem_sep``); ``code`` is the method, space-tokenized as in
concode. The script reads ``train.json``, ``dev.json`` and ``test.json`` from ``--data_dir`` and
logs progress every ``len(lines) // 10`` lines, so a file of fewer than 10 lines divides by zero:
every split has at least 12. Each rank keeps every other line (``idx % world_size``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import jsonl
from patcher.verify.synthetic import Function, docstring, functions

_PUNCTUATION = re.compile(r"(\+\+|--|[-+*/%<>=!]=|&&|\|\||[()\[\]{};,.+\-*/%<>=!])")
_FIELDS = ("int[] data", "String name", "int size", "long total", "boolean ready")


def _tokens(code: str) -> str:
    """Concode's code side: every operator and punctuation mark its own token (``<=`` one)."""
    return " ".join(_PUNCTUATION.sub(r" \1 ", code).split())


def _row(function: Function, number: int) -> dict[str, str]:
    fields = " concode_elem_sep ".join(_FIELDS[number % 3 : number % 3 + 3])
    sibling = f"void reset{number} ( )"
    nl = f"{docstring(function)} . concode_field_sep {fields} concode_field_sep {sibling}"
    return {"nl": nl, "code": _tokens(function.code)}


def concode(out: Path) -> list[str]:
    """train/dev/test ``.json`` (24/12/12 lines); returns the test codes, in file order.

    The codes are what the script's ``test.gold`` lists line by line (its ``test.output`` holds
    the predictions in the same order); every code is distinct (each function name carries its
    index).
    """
    rows = [_row(f, i) for i, f in enumerate(functions(48))]
    splits = {"train.json": rows[:24], "dev.json": rows[24:36], "test.json": rows[36:48]}
    for name, split in splits.items():
        jsonl(out / name, split)
    return [row["code"] for row in splits["test.json"]]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"concode": concode}
