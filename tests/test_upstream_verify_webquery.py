"""Opt-in: ``ddpfix verify`` on CodeXGLUE NL-code-search-WebQuery (run_classifier.py), its data.

``DDPFIX_CORPUS`` names a CodeXGLUE checkout; skipped when unset. Upstream's ``main`` holds every
rank but 0 at ``torch.distributed.barrier()`` before it reads the training file ("the others will
use the cache"), but the matching rank-0 barrier after the read is missing: with the rank read
from LOCAL_RANK, rank 0 would go on into DistributedDataParallel's constructor and wait for rank
1, which waits at the barrier (a hang). No rule pairs such a barrier yet, so DDP001 is withdrawn
and says why: the processes run as lone copies, as they do unpatched under a modern launcher.
Verify then stops earlier still: upstream's ``models.py`` hard-codes RoBERTa-base's 768-wide
head, which the tiny model does not have.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.webquery import webquery

NAME = "codexglue-nl-code-search-webquery"
RELATIVE = "Text-Code/NL-code-search-WebQuery/code/run_classifier.py"


def test_files_are_json_arrays_of_labelled_query_code_pairs(tmp_path: Path) -> None:
    keys = webquery(tmp_path)
    train = json.loads((tmp_path / "train.json").read_text())
    assert isinstance(train, list) and len(train) == 16
    assert {tuple(sorted(row)) for row in train} == {("code", "doc", "idx", "label")}
    assert {row["label"] for row in train} == {0, 1}
    assert keys == [row["idx"] for row in json.loads((tmp_path / "test.json").read_text())]
    assert len(set(keys)) == len(keys) == 8


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
def test_identified_by_sha256() -> None:
    match, _ = identify(find_script(RELATIVE), load_targets())
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
@pytest.mark.slow
def test_reading_local_rank_is_withdrawn_for_the_unpaired_barrier() -> None:
    from patcher.engine import fix_text
    from patcher.registry import all_rules
    from patcher.source import read_source

    _, findings = fix_text(read_source(find_script(RELATIVE)).text, all_rules())
    (ddp001,) = [f for f in findings if f.code == "DDP001"]
    assert not ddp001.fixed
    assert "not rewritten: torch.distributed.barrier is a collective and only ranks other" in (
        ddp001.message
    )


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
@pytest.mark.slow
def test_verify_stops_at_the_hard_coded_head_width() -> None:
    pytest.importorskip("torch")
    code, report = run_verify(find_script(RELATIVE).as_posix(), "--timeout", "90")
    assert code == 1 and report["target"] == NAME
    assert "mat1 and mat2 shapes cannot be multiplied" in report["verdict"]
