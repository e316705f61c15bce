"""Which conditions DDP013 takes as the same on every rank (``patches/_uniform.py``)."""

from __future__ import annotations

import libcst as cst
import pytest

from patcher.tree import Tree
from patches._ranks import model
from patches._uniform import Uniformity

SCRIPT = """
def train(args, model, loader, limit):
    global_step, nb_tr_steps = 0, 0
    rank_step = 0
    best = 0
    resumed = 0
    if args.resume:
        resumed = load_step(args.output_dir)
    outputs = None
    args.eval_steps = args.save_steps * 2
    args.seen = len(loader)
    for epoch in range(int(args.num_train_epochs)):
        for step, batch in enumerate(loader, 1):
            outputs = model(batch)
            nb_tr_steps += 1
            if nb_tr_steps % args.gradient_accumulation_steps == 0:
                global_step += 1
            if args.local_rank in [-1, 0]:
                rank_step += 1
            for item in batch:
                best = max(best, item)
            probe(CONDITION)
"""


def _tree(script: str) -> Tree:
    return Tree(cst.parse_module(script), script)


def _why(condition: str) -> str | None:
    tree = _tree(SCRIPT.replace("CONDITION", condition))
    probe = next(c for c in tree.nodes(cst.Call) if getattr(c.func, "value", None) == "probe")
    return Uniformity(model(tree)).why_not(probe.args[0].value)


@pytest.mark.parametrize(
    "condition",
    [
        "global_step == args.train_steps",
        "global_step >= args.max_steps and args.max_steps > 0",
        "global_step % args.eval_steps == 0 and nb_tr_steps % args.accumulate == 0",
        "epoch + 1 == int(args.num_train_epochs)",
        "step == 1",
        "not args.do_eval",
        "True",
    ],
)
def test_counters_and_command_line_are_uniform(condition: str) -> None:
    assert _why(condition) is None


@pytest.mark.parametrize(
    ("condition", "why"),
    [
        ("outputs.loss < 0.1", "outputs.loss is not read from the command line"),
        ("outputs.item() < 0.1", "outputs.item() is computed by each rank"),
        ("rank_step == 3", "rank_step is a per-process value"),
        ("resumed == 3", "resumed is assigned something other than an int literal"),
        ("best > 3", "best is assigned something other than an int literal"),
        ("limit == 3", "limit is a parameter (its value comes from the caller)"),
        ("item == 3", "item is a loop variable over data"),
        ("args.local_rank == 0", "args.local_rank is a per-process value"),
        ("args.seen == 3", "args.seen is assigned a value that may differ (len(loader) is"),
        ("time.time() > args.deadline", "time.time() is computed by each rank"),
        ("batch[0] == 1", "batch[0] may differ between ranks"),
    ],
)
def test_what_a_rank_computes_is_not(condition: str, why: str) -> None:
    found = _why(condition)
    assert found is not None and found.startswith(why), found


def test_a_counter_updated_under_a_rank_test_is_not() -> None:
    script = SCRIPT.replace("rank_step", "counted")
    tree = _tree(script.replace("CONDITION", "counted == 3"))
    probe = next(c for c in tree.nodes(cst.Call) if getattr(c.func, "value", None) == "probe")
    assert (
        Uniformity(model(tree)).why_not(probe.args[0].value)
        == "counted is updated on some ranks only"
    )
