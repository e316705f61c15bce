"""A fixed file leaves no trees behind in reference cycles.

``ddpfix check`` runs over whole repositories in one process. A tree version kept alive only by
a reference cycle (a shared analysis that refers to its tree, a nested function that calls
itself and holds the statements it indexed) is freed by the garbage collector alone, whose
every collection then walks hundreds of thousands of nodes: that was a tenth of the engine's
time. After :func:`patcher.engine.fix_text` returns, nothing of the file may be left for the
collector to find.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import libcst as cst
import pytest

from patcher.engine import fix_text
from patcher.registry import all_rules
from patcher.tree import Tree

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASES = (
    "scripts/barrier_half_after_loop.in.py",  # a script-sized run, several rules
    "DDP016/early_stop_history.in.py",  # a conversion: several passes and analyses
    "DDP016/seq2seq_writes_before_setup.in.py",  # a fix withdrawn by a post-condition
)


@pytest.fixture
def garbage() -> Iterator[list[object]]:
    """What the collector finds unreachable while the test runs (kept, not freed)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()


@pytest.mark.parametrize("case", CASES)
def test_fixing_a_file_leaves_no_tree_in_a_cycle(case: str, garbage: list[object]) -> None:
    text = (FIXTURES / case).read_text()
    fixed, findings = fix_text(text, all_rules())
    assert fixed != text or findings  # the rules did work on it
    gc.collect()
    left = [o for o in garbage if isinstance(o, (cst.CSTNode, Tree, dict))]
    assert not left, f"{len(left)} objects of the file in cycles, e.g. {type(left[0]).__name__}"
