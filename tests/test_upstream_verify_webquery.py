"""Opt-in: ``ddpfix verify`` on CodeXGLUE NL-code-search-WebQuery (run_classifier.py), its data.

``DDPFIX_CORPUS`` names a CodeXGLUE checkout; skipped when unset. What verify finds today,
patched, under 2 ranks: a hang, with its cause in the stacks. Upstream's ``main`` holds every
rank but 0 at ``torch.distributed.barrier()`` before it reads the training file ("the others will
use the cache"), but the matching rank-0 barrier after the read is missing: rank 0 goes on into
DistributedDataParallel's constructor, whose parameter check waits for rank 1, which waits at the
barrier. No rule pairs such a barrier yet, so the verdict names the hang and where each rank is.
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
def test_patched_hangs_at_the_unpaired_data_barrier_and_says_where() -> None:
    pytest.importorskip("torch")
    code, report = run_verify(find_script(RELATIVE).as_posix(), "--timeout", "90")
    assert code == 1 and report["target"] == NAME
    assert report["verdict"].startswith("FAIL: no hang: still running after 90 s, killed")
    stacks = "\n".join(report["stacks"].values())
    assert "in barrier" in stacks and "_verify_param_shape_across_processes" in stacks
