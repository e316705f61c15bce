"""PRT013 proven by running: a CodeReviewer-shaped trainer that puts the model and its batches on
the rank's GPU with no CUDA check (``DDP(model.cuda(), ...)``, ``.to(local_rank)``,
``.cuda(args.local_rank)``).

Patched with every other rule (gloo, no ``set_device``, DDP without device ids on the CPU), each
rank still dies at its first placement: "Torch not compiled with CUDA enabled". With PRT013 every
rank trains and exits 0 with the same parameters; with CUDA each placement names the device it
named before.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "gpu_only_placement.py"
PLACEMENTS = ("model.cuda()", ").to(local_rank)\n", ".cuda(args.local_rank)")
FALLBACK = ' if torch.cuda.is_available() else "cpu"'


def test_with_cuda_each_placement_names_the_same_device() -> None:
    """Taking the CUDA branch of every conditional PRT013 adds gives the original script, with
    ``.cuda(X)`` spelt ``.to(X)`` and ``.cuda()`` spelt ``.to("cuda")`` (the current device)."""
    source = SCRIPT.read_text()
    assert all(p in source for p in PLACEMENTS)
    output = patched(source, ["PRT013"])
    assert output.count(FALLBACK) == 4
    on_gpu = output.replace(FALLBACK, "")
    expected = source.replace("DDP(model.cuda()", 'DDP(model.to("cuda")')
    expected = re.sub(r"\.cuda\((args\.local_rank)\)", r".to(\1)", expected)
    assert on_gpu == expected


def test_patched_ranks_train_and_agree(tmp_path: Path) -> None:
    run = launch(patched(SCRIPT.read_text()), [], tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes
    writers = run.writers()
    assert len(writers["eval.txt"]) == 1, writers
    assert (run.output / "eval.txt").read_text().startswith("acc ")


def test_without_prt013_every_rank_dies_at_its_first_placement(tmp_path: Path) -> None:
    codes = [rule.code for rule in all_rules() if rule.code != "PRT013"]
    source = patched(SCRIPT.read_text(), codes)
    assert "model.cuda()" in source and "gloo" in source
    run = launch(source, [], tmp_path / "gpu_only")
    assert not run.ok
    assert len(run.records) == 2, run.explain()
    for record in run.records:
        assert record.exit_code != 0, run.explain()
        assert record.exception is not None, run.explain()
        assert "Torch not compiled with CUDA enabled" in record.exception.summary, run.explain()
