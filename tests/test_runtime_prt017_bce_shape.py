"""PRT017 views a binary cross-entropy's input as its target, proven by running.

A matching head that ends in ``Linear(hidden, 1)`` gives ``[batch, 1]``; the labels are
``[batch]``. Today's torch refuses the pair in the first step on every rank (ValueError), as it
did in CodeXGLUE's WebQuery code search under ``ddpfix verify``. Patched, both ranks train the
same model to the end.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "bce_single_logit_head.py"


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_the_input_takes_the_labels_shape(patched_source: str) -> None:
    assert "loss = self.loss_func(logits.view_as(labels), labels.float())" in patched_source


def test_original_fails_on_every_rank_in_its_first_step(tmp_path: Path) -> None:
    run = launch(SCRIPT.read_text(), [], tmp_path / "original")
    assert not run.ok
    assert len(run.records) == 2, run.explain()
    for record in run.records:
        assert record.exception is not None, run.explain()
        assert "ValueError" in record.exception.summary, run.explain()
        assert "target size" in record.exception.summary, run.explain()


def test_patched_trains_one_model_on_both_ranks(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, [], tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1
    for rank in (0, 1):
        losses = json.loads((run.output / f"losses-{rank}.json").read_text())
        assert len(losses) == 2 and all(0 < loss < 2 for loss in losses)
