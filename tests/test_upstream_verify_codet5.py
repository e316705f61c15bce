"""Opt-in: ``ddpfix verify`` on salesforce/CodeT5's ``run_gen.py`` (summarize) and ``run_clone.py``.

``DDPFIX_CORPUS`` names directories holding the ``CodeT5`` directory of a checkout (the one with
run_gen.py, configs.py, evaluator/); skipped when unset. The scripts import ``SummaryWriter`` and
use it, so the deep runs need ``tensorboard`` importable; and ``evaluator/CodeBLEU`` imports
``CodeT5.evaluator...``, so the directory above ``CodeT5`` goes on PYTHONPATH, as the upstream
launcher (sh/exp_with_args.sh) does.

What verify reaches on today's stack (torch >= 2.6, transformers 5):

* original: every process stops at ``from transformers import AdamW`` (or at the tensorboard
  import without tensorboard);
* patched (``ddpfix apply`` on the whole directory): both ranks join over gloo and train one
  model (DDP014 wraps it), ``tb_writer`` is used only where rank 0 created it (DDP015/DDP008),
  run_gen's in-training evaluation (its prediction files written and read back, its checkpoints)
  runs on rank 0 alone with the unwrapped model, which decides the early stop and broadcasts it
  to every rank (DDP011), the pickled caches reload (PRT011): every check passes;
* one process: the same, without a process group.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from corpus_runs import ROOTS, run_verify

pytest.importorskip("torch")
pytestmark = [
    pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a directory holding CodeT5/"),
    pytest.mark.slow,
]
HAVE_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
needs_tensorboard = pytest.mark.skipif(
    not HAVE_TENSORBOARD, reason="the CodeT5 scripts use SummaryWriter: install tensorboard"
)

TARGETS = {"codet5-run-gen-summarize": "run_gen.py", "codet5-run-clone": "run_clone.py"}


def _script(name: str) -> Path:
    for root in ROOTS:
        for directory in (root / "CodeT5", root):
            if (directory / name).is_file() and (directory / "configs.py").is_file():
                return directory / name
    pytest.skip(f"CodeT5/{name} is not under DDPFIX_CORPUS")


def _verify(script: Path, *args: str, **env: str) -> tuple[int, dict]:
    above = str(script.parent.parent)  # `import CodeT5.evaluator...` resolves from here
    path = os.pathsep.join(filter(None, [above, os.environ.get("PYTHONPATH")]))
    return run_verify(str(script), *args, env={"PYTHONPATH": path, **env})


def _rows(report: dict) -> dict[str, dict]:
    return {row["check"]: row for row in report["checks"]}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_identified_by_sha256(target: str) -> None:
    from patcher.verify.targets import identify, load_targets

    match, _ = identify(_script(TARGETS[target]), load_targets())
    assert match is not None and match.target.name == target and match.how == "sha256"


@pytest.mark.skipif(HAVE_TENSORBOARD, reason="shows the run without tensorboard installed")
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_without_tensorboard_every_rank_stops_at_its_import(target: str) -> None:
    code, report = _verify(_script(TARGETS[target]), "--target", target)
    assert code == 1
    assert report["verdict"].startswith(
        "FAIL: ranks joined: rank 0 failed at import: No module named 'tensorboard'"
    ), report["verdict"]


@needs_tensorboard
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_original_stops_at_the_adamw_import(target: str) -> None:
    code, report = _verify(_script(TARGETS[target]), "--target", target, "--original")
    assert code == 1
    assert report["verdict"].startswith(
        "FAIL: ranks joined: rank 0 failed at import: cannot import name 'AdamW'"
    ), report["verdict"]


@needs_tensorboard
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_patched_two_ranks_train_one_model_and_pass(target: str) -> None:
    code, report = _verify(_script(TARGETS[target]), "--target", target)
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["family"] == "t5" and report["fixes_applied"] > 0
    rows = _rows(report)
    assert "world size 2 (gloo)" in rows["ranks joined"]["evidence"]
    assert rows["replicas in sync"]["evidence"].startswith("ranks 0, 1 hold identical parameters")
    assert "(rank 0, loads with weights_only=True)" in rows["checkpoints"]["evidence"]
    assert report["health"] == []


@needs_tensorboard
@pytest.mark.parametrize("target", sorted(TARGETS))
def test_patched_one_process_writes_every_result_in_order(target: str) -> None:
    code, report = _verify(_script(TARGETS[target]), "--target", target, "--gpus", "1")
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    results = _rows(report)["results complete"]["evidence"]
    if target == "codet5-run-clone":
        assert results.startswith("predictions.txt: 12 of 12 lines, in order")
    else:
        assert "test_best-bleu.output: 8 of 8 lines, in order" in results
        assert "test_best-bleu.gold: 8 of 8 lines, in order" in results
