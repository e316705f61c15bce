"""Which scripts are DataParallel only: the shape DDP016 converts and DDP001 leaves to it.

Shared so that the two rules agree. A script with a ``DataParallel`` wrap, a module function that
trains, and no distribution of its own is converted by DDP016 (or reported by it when it cannot
be); DDP001 must not read ``LOCAL_RANK`` into it first, or DDP016 would see a rank and stand back
while the processes still train alone. A ``--local_rank`` option that is only declared (kept from
a template, read nowhere: GraphCodeBERT's refinement and translation scripts) is no distribution.
"""

from __future__ import annotations

import libcst as cst

from patcher.tree import Tree
from patches._syntax import callee_name, calls_in, dotted_name, module_functions

#: Names whose use says the script already distributes itself.
_DISTRIBUTED_NAMES = frozenset({"init_process_group", "DistributedDataParallel", "local_rank"})


def dataparallel_wraps(tree: Tree) -> list[cst.Call]:
    """The ``DataParallel(...)`` calls (not ``DistributedDataParallel``)."""
    return [
        c
        for c in tree.nodes(cst.Call)
        if callee_name(c) == "DataParallel" and "Distributed" not in (dotted_name(c.func) or "")
    ]


def uses_distribution(tree: Tree) -> bool:
    """A process group, a DDP wrap, accelerate, a ``"LOCAL_RANK"`` string, or a local rank the
    code reads (``args.local_rank``, a ``local_rank`` name). The string ``"--local_rank"`` of an
    ``add_argument`` is not a read, and neither is a comment."""
    return (
        any(callee_name(c) in ("Accelerator", "prepare") for c in tree.nodes(cst.Call))
        or any(node.attr.value in _DISTRIBUTED_NAMES for node in tree.nodes(cst.Attribute))
        or any(node.value in _DISTRIBUTED_NAMES for node in tree.nodes(cst.Name))
        or any("LOCAL_RANK" in node.value for node in tree.nodes(cst.SimpleString))
    )


def trains(function: cst.FunctionDef) -> bool:
    return any(callee_name(c) == "backward" for c in calls_in(function))


def training_functions(tree: Tree) -> list[cst.FunctionDef]:
    return [f for f in module_functions(tree.module).values() if trains(f)]


def dataparallel_only(tree: Tree) -> bool:
    """DDP016's candidates: DataParallel, no distribution, a module function that trains."""
    return (
        bool(dataparallel_wraps(tree))
        and not uses_distribution(tree)
        and bool(training_functions(tree))
    )
