"""Synthetic CodeXGLUE NL-code-search-WebQuery data: JSON arrays of ``{"idx", "doc", "code",
"label"}`` (does the code answer the query?).

The script ``json.load``\\ s each file whole (a list, not JSON lines), encodes ``code`` and
``doc`` separately, and ``--do_predict`` writes ``idx<TAB>0|1`` per test example in file order
(the test labels are ignored). Half the pairs match (the query describes the code's own function),
half pair a query with another family's code.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from patcher.verify.synthetic import docstring, functions


def _pairs(prefix: str, count: int, seed: int) -> list[dict]:
    funcs = functions(count, seed=seed)
    rows = []
    for k, function in enumerate(funcs):
        match = k % 2 == 0
        query = function if match else funcs[(k + 1) % count]  # the next one: another family
        rows.append(
            {
                "idx": f"{prefix}-{k}",
                "doc": f"how to get the {docstring(query)} in java",
                "code": function.code,
                "label": int(match or query.family == function.family),
            }
        )
    return rows


def webquery(out: Path) -> list[str]:
    """``train.json`` (16 pairs), ``dev.json`` and ``test.json`` (8 each); keys: test idx."""
    splits = {
        "train.json": _pairs("train", 16, 43),
        "dev.json": _pairs("dev", 8, 47),
        "test.json": _pairs("test", 8, 53),
    }
    for name, rows in splits.items():
        (out / name).write_text(json.dumps(rows, indent=1))
    return [row["idx"] for row in splits["test.json"]]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"webquery": webquery}
