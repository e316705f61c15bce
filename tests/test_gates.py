"""Which processes pass a gate: the three-valued reading the rules rely on."""

from __future__ import annotations

import libcst as cst
import pytest

from patches._gates import OTHER, RANK0, SINGLE, calls_collectives, truth
from patches._syntax import callee_name, module_functions

T, F, U = True, False, None


@pytest.mark.parametrize(
    ("test", "single", "rank0", "other"),
    [
        ("args.local_rank == -1", T, F, F),
        ("-1 == args.local_rank", T, F, F),
        ("args.local_rank in [-1, 0]", T, T, F),
        ("args.local_rank not in [-1, 0]", F, F, T),
        ("args.local_rank != -1", F, T, T),
        ("args.local_rank == 0", F, T, F),
        ("args.local_rank == 1", F, F, U),
        ("args.local_rank == -1 and args.evaluate_during_training", U, F, F),
        ("args.local_rank == -1 or args.no_cuda", T, U, U),
        ("args.do_eval and (args.local_rank == -1 or torch.distributed.get_rank() == 0)", U, U, F),
        ("not args.local_rank in [-1, 0]", F, F, T),
        ("args.save_steps > 0", U, U, U),
        ("self.args.local_rank in (-1, 0) and step % 10 == 0", U, U, F),
        ("dist.get_rank() != 0", U, F, T),
    ],
)
def test_truth(test: str, single, rank0, other) -> None:
    node = cst.parse_expression(test)
    assert (truth(node, SINGLE), truth(node, RANK0), truth(node, OTHER)) == (single, rank0, other)


@pytest.mark.parametrize(
    ("test", "known", "rank0"),
    [
        ("args.local_rank == 0 and not evaluate", {"evaluate": True}, F),
        ("args.local_rank == 0 and not evaluate", {"evaluate": False}, T),
        ("args.local_rank == 0 and not evaluate", {}, U),
        ("args.local_rank not in [-1, 0] and not evaluate", {}, F),
        ("use_cache or args.local_rank == 0", {"use_cache": False}, T),
        ("True", {}, T),
    ],
)
def test_truth_with_known_flags(test: str, known: dict[str, bool], rank0) -> None:
    assert truth(cst.parse_expression(test), RANK0, known) == rank0


SHARED = (
    "import torch.distributed as dist\n"
    "def build(args, split, evaluate=False):\n"
    "    if args.local_rank not in [-1, 0] and not evaluate:\n"
    "        dist.barrier()\n"
    "    data = load(split)\n"
    "    if args.local_rank == 0 and not evaluate:\n"
    "        dist.barrier()\n"
    "    return data\n"
)


def _joins(module: str, call: str) -> bool:
    tree = cst.parse_module(SHARED + module)
    functions = module_functions(tree)
    node = cst.parse_expression(call)
    assert isinstance(node, cst.Call)
    name = callee_name(node)
    assert name is not None
    target = functions[name]
    return calls_collectives(target, functions, kind=RANK0, call=node)


@pytest.mark.parametrize(
    ("module", "call", "joins"),
    [
        # the HF template: evaluate() asks for the eval split, the cache barriers are dead
        (
            "def ev(args, evaluate=True):\n    return build(args, 'dev', evaluate=evaluate)\n",
            "ev(args)",
            F,
        ),
        (
            "def ev(args, evaluate=True):\n    return build(args, 'dev', evaluate=evaluate)\n",
            "ev(args, evaluate=False)",
            T,
        ),
        ("def ev(args, flag=True):\n    return build(args, 'dev', flag)\n", "ev(args)", F),
        ("def ev(args):\n    return build(args, 'dev')\n", "ev(args)", T),
        ("def ev(args, **kw):\n    return build(args, 'dev', **kw)\n", "ev(args)", T),
        (
            "def ev(args, evaluate=True):\n    evaluate = args.check\n"
            "    return build(args, 'dev', evaluate=evaluate)\n",
            "ev(args)",
            T,
        ),
        (
            "def ev(args):\n    if args.local_rank == -1:\n        return 1\n"
            "    else:\n        dist.barrier()\n",
            "ev(args)",
            T,
        ),
        (
            "def ev(args):\n    if args.local_rank != -1:\n        dist.all_reduce(x)\n",
            "ev(args)",
            T,
        ),
        (
            "def ev(args):\n    if args.local_rank > 0:\n        dist.all_reduce(x)\n",
            "ev(args)",
            T,
        ),  # not a comparison the gates read: kept, conservatively
    ],
)
def test_collectives_reached_on_rank_zero(module: str, call: str, joins: bool) -> None:
    assert _joins(module, call) is joins
