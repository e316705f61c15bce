"""PRT009's pruning helper and PRT015 proven by running: a DDP trainer whose own model code (in
LongCoder's shape) was written for transformers 4, on the installed transformers.

The original dies on every rank at the import of ``find_pruneable_heads_and_indices``; with
PRT009 alone, at ``self.get_extended_attention_mask``; with the output field left as it was,
building the output (transformers 5 renames the keyword to ``cache``). Patched, every rank
prunes the same head, trains through the additive mask and the output's ``past_key_values``,
and ends with the same parameters, rank 0 writing the one result file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
transformers = pytest.importorskip("transformers")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        int(transformers.__version__.split(".")[0]) < 5, reason="the failures are transformers 5's"
    ),
]

SCRIPT = SCRIPTS / "transformers4_model_code.py"


def _every_rank_died_of(source: str, workdir: Path, cause: str) -> None:
    run = launch(source, [], workdir)
    assert not run.ok
    assert len(run.records) == 2, run.explain()
    for record in run.records:
        assert record.exit_code != 0 and record.exception is not None, run.explain()
        assert cause in record.exception.summary, run.explain()


def test_patched_ranks_train_and_agree(tmp_path: Path) -> None:
    source = patched(SCRIPT.read_text())
    assert "self.get_extended_attention_mask(" not in source
    run = launch(source, [], tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes
    assert run.writers()["heads.txt"] and len(run.writers()["heads.txt"]) == 1
    # three heads, head 1 pruned: two left, the helper's set as transformers 4 returned it
    assert (run.output / "heads.txt").read_text() == "2 [1]\n"


def test_original_dies_at_the_import_on_every_rank(tmp_path: Path) -> None:
    _every_rank_died_of(
        SCRIPT.read_text(), tmp_path / "original", "cannot import name 'find_pruneable_heads"
    )


def test_without_prt015_every_rank_dies_at_the_mask(tmp_path: Path) -> None:
    codes = [rule.code for rule in all_rules() if rule.code != "PRT015"]
    source = patched(SCRIPT.read_text(), codes)
    assert "def find_pruneable_heads_and_indices" in source
    _every_rank_died_of(source, tmp_path / "no_prt015", "get_extended_attention_mask")


def test_without_the_field_rename_every_rank_dies_building_the_output(tmp_path: Path) -> None:
    source = patched(SCRIPT.read_text())
    field = "    past_key_values: Optional[Tuple[torch.FloatTensor]] = None\n"
    either = (
        '    if hasattr(ModelOutput, "past_key_values"):  # transformers 5 names it cache\n'
        "        cache: Optional[Tuple[torch.FloatTensor]] = None\n"
        "    else:\n"
        "    " + field
    )
    assert either in source
    _every_rank_died_of(
        source.replace(either, field),
        tmp_path / "no_field",
        "got an unexpected keyword argument 'cache'",
    )
