"""DDP014 asks DDP to look for unused parameters when the project's own factory builds the
model, proven by running.

The model comes from ``build_or_load_gen_model`` in the sibling ``models.py``, which puts a
pretrained encoder inside a model class of the project that never reads the encoder's pooler
(CodeT5's ``--model_type roberta``). DDP014's wrap looked for that shape in the patched file
only, so the wrap had no ``find_unused_parameters``: every rank failed at its second step
("Expected to have finished reduction in the prior iteration"). The factory's module is read
now: patched, both ranks train one model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch

from patcher.engine import fix_text
from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

PROJECT = SCRIPTS / "sibling_factory"
MODELS = {"models.py": (PROJECT / "models.py").read_text()}
UNUSED = "            find_unused_parameters=True,\n"


@pytest.fixture(scope="module")
def patched_source() -> str:
    script = PROJECT / "run_gen.py"
    output, _ = fix_text(script.read_text(), all_rules(), path=script)
    return output


def test_the_wrap_looks_for_unused_parameters(patched_source: str) -> None:
    assert "torch.nn.parallel.DistributedDataParallel(" in patched_source
    assert UNUSED in patched_source


def test_without_the_factory_module_the_wrap_stays_plain(tmp_path: Path) -> None:
    script = tmp_path / "run_gen.py"
    script.write_text((PROJECT / "run_gen.py").read_text())
    output, _ = fix_text(script.read_text(), all_rules(), path=script)
    assert "torch.nn.parallel.DistributedDataParallel(" in output
    assert "find_unused_parameters" not in output


def test_patched_both_ranks_train_one_model(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, [], tmp_path / "patched", extra_files=MODELS)
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1


def test_the_plain_wrap_fails_on_every_rank(patched_source: str, tmp_path: Path) -> None:
    source = patched_source.replace(UNUSED, "")
    assert source != patched_source
    run = launch(source, [], tmp_path / "plain", extra_files=MODELS)
    assert not run.ok
    failed = [r for r in run.records if r.exception is not None]
    assert len(failed) == 2, run.explain()
    assert all("finished reduction" in r.exception.summary for r in failed if r.exception)
