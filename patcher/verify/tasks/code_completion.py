"""Synthetic CodeXGLUE code completion data (CodeCompletion-token and -line, CodeGPT's run_lm.py).

Fine-tuning (``--not_pretrain``) reads ``{data_dir}/train.txt`` and ``dev.txt``: one tokenized
function per line, tokens separated by spaces, ``<s>`` ... ``</s>`` around it, ``<EOL>`` at line
ends and literals abstracted to ``<NUM_LIT:0>`` (a literal of ``literals.json``), ``<NUM_LIT>`` or
``<STR_LIT>``. ``--lit_file`` names that ``literals.json``; its literals become special tokens.
Line-level evaluation reads ``test.json`` lines ``{"input", "gt"}`` (a prefix and the rest of
its line); token-level evaluation reads ``test.txt``. UniXcoder's code-completion run.py trains
on ``train.txt`` and evaluates on ``dev.txt`` (loss) and ``dev.json`` (exact match).

Sizes follow what the script does: every line is a progress step of ``len(lines) // 10`` (at
least 10 lines per file), the token stream is split between the ranks and cut into
``--block_size`` blocks (64 in the targets), training batches drop the last partial batch, and
the rank-0 evaluation during training shards ``dev.txt``'s blocks once more with a
DistributedSampler and drops its last partial batch of 4: 48 training and 24 dev functions give
each rank several optimizer steps and rank 0 a few evaluation batches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import jsonl
from patcher.verify.synthetic import functions

#: The literals ``literals.json`` lists; others are abstracted to their kind alone.
NUM_LITERALS = ("0", "1", "2")
_TOKEN = re.compile(r"\+\+|--|[-+*/%<>=!]=|&&|\|\||\w+|[^\s\w]")


def code_tokens(code: str) -> list[str]:
    """Java code as CodeXGLUE's token files have it: literals abstracted, ``<EOL>`` at ends."""
    out = []
    for token in _TOKEN.findall(code):
        if token.isdigit():
            out.append(f"<NUM_LIT:{token}>" if token in NUM_LITERALS else "<NUM_LIT>")
        else:
            out.append(token)
        if token in (";", "{", "}"):
            out.append("<EOL>")
    return out


def _line(code: str) -> str:
    return " ".join(["<s>", *code_tokens(code), "</s>"])


def _line_task(line: str) -> dict[str, str]:
    """A line-completion example: the signature line and two tokens, then the rest of the line."""
    tokens = line.split()
    cut = tokens.index("<EOL>") + 1
    end = tokens.index("<EOL>", cut)
    return {"input": " ".join(tokens[: cut + 2]), "gt": " ".join(tokens[cut + 2 : end])}


def code_completion(out: Path) -> list[str]:
    """train/dev/test ``.txt``, dev/test ``.json`` and ``literals.json``; the keys are the test
    lines (no script's training writes a results file keyed by them)."""
    funcs = functions(48 + 24 + 12, seed=37)
    lines = [_line(f.code) for f in funcs]
    splits = {"train.txt": lines[:48], "dev.txt": lines[48:72], "test.txt": lines[72:]}
    for name, split in splits.items():
        (out / name).write_text("".join(line + "\n" for line in split))
    for name in ("dev", "test"):
        rows = [_line_task(line) for line in splits[f"{name}.txt"]]
        jsonl(out / f"{name}.json", rows)
    literals = {"str": [], "num": list(NUM_LITERALS), "char": []}
    (out / "literals.json").write_text(json.dumps(literals))
    return splits["test.txt"]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"code-completion": code_completion}
