"""Is a rewrite local? Compare the statement trees of input and output outside the touched ones.

Both versions are flattened, with Python's ``ast``, into statements in source order: a simple
statement whole, a compound one as its header (its bodies emptied) followed by its children one
level deeper. The two sequences are aligned; every region where input statements were removed or
rewritten (moved into a new block counts: its depth changes) must lie inside a touched statement:
one whose own lines a finding names, with everything nested in it. A region is inside when the
touched statement is the region's own or an enclosing one in the input, or when it encloses the
region's new version in the output (a statement moved under the gate a finding names; output
lines go back to input lines through the engine's own ``LineMap``, as findings do). Pure
insertions (an import, a guard added before a statement) change nothing that was there.
Comments and layout are not in ``ast``; the line-level checks next to this one cover them.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass
from difflib import SequenceMatcher

from patcher.linemap import LineMap

_BLOCKS = ("body", "orelse", "handlers", "finalbody")


@dataclass(frozen=True)
class Statement:
    depth: int
    shape: str  # ast.dump of the statement, its bodies emptied
    lines: range  # the lines it owns: all of a simple one, the header of a compound one
    parent: int | None  # index of the enclosing statement in the same flattened list


def statements(source: str) -> list[Statement]:
    out: list[Statement] = []

    def visit(node: ast.AST, depth: int, parent: int | None) -> None:
        for block in _BLOCKS:
            for child in getattr(node, block, None) or ():
                nested = [getattr(child, b, None) or () for b in _BLOCKS]
                header = copy.copy(child)
                for block_name in _BLOCKS:
                    if hasattr(header, block_name):
                        setattr(header, block_name, [])
                first_inner = min((s[0].lineno for s in nested if s), default=None)
                end = child.end_lineno if first_inner is None else first_inner - 1
                shape = ast.dump(header, include_attributes=False)
                owned = range(child.lineno, max(end, child.lineno) + 1)
                out.append(Statement(depth, shape, owned, parent))
                visit(child, depth + 1, len(out) - 1)

    visit(ast.parse(source), 0, None)
    return out


def _with_ancestors(found: list[Statement], index: int) -> list[int]:
    chain: list[int] = []
    at: int | None = index
    while at is not None:
        chain.append(at)
        at = found[at].parent
    return chain


def unexplained_changes(source: str, output: str, finding_lines: set[int]) -> list[str]:
    """Rewritten or removed input statements with no finding in their region ([] when local)."""
    before, after = statements(source), statements(output)
    keys = SequenceMatcher(
        None,
        [(s.depth, s.shape) for s in before],
        [(s.depth, s.shape) for s in after],
        autojunk=False,
    )
    touched = {i for i, s in enumerate(before) if finding_lines & set(s.lines)}
    back = LineMap(source, output)  # findings name input lines; so does this, for the output
    touched_after = {
        j for j, s in enumerate(after) if finding_lines & {back.to_original(n) for n in s.lines}
    }
    problems = []
    for tag, i1, i2, j1, j2 in keys.get_opcodes():
        if tag not in ("replace", "delete"):
            continue
        inside = any(touched.intersection(_with_ancestors(before, i)) for i in range(i1, i2))
        inside = inside or any(
            touched_after.intersection(_with_ancestors(after, j)) for j in range(j1, j2)
        )
        if not inside:
            region = [line for s in before[i1:i2] for line in s.lines]
            problems.append(f"lines {region[0]}-{region[-1]} changed outside any touched statement")
    return problems
