"""A fix that needs ``import datetime`` is not made where ``datetime`` names the class, proven
by running.

DDP010 gives ``init_process_group`` a ``timeout=datetime.timedelta(...)`` and declares the
module it needs. The script imports the class under that name (``from datetime import
datetime``), which rebinds ``datetime`` after any ``import datetime`` placed above it: the
rewrite failed on every rank with AttributeError (``type object 'datetime.datetime' has no
attribute 'timedelta'``; seventh unseen batch). The engine now reports such a fix instead of
making it, and the other fixes stand: patched, every rank trains one model.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.engine import fix_text
from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "datetime_class_import.py"
SETUP = '        torch.distributed.init_process_group(backend="gloo")\n'


@pytest.fixture(scope="module")
def patched_source() -> str:
    return patched(SCRIPT.read_text())


def test_the_timeout_is_reported_not_written(patched_source: str) -> None:
    assert "\nimport datetime\n" not in patched_source
    assert SETUP in patched_source
    _, findings = fix_text(SCRIPT.read_text(), all_rules())
    (ddp010,) = [f for f in findings if f.code == "DDP010"]
    assert not ddp010.fixed
    assert "`from datetime import datetime` binds datetime to something else" in ddp010.message
    assert any(f.fixed and f.code == "DDP001" for f in findings)


def test_patched_every_rank_trains_one_model(patched_source: str, tmp_path: Path) -> None:
    run = launch(patched_source, [], tmp_path / "patched")
    assert run.ok, run.explain()
    assert len(set(run.param_hashes().values())) == 1


def test_the_old_rewrite_fails_on_every_rank(patched_source: str, tmp_path: Path) -> None:
    """What DDP010 wrote before: ``import datetime`` on top, the timeout in the call."""
    source = "import datetime\n" + patched_source.replace(
        SETUP,
        '        torch.distributed.init_process_group(backend="gloo", '
        "timeout=datetime.timedelta(minutes=180))\n",
    )
    run = launch(source, [], tmp_path / "old")
    assert not run.ok
    failed = [r for r in run.records if r.exception is not None]
    assert len(failed) == 2, run.explain()
    assert all("AttributeError" in r.exception.summary for r in failed if r.exception)
