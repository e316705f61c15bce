"""GraphCodeBERT clone detection: BigCloneBench-style pairs over Java that tree-sitter must parse.

The script reads ``data.jsonl`` (``{"idx", "func"}``) next to ``train.txt``/``valid.txt``/
``test.txt`` (``idx1<TAB>idx2<TAB>label``) and extracts each function's data flow with the Java
grammar, so every function here is a complete method that tree-sitter-java parses without error
nodes and that assigns variables (a non-empty data-flow graph). Sizes follow the script:
``save_steps = len(train_loader) // 10`` must not be 0 (at least 10 training batches on every
rank), validation keeps a random 10% of its pairs, and a checkpoint is written only when a
validation F1 beats 0 (so every validation pair is a clone, and most training pairs are).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import jsonl
from patcher.verify.synthetic import functions

#: Functions per family: clones share a family.
_FAMILIES = 4
_PER_FAMILY = 5


def _pair_lines(
    ids: list[str], family: list[int], count: int, start: int, clones: int
) -> list[str]:
    """``count`` pairs; ``clones`` in every 4 are same-family pairs, the rest cross families."""
    size = len(ids)
    lines = []
    for k in range(count):
        first = (start + k) % size
        if k % 4 < clones:
            step = _FAMILIES * (1 + k % (_PER_FAMILY - 1))  # same family, another member
        else:
            step = 1 + k % (_FAMILIES - 1)  # a neighbouring family
        second = (first + step) % size
        label = int(family[first] == family[second])
        lines.append(f"{ids[first]}\t{ids[second]}\t{label}")
    return lines


def clone_pairs(out: Path) -> list[str]:
    """``data.jsonl`` and the three pair files; the keys are the test pairs' two ids."""
    funcs = functions(_FAMILIES * _PER_FAMILY, families=_FAMILIES, seed=29)
    ids = [f"gcb{n}" for n in range(len(funcs))]
    family = [f.family for f in funcs]
    rows = [{"idx": i, "func": f.code} for i, f in zip(ids, funcs)]
    jsonl(out / "data.jsonl", rows)
    splits = {
        "train.txt": _pair_lines(ids, family, 40, 0, clones=3),
        "valid.txt": _pair_lines(ids, family, 30, 5, clones=4),
        "test.txt": _pair_lines(ids, family, 10, 11, clones=2),
    }
    for name, lines in splits.items():
        (out / name).write_text("".join(line + "\n" for line in lines))
    return ["\t".join(line.split("\t")[:2]) for line in splits["test.txt"]]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"graphcodebert-clone": clone_pairs}
