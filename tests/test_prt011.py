"""PRT011 on a cached-features script: the exact rewrite, its layouts, and a real reload.

The fix is only worth something if today's torch then loads the cache, so a tiny script that
caches dataclass features with ``torch.save`` runs twice (the second run reads the cache) under
the installed torch: as written it fails with ``UnpicklingError``, rewritten it loads.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from patcher.engine import fix_text
from patches.prt011_torch_load_weights_only import UNPAIRED, TorchLoadWeightsOnly

SCRIPT = """\
import os
import sys
from dataclasses import dataclass

import torch


@dataclass
class InputFeatures:
    input_ids: list
    label: int


def load_and_cache_examples(data_dir, max_len):
    cached_features_file = os.path.join(data_dir, 'cached_{}_{}'.format('train', max_len))
    if os.path.exists(cached_features_file):
        features = torch.load(cached_features_file)
    else:
        features = [InputFeatures([1, 2, i], i % 2) for i in range(4)]
        torch.save(features, cached_features_file)
    return features


features = load_and_cache_examples(sys.argv[1], 8)
print(len(features), features[3].label)
"""

FIXED_SCRIPT = SCRIPT.replace(
    "torch.load(cached_features_file)", "torch.load(cached_features_file, weights_only=False)"
)


def _fix(source: str) -> tuple[str, list]:
    return fix_text(source, [TorchLoadWeightsOnly()])


def test_exact_rewrite_and_fixed_point() -> None:
    output, findings = _fix(SCRIPT)
    assert output == FIXED_SCRIPT
    assert [(f.line, f.fixed) for f in findings] == [(17, True)]
    assert _fix(output) == (output, [])


@pytest.mark.parametrize(
    ("call", "fixed"),
    [
        (
            "torch.load(\n    cache_fn,\n    map_location='cpu',\n)",
            "torch.load(\n    cache_fn,\n    map_location='cpu',\n    weights_only=False,\n)",
        ),
        (
            "torch.load(\n    cache_fn,\n    map_location='cpu')",
            "torch.load(\n    cache_fn,\n    map_location='cpu',\n    weights_only=False)",
        ),
        ("torch.load(\n    cache_fn\n)", "torch.load(\n    cache_fn,\n    weights_only=False\n)"),
        (
            "torch.load(cache_fn,\n           map_location='cpu')",
            "torch.load(cache_fn,\n           map_location='cpu',\n           weights_only=False)",
        ),
        (
            "torch.load(cache_fn, map_location = 'cpu')",
            "torch.load(cache_fn, map_location = 'cpu', weights_only = False)",
        ),
    ],
)
def test_layout_is_kept(call: str, fixed: str) -> None:
    """Multi-line calls get the keyword on its own line; keyword spacing follows the call."""
    source = (
        "import torch\n\n\ndef cache(cache_fn, data):\n"
        f"    if exists(cache_fn):\n        data = {call}\n"
        "    else:\n        torch.save(data, cache_fn)\n    return data\n"
    )
    output, _ = _fix(source)
    assert output == source.replace(call, fixed)


def test_report_only_without_a_writer() -> None:
    source = "import torch\n\n\ndef read(args):\n    return torch.load(args.cache_file)\n"
    output, findings = _fix(source)
    assert output == source
    assert [(f.line, f.fixed, f.message) for f in findings] == [(5, False, UNPAIRED)]


def test_state_dicts_are_left_alone() -> None:
    source = (
        "import torch\n\n\ndef resume(model, optimizer, path):\n"
        "    torch.save(model.state_dict(), path)\n"
        "    model.load_state_dict(torch.load(path))\n"
        "    optimizer.load_state_dict(torch.load('optimizer.pt'))\n"
        "    ckpt = torch.load('last.ckpt')\n"
        "    model.load_state_dict(ckpt['model'])\n"
        "    return torch.load(path)\n"
    )
    assert _fix(source) == (source, [])


def _run(script: Path, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), str(data)], capture_output=True, text=True, timeout=120
    )


def test_rewritten_script_reloads_its_cache(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    output, _ = _fix(SCRIPT)
    for name, source in (("before", SCRIPT), ("after", output)):
        data = tmp_path / name
        data.mkdir()
        script = tmp_path / f"{name}.py"
        script.write_text(source, encoding="utf-8")
        first = _run(script, data)
        assert first.returncode == 0, first.stderr  # builds and saves the cache
        assert first.stdout.split() == ["4", "1"]
        second = _run(script, data)  # reads the cache back
        if name == "before":
            assert second.returncode != 0
            assert "UnpicklingError" in second.stderr and "Weights only" in second.stderr
        else:
            assert second.returncode == 0, second.stderr
            assert second.stdout.split() == ["4", "1"]
