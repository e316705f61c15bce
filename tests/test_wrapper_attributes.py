"""The rank model's wrapper post-condition: a name holding a DistributedDataParallel wrapper is
only asked for what the wrapper has (issue 9, unseen10 F8)."""

from __future__ import annotations

import textwrap

import libcst as cst

from patcher.tree import Tree
from patches._ranks import WRAPPER_API, postcondition, violations

LIVE = """
import os
import torch

def train(args, model, loader):
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    for batch in loader:
        loss = model._loss(model(batch))
        loss.backward()
    evaluate(model, loader)

def evaluate(net, loader):
    net.eval()
    return [net.predict(b) for b in loader]

def main(parser):
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()
    args.local_rank = int(os.environ.get("LOCAL_RANK", -1))
"""


def _tree(code: str) -> Tree:
    text = textwrap.dedent(code)
    return Tree(cst.parse_module(text), text)


def test_reads_the_wrapper_lacks_are_violations_in_its_function_and_callees() -> None:
    found = violations(_tree(LIVE), ["wrapper"])
    assert {key: v.message for key, v in found.items()} == {
        ("wrapper", "train", "model._loss"): (
            "train() reads model._loss on the DistributedDataParallel wrapper of model, which "
            "has no such attribute: AttributeError on every rank that wraps (and `.module` "
            "would bypass the wrapper's gradient synchronisation)"
        ),
        ("wrapper", "evaluate", "net.predict"): (
            "evaluate() reads net.predict on the DistributedDataParallel wrapper of model, "
            "which has no such attribute: AttributeError on every rank that wraps (and "
            "`.module` would bypass the wrapper's gradient synchronisation)"
        ),
    }


def test_a_wrap_no_launched_rank_reaches_is_no_violation() -> None:
    dormant = LIVE.replace('    args.local_rank = int(os.environ.get("LOCAL_RANK", -1))\n', "")
    assert [key for key in postcondition(_tree(dormant)) if key[0] == "wrapper"] == []  # type: ignore[index]
    assert [key for key in postcondition(_tree(LIVE)) if key[0] == "wrapper"]  # type: ignore[index]


def test_the_module_interface_guards_and_rebinding_are_no_violation() -> None:
    code = """
    import os
    import torch

    def train(args, model, loader):
        if args.local_rank != -1:
            model = torch.nn.parallel.DistributedDataParallel(model)
        model.train()
        for batch in loader:
            model(batch).backward()
        model.zero_grad()
        state = model.state_dict()
        model.tag = 1
        if hasattr(model, "module"):
            config = model.module.config
        else:
            config = model.config
        model = model.module if hasattr(model, "module") else model
        model.save_pretrained(args.output_dir)

    def main(parser):
        parser.add_argument("--local_rank", type=int, default=-1)
        args = parser.parse_args()
        args.local_rank = int(os.environ.get("LOCAL_RANK", -1))
    """
    assert violations(_tree(code), ["wrapper"]) == {}


def test_the_interface_is_what_torch_answers() -> None:
    assert {"module", "forward", "parameters", "state_dict", "no_sync", "train"} <= WRAPPER_API
    assert not {"config", "generate", "save_pretrained", "_run_batch"} & WRAPPER_API
