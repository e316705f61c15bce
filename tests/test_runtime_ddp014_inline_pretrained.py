"""DDP014 asks DDP to look for unused parameters when a transformers model built inline goes
into a model class of the project, proven by running.

``Model(RobertaForSequenceClassification(config=config), config, args)`` (a GraphCodeBERT
distillation fork of the eighth unseen batch) reads the encoder through ``encoder.roberta`` and
never its classification head. DDP014 knew the shape only with a named ``from_pretrained``
result, so the wrap had no ``find_unused_parameters``: the original ran (every rank its own
copy), the patched script failed on every rank at its second step ("Expected to have finished
reduction in the prior iteration"). Patched now, both ranks train one model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

SOURCE = (SCRIPTS / "inline_pretrained_head.py").read_text()
UNUSED = "            find_unused_parameters=True,\n"


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SOURCE)


def test_the_wrap_looks_for_unused_parameters(patched_source: str) -> None:
    assert "torch.nn.parallel.DistributedDataParallel(" in patched_source
    assert UNUSED in patched_source


def test_patched_both_ranks_train_one_model(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, [], tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert set(hashes) == {"0", "1"}, run.explain()
    assert len(set(hashes.values())) == 1, hashes


def test_the_plain_wrap_fails_on_every_rank(patched_source: str, tmp_path: Path) -> None:
    source = patched_source.replace(UNUSED, "")
    assert source != patched_source
    run = launch(source, [], tmp_path / "plain")
    assert not run.ok
    failed = [r for r in run.records if r.exception is not None]
    assert len(failed) == 2, run.explain()
    assert all("finished reduction" in r.exception.summary for r in failed if r.exception)
