"""Opt-in: ``ddpfix verify`` on microsoft/CodeBERT's UniXcoder code summarization and code
generation scripts (``DDPFIX_CORPUS`` names directories holding ``UniXcoder/``; skipped unset).

Both use one RoBERTa as encoder and decoder (the decoder reads the encoder's ``past_key_values``
under a ``[batch, target, source + target]`` mask) and are DataParallel-only. Summarization used
to be matched by fingerprint to CodeXGLUE's code-to-text; each now has its own target. Patched,
under 2 gloo ranks, both pass every check as one DDP job:

* PRT012 gives the 3-D masks (the encoder's and the decoder's over the cache) the 4-D additive
  form transformers 5 takes, and PRT016 hands the beam search's cache, rebuilt as nested tuples,
  to the decoder as a ``DynamicCache``;
* DDP016 converts both. Generation's early stop, ``patience == -1``, is dead code
  (``patches/_counters.py``) and DDP011 runs its dev evaluation on rank 0. Summarization's,
  ``patience == 2``, is live and decided from dev files the evaluation writes and reads back: the
  evaluation runs on rank 0 and its decision is broadcast to every rank
  (``patches/_early_stop.py``), which used to be reported (its processes then ran alone).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import identify, load_targets

BASE = "UniXcoder/downstream-tasks"
SUMMARIZATION = "codebert-unixcoder-code-summarization"
GENERATION = "codebert-unixcoder-code-generation"
TARGETS = {
    SUMMARIZATION: f"{BASE}/code-summarization/run.py",
    GENERATION: f"{BASE}/code-generation/run.py",
}
pytestmark = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeBERT checkout")


def _evidence(report: dict) -> dict[str, str]:
    return {row["check"]: row["evidence"] for row in report["checks"]}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_identified_by_sha256_and_a_fork_by_its_fingerprint(target: str, tmp_path: Path) -> None:
    script = find_script(TARGETS[target])
    targets = load_targets()
    match, _ = identify(script, targets)
    assert match is not None and (match.target.name, match.how) == (target, "sha256")
    fork = tmp_path / "run.py"
    fork.write_text(script.read_text(encoding="utf-8") + "\n# a fork\n", encoding="utf-8")
    match, _ = identify(fork, targets)
    assert match is not None and (match.target.name, match.how) == (target, "fingerprint")


@pytest.mark.slow
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_patched_script_passes_as_one_ddp_job(target: str) -> None:
    pytest.importorskip("torch")
    code, report = run_verify(str(find_script(TARGETS[target])), "--gpus", "2")
    rows = _evidence(report)
    assert code == 0 and report["target"] == target and report["family"] == "roberta", rows
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["evaluation ran"].startswith("on rank 0")
    best = "checkpoint-best-bleu" if target == SUMMARIZATION else "checkpoint-best-score"
    assert rows["checkpoints"].startswith(f"{best}/pytorch_model.bin (rank 0")
    assert rows["training health"].endswith("parameters trained as expected")
    files = [a for a in report["script_args"] if a.startswith(("--train_filename=", "--test_"))]
    assert len(files) == 2
