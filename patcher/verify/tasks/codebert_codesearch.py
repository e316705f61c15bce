"""Synthetic data for CodeBERT's own code search fine-tuning (CodeBERT/codesearch): lines of five
``<CODESPLIT>``-separated fields, ``label``, ``url``, ``func_name``, ``docstring``, ``code``.

``run_classifier.py`` classifies (docstring, code) pairs: label 1 when the docstring describes
the code. Lines with another number of fields are skipped by its reader, so no field may contain
``<CODESPLIT>`` or a newline. ``--do_predict`` writes each test line back with its logits
(``<CODESPLIT>``-joined, not a format the results check reads), so the keys are the test urls.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from patcher.verify.synthetic import docstring, functions

SEP = "<CODESPLIT>"


def _lines(prefix: str, count: int, seed: int) -> list[str]:
    funcs = functions(count, seed=seed)
    lines = []
    for k, function in enumerate(funcs):
        other = funcs[(k + 1) % count]  # the next function: another family
        described = function if k % 2 == 0 else other
        label = int(described.family == function.family)
        url = f"https://example.invalid/{prefix}/{k}.java"
        fields = [str(label), url, function.name, docstring(described), function.code]
        lines.append(SEP.join(fields))
    return lines


def codesearch(out: Path) -> list[str]:
    """``train.txt`` (32 pairs), ``valid.txt`` and ``test.txt`` (8 each)."""
    splits = {
        "train.txt": _lines("train", 32, 61),
        "valid.txt": _lines("valid", 8, 67),
        "test.txt": _lines("test", 8, 71),
    }
    for name, lines in splits.items():
        (out / name).write_text("".join(line + "\n" for line in lines))
    return [line.split(SEP)[1] for line in splits["test.txt"]]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"codebert-codesearch": codesearch}
