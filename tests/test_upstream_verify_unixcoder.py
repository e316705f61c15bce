"""Opt-in: ``ddpfix verify`` on microsoft/CodeBERT's UniXcoder BCB clone detection, code search
and code completion scripts.

``DDPFIX_CORPUS`` names directories holding ``UniXcoder/`` (a CodeBERT checkout); skipped when
unset. What verify finds today, patched, under 2 gloo ranks:

* BCB clone detection (DataParallel-only upstream; DDP016 converts it): one DDP model, every
  check passes, rank 0 writes ``checkpoint-best-f1``;
* code search: its loss scores queries against the codes of their own batch (in-batch
  negatives); DDP016 converts it with the candidates gathered across processes, so the two DDP
  processes train one model on the global batch's negatives;
* code completion: upstream's ``--local_rank`` branch wraps the model in apex DDP without ever
  setting up a process group (dead code under ``python run.py``). DDP019 sets the group up
  (gloo on the CPU) before ``args.device = device``, under the wrap's own test; DDP001 then
  reads ``LOCAL_RANK``, PRT006 falls back to torch's DDP, DDP011/DDP004 run the dev evaluation
  and the prediction on rank 0 with the unwrapped model, and PRT012/PRT016 carry the decoder's
  masks and beam-search cache to transformers 5: every check passes.
"""

from __future__ import annotations

import importlib.util

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets

BASE = "UniXcoder/downstream-tasks"
NAME_COMPLETION = "codebert-unixcoder-code-completion"
TARGETS = {
    "codebert-unixcoder-bcb": f"{BASE}/clone-detection/BCB/run.py",
    "codebert-unixcoder-code-search": f"{BASE}/code-search/run.py",
    "codebert-unixcoder-code-completion": f"{BASE}/code-completion/run.py",
}
pytestmark = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")


def _verify(target: str) -> tuple[int, dict]:
    pytest.importorskip("torch")
    code, report = run_verify(find_script(TARGETS[target]).as_posix())
    assert report["target"] == target and report["family"] == "roberta"
    return code, report


def _rows(report: dict) -> dict[str, str]:
    return {row["check"]: row["evidence"] for row in report["checks"]}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_identified_by_sha256(target: str) -> None:
    match, _ = identify(find_script(TARGETS[target]), load_targets())
    assert match is not None and (match.target.name, match.how) == (target, "sha256")


@pytest.mark.slow
def test_bcb_patched_two_ranks_train_one_model_and_pass() -> None:
    code, report = _verify("codebert-unixcoder-bcb")
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    rows = _rows(report)
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["checkpoints"] == (
        "checkpoint-best-f1/model.bin (rank 0, loads with weights_only=True)"
    )
    assert report["health"] == []


@pytest.mark.slow
def test_code_search_with_gathered_negatives_trains_one_model_and_passes() -> None:
    code, report = _verify("codebert-unixcoder-code-search")
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("fuzzywuzzy") is None, reason="imports fuzzywuzzy")
def test_code_completion_apex_branch_gets_a_process_group_and_passes() -> None:
    """DDP019 gives the apex branch its process group, so DDP001's read of LOCAL_RANK stands
    (it reported before: 'Default process group has not been initialized'); the two ranks train
    one model and rank 0 alone evaluates and writes predictions.txt."""
    from patcher.engine import fix_text
    from patcher.registry import all_rules
    from patcher.source import read_source

    _, findings = fix_text(read_source(find_script(TARGETS[NAME_COMPLETION])).text, all_rules())
    assert [f.fixed for f in findings if f.code == "DDP001"] == [True]
    assert [f.fixed for f in findings if f.code == "DDP019"] == [True, True]
    code, report = _verify(NAME_COMPLETION)
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    rows = _rows(report)
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["evaluation ran"] == "on rank 0 (2x)"
    assert rows["training health"].endswith("parameters trained as expected")
