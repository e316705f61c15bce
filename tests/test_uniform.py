"""Which conditions DDP013 takes as the same on every rank (``patches/_uniform.py``)."""

from __future__ import annotations

import libcst as cst
import pytest

from patcher.tree import Tree
from patches._ranks import model
from patches._uniform import Uniformity

SCRIPT = """
import argparse
import json

from torch.utils.data import DataLoader, DistributedSampler


def train(args, model, dataset, limit):
    loader = DataLoader(dataset, sampler=DistributedSampler(dataset))
    global_step, nb_tr_steps = 0, 0
    rank_step = 0
    best = 0
    resumed = 0
    seen = 0
    if args.resume:
        resumed = load_step(args.output_dir)
    outputs = None
    args.eval_steps = args.save_steps * 2
    args.seen = len(loader)
    if args.local_rank in [-1, 0]:
        args.patience = args.max_steps // 2
    for epoch in range(int(args.num_train_epochs)):
        for step, batch in enumerate(loader, 1):
            outputs = model(batch)
            outputs.loss.backward()
            nb_tr_steps += 1
            if nb_tr_steps % args.gradient_accumulation_steps == 0:
                global_step += 1
            if args.local_rank in [-1, 0]:
                rank_step += 1
            for item in batch:
                best = max(best, item)
                seen += 1
            probe(CONDITION)


def main():
    parser = argparse.ArgumentParser()
    args = parser.parse_args()
    train(args, *build(args))
"""


def _why(condition: str, script: str = SCRIPT) -> str | None:
    text = script.replace("CONDITION", condition)
    tree = Tree(cst.parse_module(text), text)
    probe = next(c for c in tree.nodes(cst.Call) if getattr(c.func, "value", None) == "probe")
    return Uniformity(model(tree)).why_not(probe.args[0].value)


def _edited(old: str, new: str) -> str:
    assert old in SCRIPT
    return SCRIPT.replace(old, new)


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
        # 1d: counted over a rank's own data, or a limit only rank 0 sets
        ("seen >= args.max_examples", "seen runs in a loop over batch, which may run"),
        ("global_step == args.patience", "args.patience is updated on some ranks only"),
    ],
)
def test_what_a_rank_computes_is_not(condition: str, why: str) -> None:
    found = _why(condition)
    assert found is not None and found.startswith(why), found


def test_a_counter_updated_under_a_rank_test_is_not() -> None:
    script = SCRIPT.replace("rank_step", "counted")
    assert _why("counted == 3", script) == "counted is updated on some ranks only"


