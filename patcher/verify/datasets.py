"""Synthetic datasets in each target's own file format, sized for a few batches per rank.

Each generator writes its files into a directory and returns the keys the results file must list,
in the order of the test file. Sizes follow what the scripts do to their data: BigCloneBench keeps
a random 10% of train/valid pairs, POJ-104 needs every label at least twice and every file two
labels, NL-code-search-Adv evaluates every len(train_loader)//10 steps (so at least 10 batches).
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Callable
from pathlib import Path

from patcher.verify.synthetic import Function, docstring, functions


def jsonl(path: Path, rows: list[dict]) -> None:
    """One JSON object a line, the format most of the tasks' scripts read."""
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def bigclonebench(out: Path) -> list[str]:
    """``data.jsonl`` (string idx → func) and ``idx1<TAB>idx2<TAB>label`` pair files."""
    funcs = functions(16, families=4)
    ids = [str(100 + i) for i in range(len(funcs))]
    jsonl(out / "data.jsonl", [{"func": f.code, "idx": i} for f, i in zip(funcs, ids)])

    def pairs(count: int, offset: int, all_clones: bool = False) -> list[str]:
        lines = []
        for k in range(count):
            a = (k + offset) % len(funcs)
            clone = all_clones or k % 2 == 0  # same family four ids apart, else the next family
            b = (a + 4 * (1 + k % 3)) % len(funcs) if clone else (a + 1) % len(funcs)
            label = int(funcs[a].family == funcs[b].family)
            lines.append(f"{ids[a]}\t{ids[b]}\t{label}")
        return lines

    train = pairs(80, 0)
    valid = pairs(40, 3, all_clones=True)  # every sampled pair is a clone: f1 > 0, a checkpoint
    test = pairs(12, 7)
    for name, lines in (("train.txt", train), ("valid.txt", valid), ("test.txt", test)):
        (out / name).write_text("".join(line + "\n" for line in lines))
    return ["\t".join(line.split("\t")[:2]) for line in test]


def poj104(out: Path) -> list[str]:
    """JSON lines ``{"code", "label", "index"}`` with every label at least four times."""
    rows: dict[str, list[dict]] = {}
    index = 0
    for split, labels in (("train", range(4)), ("valid", range(4, 7)), ("test", range(7, 10))):
        rows[split] = []
        for label in labels:
            for copy in range(4):
                function = functions(1, seed=label * 10 + copy)[0]
                code = function.code.replace(function.name, f"solve{label}")
                rows[split].append({"code": code, "label": str(label + 1), "index": str(index)})
                index += 1
        jsonl(out / f"{split}.jsonl", rows[split])
    return [row["index"] for row in rows["test"]]


def defect(out: Path) -> list[str]:
    """JSON lines ``{"func", "target", "idx"}`` with mixed 0/1 targets (int idx, as Devign)."""
    funcs = functions(32)
    rows = [{"func": f.code, "target": i % 2, "idx": i} for i, f in enumerate(funcs)]
    jsonl(out / "train.jsonl", rows[:16])
    jsonl(out / "valid.jsonl", rows[16:24])
    jsonl(out / "test.jsonl", rows[24:32])
    return [str(row["idx"]) for row in rows[24:32]]


def _search_row(function: Function, number: int) -> dict:
    return {
        "url": f"https://example.invalid/repo/blob/main/f{number}.java",
        "idx": number,
        "code_tokens": function.code.replace("(", " ( ").replace(")", " ) ").split(),
        "docstring_tokens": docstring(function).split(),
    }


def codesearch_adv(out: Path) -> list[str]:
    """JSON lines ``{"url", "idx", "code_tokens", "docstring_tokens"}``."""
    funcs = functions(56)
    rows = [_search_row(f, i) for i, f in enumerate(funcs)]
    jsonl(out / "train.jsonl", rows[:40])
    jsonl(out / "valid.jsonl", rows[40:48])
    jsonl(out / "test.jsonl", rows[48:56])
    return [row["url"] for row in rows[48:56]]


def code_to_text(out: Path) -> list[str]:
    """JSON lines ``{"code_tokens", "docstring_tokens"}``; examples are numbered by line."""
    funcs = functions(32)
    rows = [_search_row(f, i) for i, f in enumerate(funcs)]
    jsonl(out / "train.jsonl", rows[:16])
    jsonl(out / "valid.jsonl", rows[16:24])
    jsonl(out / "test.jsonl", rows[24:32])
    return [str(i) for i in range(8)]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {
    "code-to-text": code_to_text,
    "bigclonebench": bigclonebench,
    "poj104": poj104,
    "defect": defect,
    "codesearch-adv": codesearch_adv,
}


def generators() -> dict[str, Callable[[Path], list[str]]]:
    """Every dataset generator: the ones above and those of :mod:`patcher.verify.tasks`."""
    from patcher.verify import tasks

    found = dict(GENERATORS)
    for info in pkgutil.iter_modules(tasks.__path__):
        module = importlib.import_module(f"{tasks.__name__}.{info.name}")
        found.update(module.GENERATORS)
    return found
