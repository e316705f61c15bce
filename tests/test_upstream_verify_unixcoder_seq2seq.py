"""Opt-in: ``ddpfix verify`` on microsoft/CodeBERT's UniXcoder code summarization and code
generation scripts (``DDPFIX_CORPUS`` names directories holding ``UniXcoder/``; skipped unset).

Both use one RoBERTa as encoder and decoder (the decoder reads the encoder's ``past_key_values``
under a ``[batch, target, source + target]`` mask) and are DataParallel-only. Summarization used
to be matched by fingerprint to CodeXGLUE's code-to-text; each now has its own target. What
verify finds, patched, under 2 gloo ranks:

* PRT012 gives the 3-D masks (the encoder's and the decoder's over the cache) the 4-D additive
  form transformers 5 takes, so every process trains, and stops in the beam search, which
  rebuilds the cache as nested tuples transformers 5 no longer reads (not a rank problem, and not
  PRT012's). Summarization's processes are seen running alone: DDP016 reports it (its live early
  stop, ``patience == 2``, would be decided by every rank from dev files they all rewrite).
  Generation's early stop, ``patience == -1``, is dead code (``patches/_counters.py``): DDP016
  converts it, the ranks join one DDP job, and rank 0 alone evaluates and meets the cache;
* with that cache handed over as a ``DynamicCache`` (a copy edited at test time), the test
  decoding runs too, through PRT012's mask over the cache: summarization's processes both write
  the same checkpoint; generation passes every check, rank 0 writing it alone.
"""

from __future__ import annotations

import shutil
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
ALONE = (
    "2 processes, torch.distributed never initialised: every process ran as rank -1 "
    "(the script does not read LOCAL_RANK)"
)
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
def test_patched_script_trains_past_the_mask_and_stops_at_the_legacy_cache(target: str) -> None:
    pytest.importorskip("torch")
    code, report = run_verify(str(find_script(TARGETS[target])), "--gpus", "2")
    assert code == 1 and report["target"] == target and report["family"] == "roberta"
    rows = _evidence(report)
    if target == GENERATION:  # converted: one DDP job, rank 0 evaluates alone
        assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
        assert rows["every rank exited 0"].startswith("rank 0 raised TypeError")
    else:
        assert rows["ranks joined"] == ALONE
    assert "raised TypeError: 'NoneType' object is not subscriptable" in rows["every rank exited 0"]
    assert rows["training health"].endswith("parameters trained as expected")
    files = [a for a in report["script_args"] if a.startswith(("--train_filename=", "--test_"))]
    assert len(files) == 2


_CACHE_HELPER = """
def _cache(context):
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (key, value) in enumerate(context):
        cache.update(key, value, layer)
    return cache

"""


def _cache_for_transformers_5(script: Path, into: Path) -> Path:
    """A copy of the script's directory whose ``model.py`` hands the decoder the beam's cache as
    transformers 5 takes it (a stand-in for a rule that does not exist); the masks are left to
    PRT012."""
    shutil.copytree(script.parent, into)
    model = into / "model.py"
    text = model.read_text(encoding="utf-8")
    text = text.replace("class Seq2Seq(", _CACHE_HELPER + "class Seq2Seq(", 1)
    text = text.replace("past_key_values=context)", "past_key_values=_cache(context))")
    text = text.replace("for x in y]", "for x in tuple(y)[:2]]")
    model.write_text(text, encoding="utf-8")
    return into / script.name


@pytest.mark.slow
def test_past_the_cache_the_processes_train_alone(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    script = _cache_for_transformers_5(find_script(TARGETS[SUMMARIZATION]), tmp_path / "code")
    code, report = run_verify(str(script), "--gpus", "2", "--target", SUMMARIZATION)
    assert code == 1
    rows = _evidence(report)
    assert rows["ranks joined"] == ALONE
    assert rows["checkpoints"].startswith(
        "checkpoint-best-bleu/pytorch_model.bin written by 2 processes"
    )
    assert rows["training health"] == "42 parameters trained as expected"


@pytest.mark.slow
def test_past_the_cache_generation_passes_as_one_ddp_job(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    script = _cache_for_transformers_5(find_script(TARGETS[GENERATION]), tmp_path / "code")
    code, report = run_verify(str(script), "--gpus", "2", "--target", GENERATION)
    rows = _evidence(report)
    assert code == 0, rows
    assert rows["ranks joined"].startswith("2 processes, ranks 0, 1, world size 2 (gloo)")
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert rows["evaluation ran"].startswith("on rank 0")
    assert rows["checkpoints"].startswith("checkpoint-best-score/pytorch_model.bin (rank 0")
