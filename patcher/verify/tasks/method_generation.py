"""Synthetic CodeXGLUE Method-Generation data: JSON lines ``{"signature", "docstring", "body"}``.

The script (CodeGPT, GPT-2) encodes the signature, ``<EOL>``, the docstring in triple quotes and
``<EOL>`` as the prompt and ``body`` as what to generate, with ``literals.json``
(``--lit_file``) naming the literal tokens.
It reads ``{data_dir}/train.jsonl``, ``dev.jsonl`` (perplexity during training) and ``test.jsonl``
(``--do_infer``), logs progress every ``len(lines) // 10`` lines (at least 10 per file) and keeps
every ``world_size``-th line on each rank: 24 training lines are 6 batches of 2 per rank, so 3
optimizer steps with accumulation 2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import jsonl
from patcher.verify.synthetic import Function, docstring, functions
from patcher.verify.tasks.code_completion import NUM_LITERALS, code_tokens


def _row(function: Function) -> dict[str, str]:
    tokens = code_tokens(function.code)
    split = tokens.index("{")
    return {
        "signature": " ".join(tokens[:split]),
        "docstring": docstring(function),
        "body": " ".join(tokens[split:]),
    }


def method_generation(out: Path) -> list[str]:
    """train/dev/test ``.jsonl`` (24/12/12) and ``literals.json``; the keys are the test bodies."""
    rows = [_row(f) for f in functions(48, seed=41)]
    splits = {"train": rows[:24], "dev": rows[24:36], "test": rows[36:]}
    for name, split in splits.items():
        jsonl(out / f"{name}.jsonl", split)
    literals = {"str": [], "num": list(NUM_LITERALS), "char": []}
    (out / "literals.json").write_text(json.dumps(literals))
    return [row["body"] for row in splits["test"]]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {"method-generation": method_generation}
