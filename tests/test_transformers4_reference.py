"""The helpers PRT009 and PRT015 define in a script, against transformers 4's own functions.

Opt-in: set ``DDPFIX_TRANSFORMERS4_PYTHON`` to an interpreter with transformers 4.40 installed
(``pip download transformers==4.40.2 --no-deps``, installed with ``--target`` beside
``tokenizers<0.20`` and ``huggingface_hub<1.0``, then a wrapper that puts that directory on
``PYTHONPATH``). The helpers' source is sent to that interpreter, which runs them and 4's
``find_pruneable_heads_and_indices`` / ``ModuleUtilsMixin.get_extended_attention_mask`` on the
same random arguments (seeded) and reports every case where the results, or the exceptions
raised, differ. tests/test_prt009.py keeps a small table of 4's answers that runs without it.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from patches import _extended_mask, _prune_heads

PYTHON = os.environ.get("DDPFIX_TRANSFORMERS4_PYTHON")
pytestmark = pytest.mark.skipif(
    not PYTHON, reason="set DDPFIX_TRANSFORMERS4_PYTHON to an interpreter with transformers 4.40"
)

_COMPARE = r"""
import json, random, sys
from types import SimpleNamespace

import torch
import transformers
from transformers.modeling_utils import ModuleUtilsMixin
from transformers.pytorch_utils import find_pruneable_heads_and_indices as reference_prune

sources = json.load(sys.stdin)
ours: dict = {"torch": torch}
exec(sources["prune"], ours)
exec(sources["mask"], ours)
rng = random.Random(20261130)
torch.manual_seed(20261130)


def outcome(function, *args, **kwargs):
    try:
        return "ok", function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - the exception's type is compared
        return "raised", type(error).__name__


mismatches = []
for case in range(int(sources["prunes"])):
    n_heads, head_size = rng.randint(1, 12), rng.randint(1, 8)
    pruned = set(rng.sample(range(n_heads + 4), rng.randint(0, 3)))
    heads = [rng.randint(-n_heads - 2, n_heads + 5) for _ in range(rng.randint(0, 4))]
    args = (heads, n_heads, head_size, pruned)
    want = outcome(reference_prune, list(heads), n_heads, head_size, set(pruned))
    helper = ours["find_pruneable_heads_and_indices"]
    got = outcome(helper, list(heads), n_heads, head_size, set(pruned))
    if want[0] == "ok" and got[0] == "ok":
        same = want[1][0] == got[1][0] and torch.equal(want[1][1], got[1][1])
        same = same and want[1][1].dtype == got[1][1].dtype
    else:
        same = want == got
    if not same:
        mismatches.append(f"prune {args}: 4 {want}, helper {got}")

dtypes = [torch.float32, torch.float16, torch.bfloat16]
for case in range(int(sources["masks"])):
    batch, length = rng.randint(1, 3), rng.randint(1, 6)
    model = SimpleNamespace(
        dtype=rng.choice(dtypes), config=SimpleNamespace(is_decoder=rng.random() < 0.5)
    )
    dims = rng.choice([2, 2, 3, 3, 1, 4])
    cached = rng.randint(0, 3) if dims == 2 else 0
    shape = {1: (length,), 2: (batch, length + cached), 3: (batch, length, length),
             4: (batch, 1, length, length)}[dims]
    mask = torch.randint(0, 3 if rng.random() < 0.2 else 2, shape)
    mask = mask.to(rng.choice([torch.long, torch.float32, torch.int32]))
    dtype = rng.choice([None, None, *dtypes])
    args = (tuple(mask.shape), (batch, length), model.dtype, model.config.is_decoder, dtype)
    reference = ModuleUtilsMixin.get_extended_attention_mask
    want = outcome(reference, model, mask, (batch, length), dtype=dtype)
    got = outcome(ours["get_extended_attention_mask"], model, mask, (batch, length), dtype=dtype)
    if want[0] == "ok" and got[0] == "ok":
        same = want[1].dtype == got[1].dtype and torch.equal(want[1], got[1])
    else:
        same = want == got
    if not same:
        mismatches.append(f"mask {args}: 4 {want}, helper {got}")

print(json.dumps({"version": transformers.__version__, "mismatches": mismatches}))
"""


def test_helpers_agree_with_transformers_4() -> None:
    assert PYTHON
    sources = {
        "prune": _prune_heads.HELPER.format(name="find_pruneable_heads_and_indices"),
        "mask": _extended_mask.HELPER,
        "prunes": 3000,
        "masks": 600,
    }
    result = subprocess.run(
        [PYTHON, "-c", _COMPARE], input=json.dumps(sources), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["version"].startswith("4."), report["version"]
    assert report["mismatches"] == []