@pytest.mark.parametrize(
    ("old", "new", "condition", "why"),
    [
        # 1b: enumerate's start is judged
        (
            "enumerate(loader, 1)",
            "enumerate(loader, dist.get_rank())",
            "step == 3",
            "step counts from a start that may differ (dist.get_rank() is computed",
        ),
        # 1c: a data-dependent continue or break before the increment
        (
            "            nb_tr_steps += 1\n",
            "            if batch is None:\n"
            "                continue\n"
            "            nb_tr_steps += 1\n",
            "nb_tr_steps == 3",
            "ranks may skip nb_tr_steps at different times",
        ),
        (
            "            outputs = model(batch)\n",
            "            if len(batch) < 8:\n"
            "                break\n"
            "            outputs = model(batch)\n",
            "global_step == 3",
            "global_step is updated under a test that may differ between ranks (ranks may "
            "leave the loop around nb_tr_steps",
        ),
        # ... or decided by an exception
        (
            "            outputs.loss.backward()\n",
            "            outputs.loss.backward()\n"
            "            try:\n"
            "                check(outputs)\n"
            "            except ValueError:\n"
            "                break\n",
            "nb_tr_steps == 3",
            "ranks may leave the loop around nb_tr_steps at different times (`break` under a "
            "test that may differ: it runs in an except clause",
        ),
        # ... or a counter whose update an exception decides: in an except clause
        (
            "            nb_tr_steps += 1\n",
            "            nb_tr_steps += 1\n"
            "            try:\n"
            "                check(outputs)\n"
            "            except ValueError:\n"
            "                nb_tr_steps += 1\n",
            "nb_tr_steps == 3",
            "nb_tr_steps is updated in an except clause: whether it runs is decided by an "
            "exception",
        ),
        # ... in a try body, after a call that may raise
        (
            "            nb_tr_steps += 1\n",
            "            try:\n"
            "                log(outputs.loss.item())\n"
            "                nb_tr_steps += 1\n"
            "            except ValueError:\n"
            "                pass\n",
            "nb_tr_steps == 3",
            "nb_tr_steps is updated in a try body: whether it runs is decided by an exception",
        ),
        # ... or in its else
        (
            "            nb_tr_steps += 1\n",
            "            try:\n"
            "                check(outputs)\n"
            "            except ValueError:\n"
            "                pass\n"
            "            else:\n"
            "                nb_tr_steps += 1\n",
            "nb_tr_steps == 3",
            "nb_tr_steps is updated in the else of a try: whether it runs is decided by an",
        ),
        # 1d: a nested function rebinds the counter
        (
            "    for epoch in",
            "    def bump():\n        nonlocal global_step\n        global_step += 1\n\n"
            "    for epoch in",
            "global_step == 3",
            "global_step is rebound in a nested function",
        ),
        # 1d: attributes written by computed name
        (
            "    outputs = None\n",
            "    outputs = None\n    for k, v in json.load(open(path)).items():\n"
            "        setattr(args, k, v)\n",
            "args.train_steps == 3",
            "args.train_steps is assigned where its value cannot be followed",
        ),
        (
            "    outputs = None\n",
            "    outputs = None\n    vars(args).update(json.load(open(path)))\n",
            "args.train_steps == 3",
            "args.train_steps is assigned where its value cannot be followed",
        ),
        # 1d: a conventional name rebound from something else
        (
            "    outputs = None\n",
            "    outputs = None\n    args = load_config(dist.get_rank())\n",
            "args.train_steps == 3",
            "args.train_steps is not read from the command line (args is assigned something",
        ),
        (
            "    outputs = None\n",
            "    outputs = None\n    opt = torch.optim.SGD(model.parameters(), lr=0.1)\n",
            "global_step == opt.defaults",
            "opt.defaults is not read from the command line (opt is assigned something",
        ),
        # a parameter that a caller passes something other than the command line
        (
            "train(args, *build(args))",
            "train(load_config(), *build(args))",
            "args.train_steps == 3",
            "args.train_steps is not read from the command line (args is a parameter that",
        ),
        # no backward in the loop: not a training loop, its index is data's
        (
            "            outputs.loss.backward()\n",
            "",
            "step == 3",
            "step counts a loop over data that may run a different number of times",
        ),
        # no DistributedSampler: runs of the training loop may differ in length per epoch
        (
            "sampler=DistributedSampler(dataset)",
            "shuffle=True",
            "step == 3",
            "step runs between runs of a training loop, which only a DistributedSampler",
        ),
        # uneven inputs: no training loop pins anything
        (
            "            outputs = model(batch)\n",
            "            with model.join():\n"
            "                pass\n"
            "            outputs = model(batch)\n",
            "global_step == 3",
            "global_step is updated under a test that may differ between ranks (nb_tr_steps "
            "runs in a loop over enumerate(loader, 1)",
        ),
    ],
)
def test_holes_the_review_found_are_not_uniform(
    old: str, new: str, condition: str, why: str
) -> None:
    found = _why(condition, _edited(old, new))
    assert found is not None and found.startswith(why), found


def test_a_counter_needs_no_sampler_when_it_counts_only_training_iterations() -> None:
    """Bound once before every loop, counted in the training loop: its k-th iteration meets
    the k-th on every other rank, whatever the epochs' lengths."""
    script = _edited("sampler=DistributedSampler(dataset)", "shuffle=True").replace(
        "            if nb_tr_steps % args.gradient_accumulation_steps == 0:\n"
        "                global_step += 1\n",
        "            global_step += 1\n",
    )
    assert _why("global_step == args.train_steps", script) is None
    assert _why("step == 3", script) is not None  # the index restarts every epoch


def test_a_counter_updated_in_a_finally_clause_is_uniform() -> None:
    """A ``finally`` runs whatever the ``try`` raised: the count stays the same on every rank."""
    script = _edited(
        "            nb_tr_steps += 1\n",
        "            try:\n"
        "                log(outputs.loss.item())\n"
        "            finally:\n"
        "                nb_tr_steps += 1\n",
    )
    assert _why("nb_tr_steps == 3", script) is None
    assert _why("nb_tr_steps == 3") is None
