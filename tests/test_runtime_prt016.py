"""PRT016 proven by running: a DDP trainer in UniXcoder's seq2seq shape on the installed
transformers, under 2 gloo ranks.

Patched, both ranks train through the encoder's cache and end with the same parameters, and
rank 0, the one writer of the predictions, decodes every test example over the rebuilt context
exactly as a pass over source and prefix without a cache does. With every rule but PRT016,
training runs (PRT012's masks) and rank 0 dies in the decoding, iterating the DynamicCache
transformers 5 returned.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ranked import SCRIPTS, launch, patched

from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

SCRIPT = SCRIPTS / "unixcoder_beam_cache.py"


def test_patched_ranks_train_agree_and_decode_as_without_a_cache(tmp_path: Path) -> None:
    source = patched(SCRIPT.read_text())
    assert "past_key_values=legacy_cache_like(context, encoder_output.past_key_values)" in source
    run = launch(source, [], tmp_path / "patched")
    assert run.ok, run.explain()
    hashes = run.param_hashes()
    assert len(hashes) == 2 and len(set(hashes.values())) == 1, hashes
    assert len(run.writers()["predictions.jsonl"]) == 1
    lines = (run.output / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 6
    for line in lines:
        prediction = json.loads(line)
        assert len(prediction["cached"]) == 5 and prediction["cached"] == prediction["full"]


def test_without_prt016_rank_zero_dies_in_the_decoding(tmp_path: Path) -> None:
    if int(transformers.__version__.split(".")[0]) < 5:
        pytest.skip("transformers 4 reads the nested lists")
    codes = [rule.code for rule in all_rules() if rule.code != "PRT016"]
    run = launch(patched(SCRIPT.read_text(), codes), [], tmp_path / "no_prt016")
    assert not run.ok
    assert len(run.records) == 2, run.explain()
    failed = [r for r in run.records if r.exit_code != 0]
    assert [r.env_rank for r in failed] == [0], run.explain()
    exception = failed[0].exception
    assert exception is not None and "NoneType" in exception.summary, run.explain()
    assert not (run.output / "predictions.jsonl").exists()
