"""Paired-file seq2seq data: CodeXGLUE code refinement (buggy → fixed) and Java → C# translation.

The scripts read ``--train_filename src,trg``: two line-aligned files, one example per line. Their
``test_{idx}.output`` holds bare predictions with no example id, which a tiny untrained model makes
arbitrary (often empty), so the targets check the ``test_{idx}.gold`` written beside it in the same
loop, zipped with the predictions: it has a line per example predicted, in the order predicted.
Verify checks every results file against one key list, so the dev file (``test_0``) has the same
targets as the test file (``test_1``); refinement varies the injected bug between the two.

Sizes: 16 training pairs (4 batches of 2 per rank), 8 dev and 8 test pairs (2 batches of 4).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from patcher.verify.synthetic import Function, functions

TRAIN, HELD_OUT = 16, 8

# (correct, buggy) operator swaps; one that a function contains is its injected bug.
_BUGS = (
    (" < ", " <= "),
    (" > ", " >= "),
    ("++", "--"),
    (" += ", " -= "),
    (" != ", " == "),
    (" *= ", " += "),
    (" - 1", " + 1"),
    ("return ", "return - "),
)


def _tokens(code: str) -> str:
    """Space-separated tokens, as the refinement data is (``( VAR_1 ) ;``)."""
    spaced = re.sub(r"(\+\+|--|[()\[\]{};,.])", r" \1 ", code)
    return " ".join(spaced.split())


def _buggy(fixed: str, choice: int) -> str:
    """``fixed`` with one operator swapped: the ``choice``-th (cyclically) swap that applies."""
    swaps = [(good, bad) for good, bad in _BUGS if good in fixed]
    good, bad = swaps[choice % len(swaps)]  # every family has two or more
    return fixed.replace(good, bad, 1)


def _write_pairs(
    out: Path, stem: str, suffixes: tuple[str, str], pairs: list[tuple[str, str]]
) -> None:
    for side, suffix in enumerate(suffixes):
        text = "".join(pair[side] + "\n" for pair in pairs)
        (out / f"{stem}.{suffix}").write_text(text, encoding="utf-8")


def code_refinement(out: Path) -> list[str]:
    """``{split}.buggy-fixed.buggy`` / ``.fixed``: token-spaced Java, one operator broken."""
    funcs = [_tokens(f.code) for f in functions(TRAIN + HELD_OUT, seed=29)]
    train = [(_buggy(code, k), code) for k, code in enumerate(funcs[:TRAIN])]
    held = funcs[TRAIN:]
    valid = [(_buggy(code, k + 1), code) for k, code in enumerate(held)]
    test = [(_buggy(code, k), code) for k, code in enumerate(held)]
    for split, pairs in (("train", train), ("valid", valid), ("test", test)):
        _write_pairs(out, f"{split}.buggy-fixed", ("buggy", "fixed"), pairs)
    return [fixed for _, fixed in test]


# Java → C# spellings of what the synthetic functions use.
_CSHARP = (
    (r"\bboolean\b", "bool"),
    (r"\bString\b", "string"),
    (r"\.length\(\)", ".Length"),
    (r"\.length\b", ".Length"),
    (r"\.charAt\(([^()]*)\)", r"[\1]"),
    (r"\.append\(", ".Append("),
    (r"\.toString\(\)", ".ToString()"),
    (r"\.toCharArray\(\)", ".ToCharArray()"),
    (r"for \((\w+) (\w+) : ", r"foreach (\1 \2 in "),
)


def _csharp(function: Function) -> str:
    code = function.code
    for pattern, replacement in _CSHARP:
        code = re.sub(pattern, replacement, code)
    name = function.name
    return "public " + code.replace(name, name[0].upper() + name[1:], 1)


def code_to_code_trans(out: Path) -> list[str]:
    """``{split}.java-cs.txt.java`` / ``.cs``: a Java method and its C# rendering per line."""
    funcs = functions(TRAIN + HELD_OUT, seed=31)
    pairs = [("public " + f.code, _csharp(f)) for f in funcs]
    train, test = pairs[:TRAIN], pairs[TRAIN:]
    for split, rows in (("train", train), ("valid", test), ("test", test)):
        _write_pairs(out, f"{split}.java-cs.txt", ("java", "cs"), rows)
    return [cs for _, cs in test]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {
    "code-refinement": code_refinement,
    "code-to-code-trans": code_to_code_trans,
}
