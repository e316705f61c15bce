"""Map line numbers of a rewritten text back to the file the user has.

Rules run one after another, each on the previous one's output, and report positions in the text
they saw. Findings must name lines of the original file, so every reported line goes through the
differences between the original and the intermediate text.
"""

from __future__ import annotations

import difflib
from functools import lru_cache


class LineMap:
    def __init__(self, original: str, current: str) -> None:
        self._identity = original == current
        self._blocks: list[tuple[int, int, int, int]] = []
        if not self._identity:
            matcher = difflib.SequenceMatcher(
                None, original.splitlines(), current.splitlines(), autojunk=False
            )
            self._blocks = [(i1, i2, j1, j2) for _, i1, i2, j1, j2 in matcher.get_opcodes()]

    def to_original(self, line: int) -> int:
        """1-based line of ``current`` → 1-based line of ``original``."""
        if self._identity:
            return line
        index = line - 1
        for i1, i2, j1, j2 in self._blocks:
            if j1 <= index < j2:
                # inside a rewritten block, line k maps to line k of the original block
                return i1 + min(index - j1, max(i2 - i1 - 1, 0)) + 1
        return line


@lru_cache(maxsize=8)
def line_map(original: str, current: str) -> LineMap:
    """The map of ``current`` to ``original``, kept for the few texts last asked: the engine
    asks again for the same version (the last pass, then the rules that judge the output;
    the runs that withdraw a fix start from the same versions)."""
    return LineMap(original, current)
