"""PRT009's fix for ``find_pruneable_heads_and_indices``: the helper, defined in the script.

transformers 5 removed the helper and nothing replaces it, so a model file that imports it (for
its ``prune_heads``, which fine-tuning never calls) cannot even be imported. Its behaviour is small
and documented: given the heads to prune, the current head count and size, and the heads pruned
before, it returns the heads not pruned yet and the indices of the weight rows the layer keeps.
The fix drops the name from the import and defines the helper, with that behaviour, under the
name the script uses, after the last top-level import that comes before the module's first
other top-level statement, so it exists before any top-level code (``if __name__ ==
"__main__": main()``) runs; the comments above an import line the fix removes go with the
helper. Without such an import the helper takes the import line's place (the very point the
import bound it). It is not applied, and PRT009 reports the import instead, when the import is
not a module-level statement of its own line or the module binds that name in another way.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from patcher.rule import RuleContext
from patcher.tree import Around, Replacement
from patches._syntax import dotted_name, last_import, module_binds

#: transformers 4's behaviour: ``heads`` less those already pruned; a head's rows in the layer
#: now sit at its index less the pruned heads below it (4 indexed a tensor with it: negative
#: counts from the end, out of range raises IndexError); every other row is kept, in order.
#: (4 required a set of pruned heads; any iterable is taken here.)
HELPER = '''
def {name}(heads, n_heads, head_size, already_pruned_heads):
    """transformers 4's helper, removed in 5: the heads not pruned yet, and the
    rows of the current n_heads * head_size that the layer keeps without them."""
    heads = set(heads) - set(already_pruned_heads)
    now = set()
    for head in heads:
        index = head - sum(1 for p in already_pruned_heads if p < head)
        if not -n_heads <= index < n_heads:
            raise IndexError(f"head {{head}} is out of range for {{n_heads}} heads")
        now.add(index % n_heads)
    keep = [r for r in range(n_heads * head_size) if r // head_size not in now]
    return heads, torch.tensor(keep, dtype=torch.long)
'''


def helper(name: str) -> cst.FunctionDef:
    """The helper as a statement named ``name``, two blank lines above it."""
    definition = cst.ensure_type(
        cst.parse_statement(HELPER.format(name=name).lstrip("\n")), cst.FunctionDef
    )
    return definition.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])


def _comments(line: cst.SimpleStatementLine) -> list[cst.EmptyLine]:
    """The comment lines above ``line`` (with the blank lines between them), blank lines before
    the first comment left out."""
    lines = list(line.leading_lines)
    while lines and lines[0].comment is None:
        lines.pop(0)
    return lines


def define_helper(
    ctx: RuleContext,
    line: cst.SimpleStatementLine,
    alias: cst.ImportAlias,
    remaining: list[cst.BaseStatement],
    also: Sequence[tuple[cst.CSTNode, str]] = (),
) -> bool:
    """Fix the import of the helper by defining it, ``remaining`` taking the import line's
    place (its other names; ``also`` says what else changed there); False when not certain."""
    tree = ctx.tree
    bound = alias.asname.name if alias.asname else alias.name
    if type(bound) is not cst.Name or tree.parent(line) is not tree.module:
        return False
    if len(line.body) != 1 or module_binds(tree, bound.value, besides=line):
        return False
    definition = helper(bound.value)
    replacements: dict[cst.CSTNode, Replacement] = {}
    last = last_import(tree.module, skip=line if not remaining else None, before_code=True)
    if last is None and not remaining:  # no import before it: the helper takes its place
        replacements[line] = [definition.with_changes(leading_lines=line.leading_lines)]
    elif last is None or last is line:
        replacements[line] = [*remaining, definition]
    else:
        replacements[line] = remaining
        if not remaining:  # the comments above the removed line go with what replaces it
            definition = definition.with_changes(
                leading_lines=[*definition.leading_lines, *_comments(line)]
            )
        replacements[last] = Around(after=(definition,))
    ctx.fix(
        alias,
        f"{dotted_name(alias.name)} was removed in transformers 5: defined in the script with "
        "transformers 4's behaviour",
        replacements,
        also,
        imports=("torch",),
    )
    return True
