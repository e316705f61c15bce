"""The transformers porting rules leave a project that ships its own transformers alone (eighth
batch A2: SLK-NER vendors transformers 2.4.1 next to ``run_ner.py``; PRT009 rewrote
``transformers.modeling_bert`` to ``transformers.models.bert.modeling_bert``, which that copy
does not have: ModuleNotFoundError on every rank)."""

from __future__ import annotations

from pathlib import Path

from patcher.engine import fix_text
from patcher.registry import all_rules

SCRIPT = """import torch
from transformers import AdamW
from transformers.modeling_bert import BertModel


def build(config):
    model = BertModel(config)
    return model, AdamW(model.parameters(), lr=1e-5)
"""
PORTING = {"PRT001", "PRT009"}


def _codes(path: Path) -> set[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SCRIPT)
    output, findings = fix_text(SCRIPT, all_rules(), path=path)
    codes = {f.code for f in findings}
    assert (output == SCRIPT) == (not codes & PORTING)
    return codes


def _vendor(root: Path) -> None:
    (root / "transformers").mkdir(parents=True)
    (root / "transformers" / "__init__.py").write_text('__version__ = "2.4.1"\n')


def test_without_a_copy_the_imports_are_ported(tmp_path: Path) -> None:
    assert _codes(tmp_path / "run_ner.py") >= PORTING


def test_a_script_next_to_its_copy_is_left_alone(tmp_path: Path) -> None:
    _vendor(tmp_path)
    assert not PORTING & _codes(tmp_path / "run_ner.py")


def test_a_module_two_levels_below_the_copy_is_left_alone(tmp_path: Path) -> None:
    _vendor(tmp_path)
    for package in (tmp_path / "model", tmp_path / "model" / "modules"):
        package.mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text("")
    assert not PORTING & _codes(tmp_path / "model" / "modules" / "bert_for_ner.py")


def test_a_script_in_a_directory_below_the_copy_imports_the_installed_one(tmp_path: Path) -> None:
    """``python examples/run.py`` puts ``examples/`` first on sys.path, not its parent."""
    _vendor(tmp_path)
    assert _codes(tmp_path / "examples" / "run.py") >= PORTING


def test_the_copy_s_own_files_are_left_alone(tmp_path: Path) -> None:
    _vendor(tmp_path)
    assert not PORTING & _codes(tmp_path / "transformers" / "optimization.py")
