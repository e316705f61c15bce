"""PRT001 torch-adamw: ``AdamW`` comes from ``torch.optim``; transformers removed its own.

``from transformers import AdamW`` raises ImportError on transformers 5 (the class was deprecated
in 4.x and removed); it is the first thing a 2020 script meets on today's stack. The rule drops
``AdamW`` from the transformers import (the other names stay, layout kept) and imports it from
``torch.optim`` right after; ``transformers.AdamW(...)`` becomes ``torch.optim.AdamW(...)``.
torch's AdamW always corrects the bias and has no ``correct_bias`` argument (passing it raises
TypeError), so ``correct_bias=True`` is dropped and ``correct_bias=False`` is reported without a
fix, before and after the import moved: a patched script keeps the report until someone decides.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Replacement
from patches._args import keyword_arg
from patches._bundled import bundled
from patches._syntax import dotted_name

ADAMW_CALLS = ("transformers.AdamW", "torch.optim.AdamW", "optim.AdamW")


def _adamw_source(node: cst.ImportFrom) -> str | None:
    """The module ``node`` imports ``AdamW`` (unaliased) from: transformers or torch.optim."""
    module = dotted_name(node.module) if node.module is not None else None
    if module not in ("transformers", "torch.optim") or isinstance(node.names, cst.ImportStar):
        return None
    if any(dotted_name(a.name) == "AdamW" and a.asname is None for a in node.names):
        return module
    return None


def _without(node: cst.ImportFrom, name: str) -> cst.ImportFrom | None:
    """The import without ``name``; the name before it takes its comma, so lines stay lines."""
    assert not isinstance(node.names, cst.ImportStar)
    kept: list[cst.ImportAlias] = []
    for alias in node.names:
        if dotted_name(alias.name) == name:
            if kept:
                kept[-1] = kept[-1].with_changes(comma=alias.comma)
            continue
        kept.append(alias)
    return node.with_changes(names=kept) if kept else None


class TorchAdamW(Rule):
    code = "PRT001"
    name = "torch-adamw"
    summary = "Import AdamW from torch.optim (transformers no longer has it)."
    rationale = __doc__
    settles = True
    triggers = ("AdamW",)
    examples = (
        Example(
            before="""
                from transformers import (WEIGHTS_NAME, AdamW,
                                          get_linear_schedule_with_warmup)
            """,
            after="""
                from transformers import (WEIGHTS_NAME,
                                          get_linear_schedule_with_warmup)
                from torch.optim import AdamW
            """,
            messages=("AdamW was removed from transformers: import it from torch.optim",),
        ),
        Example(
            before="""
                import transformers
                opt = transformers.AdamW(params, lr=1e-4)
            """,
            after="""
                import torch
                import transformers
                opt = torch.optim.AdamW(params, lr=1e-4)
            """,
            messages=("transformers.AdamW was removed: use torch.optim.AdamW",),
        ),
        Example(
            before="""
                from torch.optim import AdamW
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        if bundled(ctx.path, "transformers"):
            return  # the script imports the copy its project ships, not today's transformers
        tree = ctx.tree
        for line in tree.nodes(cst.SimpleStatementLine):
            node = line.body[0]
            if len(line.body) != 1 or type(node) is not cst.ImportFrom:
                continue
            if _adamw_source(node) != "transformers":
                continue
            rest = _without(node, "AdamW")
            torch_import = cst.parse_statement("from torch.optim import AdamW\n")
            new: list[cst.BaseStatement] = []
            if rest is not None:
                new.append(line.with_changes(body=[rest]))
                new.append(torch_import)
            else:
                new.append(torch_import.with_changes(leading_lines=line.leading_lines))
            message = "AdamW was removed from transformers: import it from torch.optim"
            ctx.fix(line, message, {line: new})
        imported = {_adamw_source(n) for n in tree.nodes(cst.ImportFrom)} - {None}
        for call in tree.nodes(cst.Call):
            dotted = dotted_name(call.func)
            if not (dotted in ADAMW_CALLS or (dotted == "AdamW" and imported)):
                continue
            correct_bias = keyword_arg(call, "correct_bias")
            args = [a for a in call.args if a is not correct_bias]
            dropped = [a for a in call.args if a not in args]
            if any(not (type(a.value) is cst.Name and a.value.value == "True") for a in dropped):
                ctx.report(call, "correct_bias=False has no torch.optim.AdamW equivalent")
                continue
            if dropped and args:
                args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            replacements: dict[cst.CSTNode, Replacement] = {}
            if dotted == "transformers.AdamW":
                func = cst.Attribute(
                    cst.Attribute(cst.Name("torch"), cst.Name("optim")), cst.Name("AdamW")
                )
                replacements[call] = call.with_changes(func=func, args=args)
                message = "transformers.AdamW was removed: use torch.optim.AdamW"
                imports = ("torch",)
            elif dropped:
                replacements[call] = call.with_changes(args=args)
                message = "torch.optim.AdamW always corrects the bias: drop correct_bias=True"
                imports = ()
            else:
                continue
            ctx.fix(call, message, replacements, imports=imports)
