"""A wrap the rewrite makes reachable must leave the script runnable, proven by running (issue 9).

F8: ``runtime_scripts/wrapper_missing_method.py`` has a DistributedDataParallel branch it never
ran, whose training loop calls the model's own methods (``model._run_batch``), which the wrapper
does not have. Under a modern launcher its ``--local_rank`` stays -1: every process trains alone
and exits 0. Reading LOCAL_RANK (DDP001 without the post-conditions) makes the wrap live and
every rank dies on AttributeError; the rank model's wrapper post-condition withdraws DDP001 and
says why.

F2: ``runtime_scripts/dataparallel_in_evaluate.py`` shards its training data but never wraps the
model; its only DataParallel block is in evaluate(), which rank 0 alone runs. DDP014 reports
instead of wrapping there: the wrap would be a collective rank 0 reaches alone (shown by running
the script with such a wrap written in by hand), and the training model would stay
unsynchronised all the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import SCRIPTS, launch

from patcher.engine import fix_text
from patcher.registry import all_rules

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

MISSING = SCRIPTS / "wrapper_missing_method.py"
IN_EVALUATE = SCRIPTS / "dataparallel_in_evaluate.py"


def test_waking_the_wrap_is_withdrawn_with_the_missing_method_as_reason() -> None:
    output, findings = fix_text(MISSING.read_text(), all_rules())
    assert 'os.environ["LOCAL_RANK"]' not in output
    (ddp001,) = [f for f in findings if f.code == "DDP001"]
    assert not ddp001.fixed
    assert ddp001.message == (
        "read LOCAL_RANK into .local_rank after parsing (torchrun/accelerate pass it only in "
        "the environment); not rewritten: train() reads model._run_batch on the "
        "DistributedDataParallel wrapper of model, which has no such attribute: AttributeError "
        "on every rank that wraps (and `.module` would bypass the wrapper's gradient "
        "synchronisation)"
    )
    assert sorted({f.code for f in findings if f.fixed}) == [
        "DDP002",
        "DDP007",
        "DDP010",
        "PRT003",
        "PRT004",
    ]
    assert fix_text(output, all_rules())[0] == output


def test_woken_wrap_crashes_and_the_patched_script_runs(tmp_path: Path) -> None:
    source = MISSING.read_text()
    naive, _ = fix_text(source, all_rules(), checks=[])
    assert 'os.environ["LOCAL_RANK"]' in naive
    woken = launch(naive, [], tmp_path / "naive", timeout=60)
    assert not woken.outcome.timed_out
    assert [r.exit_code for r in woken.records] != [0, 0], woken.explain()
    assert "has no attribute '_run_batch'" in woken.log, woken.explain()

    output, _ = fix_text(source, all_rules())
    run = launch(output, [], tmp_path / "patched", timeout=120)
    assert not run.outcome.timed_out and run.outcome.returncode == 0, run.explain()
    assert [r.exit_code for r in run.records] == [0, 0], run.explain()
    assert run.log.count("epoch 1 accuracy") == 2  # two lone copies, each trained to the end
    assert sorted(run.param_hashes()) == ["0", "1"]


def test_ddp014_reports_instead_of_wrapping_in_evaluate() -> None:
    source = IN_EVALUATE.read_text()
    output, findings = fix_text(source, all_rules())
    assert "DistributedDataParallel(" not in output
    (ddp014,) = [f for f in findings if f.code == "DDP014"]
    assert not ddp014.fixed
    assert ddp014.message == (
        "the data are sharded across ranks but the model is never wrapped in "
        "DistributedDataParallel: every rank trains its own model; wrap it by hand (the only "
        "DataParallel blocks, in evaluate(), are not where every rank trains the model)"
    )
    assert not [f for f in findings if "not rewritten" in f.message]  # nothing blamed on it


#: The wrap the rule used to add after evaluate()'s DataParallel block (what F2 saw).
_WRAP_IN_EVALUATE = """        model = torch.nn.DataParallel(model)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
"""


def test_a_wrap_in_evaluate_hangs_and_the_patched_script_runs(tmp_path: Path) -> None:
    output, _ = fix_text(IN_EVALUATE.read_text(), all_rules())
    anchor = "        model = torch.nn.DataParallel(model)\n"
    assert output.count(anchor) == 1
    wrapped = output.replace(anchor, _WRAP_IN_EVALUATE)
    hung = launch(wrapped, [], tmp_path / "wrapped", timeout=60)
    assert hung.outcome.timed_out or not hung.ok, hung.explain()

    run = launch(output, [], tmp_path / "patched", timeout=120)
    assert run.ok, run.explain()
    assert run.log.count("step 8 accuracy") == 1  # rank 0 alone evaluates, to the last step
    assert sorted(run.param_hashes()) == ["0", "1"]
