"""GraphCodeBERT code search: docstring queries against a codebase of Java methods.

The script reads JSON lines with ``url``, ``original_string`` (the code it parses with tree-sitter
to extract data flow, so every function here is a complete Java method that assigns variables) and
``docstring_tokens`` (the query). Evaluation embeds the queries of ``valid.jsonl``/``test.jsonl``
and ranks every function of ``codebase.jsonl`` against each; a query's answer is the codebase
entry with its url. The codebase therefore holds every valid and test function (plus a few
distractors), so each query's answer is ranked and MRR is above 0, which is what makes the
script write ``checkpoint-best-mrr``. Training has no periodic evaluation, so the only size
constraint is a few batches per rank: 32 pairs at a global batch of 4 are 8 steps on each of 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import jsonl
from patcher.verify.synthetic import Function, docstring, functions

_TRAIN, _VALID, _TEST, _DISTRACTORS = 32, 8, 8, 4


def _row(function: Function, number: int) -> dict:
    """One CodeSearchNet-style record; the script uses url, original_string, docstring_tokens."""
    code = function.code
    query = f"{docstring(function)} in {function.name}"
    return {
        "url": f"https://example.invalid/search/blob/main/Search{number}.java#L1",
        "func_name": function.name,
        "original_string": code,
        "code": code,
        "code_tokens": code.replace("(", " ( ").replace(")", " ) ").split(),
        "docstring": query,
        "docstring_tokens": query.split(),
        "language": "java",
    }


def code_search(out: Path) -> list[str]:
    """train/valid/test/codebase ``.jsonl``; the keys are the test queries' urls, in order."""
    funcs = functions(_TRAIN + _VALID + _TEST + _DISTRACTORS, seed=31)
    rows = [_row(f, n) for n, f in enumerate(funcs)]
    train = rows[:_TRAIN]
    valid = rows[_TRAIN : _TRAIN + _VALID]
    test = rows[_TRAIN + _VALID : _TRAIN + _VALID + _TEST]
    codebase = rows[_TRAIN:]  # every valid and test answer, then the distractors
    for name, split in (("train", train), ("valid", valid), ("test", test)):
        jsonl(out / f"{name}.jsonl", split)
    jsonl(out / "codebase.jsonl", codebase)
    return [row["url"] for row in test]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"graphcodebert-search": code_search}
