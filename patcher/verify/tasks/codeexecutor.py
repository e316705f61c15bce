"""Synthetic CodeExecutor pre-training data: JSON lines ``{"code_tokens", "trace_tokens"}``.

CodeBERT's CodeExecutor/pretrain/run.py reads three training files (CodeNetMut, tutorials,
single lines: ``--train_data_path``, ``--another_train_data_path``, ``--third_train_data_path``)
and an evaluation file of the same shape. Each row is a program's tokens and its execution trace:
``<line> <N> <state> name : value <dictsep> ... </state>`` per executed line. The script shards
each training file by line (``total_num % world_size == local_rank``) and cycles batches of
``--per_gpu_train_batch_size`` with ``drop_last``; rank 0 alone reads the evaluation file and
drops its last partial batch. Eight rows per file give each of two ranks full batches and rank 0
two evaluation batches of four.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import jsonl
from patcher.verify.synthetic import functions

_TOKEN = re.compile(r"\w+|[^\s\w]")
FILES = ("codenet.jsonl", "tutorial.jsonl", "singleline.jsonl", "eval.jsonl")


def _trace(names: list[str], steps: int) -> list[str]:
    """An execution trace: after each of ``steps`` lines, the values of ``names``."""
    tokens = []
    for line in range(1, steps + 1):
        tokens += ["<line>", f"<{line}>", "<state>"]
        for k, name in enumerate(names):
            if k:
                tokens.append("<dictsep>")
            tokens += [name, ":", str(line * (k + 1))]
        tokens.append("</state>")
    return tokens


def _rows(count: int, seed: int) -> list[dict]:
    rows = []
    for function in functions(count, seed=seed):
        tokens = _TOKEN.findall(function.code)
        names = sorted({t for t in tokens if t.islower() and len(t) > 2})[:2]
        rows.append({"code_tokens": tokens, "trace_tokens": _trace(names, 3)})
    return rows


def codeexecutor(out: Path) -> list[str]:
    """The four files of :data:`FILES`, eight rows each; keys: none (no results file)."""
    for number, name in enumerate(FILES):
        rows = _rows(8, seed=61 + number)
        jsonl(out / name, rows)
    return []


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"codeexecutor-trace": codeexecutor}
