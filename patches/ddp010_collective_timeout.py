"""DDP010 collective-timeout: give the process group a timeout sized for rank-0 evaluation.

While rank 0 evaluates alone (DDP003), the other ranks wait inside their next collective. The
default process-group timeout (30 minutes; 10 for NCCL in recent torch) then kills a run whose
evaluation takes longer, which BigCloneBench's tens of thousands of validation pairs easily do.
The rule adds ``timeout=datetime.timedelta(minutes=N)`` to ``torch.distributed``'s
``init_process_group`` calls that have none. N is ``timeout_minutes`` in
``[tool.ddpfix.rules.DDP010]`` (default 180). A project's own function of that name (``from
utils.dist import init_process_group``) is left alone: it may take no ``timeout`` (TypeError).

The keyword follows the call's own layout: appended after the last argument of a one-line call;
in a call written one argument per line, on a line of its own, indented like the other
arguments, with the closing parenthesis where it was, a comment after the last argument still
after it, and a magic trailing comma kept.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Option, Rule, RuleContext
from patcher.tree import Tree
from patches._args import has_keyword
from patches._syntax import callee_name, dotted_name, import_map

DEFAULT_MINUTES = 180
_SPACE = cst.SimpleWhitespace(" ")
_NONE = cst.SimpleWhitespace("")


def _line_break(space: cst.BaseParenthesizableWhitespace) -> cst.ParenthesizedWhitespace | None:
    return space if type(space) is cst.ParenthesizedWhitespace else None


def _with_argument(call: cst.Call, new: cst.Arg) -> list[cst.Arg]:
    """``call``'s arguments with ``new`` last, in the call's own layout.

    One line: ``, new``. One argument per line: ``new`` on a line of its own, indented like the
    argument before it; the closing parenthesis stays where it was, a comment after the last
    argument stays on its line, and a magic trailing comma stays trailing."""
    args = list(call.args)
    if not args:
        return [new]
    last = args[-1]
    trailing = last.comma if type(last.comma) is cst.Comma else None
    # what separates the arguments: after the previous one's comma, or after the parenthesis
    previous = args[-2].comma if len(args) > 1 else None
    before = (
        previous.whitespace_after if type(previous) is cst.Comma else call.whitespace_before_args
    )
    separator = _line_break(before)
    # what follows the last argument, up to the closing parenthesis
    closing = trailing.whitespace_after if trailing else last.whitespace_after_arg
    if separator is None:  # one line (or a layout without a line per argument)
        comma = cst.Comma(whitespace_after=_SPACE)
        if trailing:  # f(a,) → f(a, new,)
            args[-1] = last.with_changes(comma=comma)
            return [*args, new.with_changes(comma=trailing)]
        args[-1] = last.with_changes(comma=comma, whitespace_after_arg=_NONE)
        return [*args, new.with_changes(whitespace_after_arg=closing)]
    broken = _line_break(closing)
    # the last argument's comment (and nothing else) stays after it; the new one goes below
    after_last = separator.with_changes(
        first_line=broken.first_line if broken else cst.TrailingWhitespace(),
        empty_lines=[],
    )
    if broken is not None:  # the parenthesis on its own line: keep it there
        closing = broken.with_changes(first_line=cst.TrailingWhitespace())
    args[-1] = last.with_changes(
        comma=cst.Comma(
            whitespace_before=trailing.whitespace_before if trailing else _NONE,
            whitespace_after=after_last,
        ),
        whitespace_after_arg=_NONE,
    )
    if trailing:
        return [*args, new.with_changes(comma=cst.Comma(whitespace_after=closing))]
    return [*args, new.with_changes(whitespace_after_arg=closing)]


def _torch_call(tree: Tree, call: cst.Call) -> bool:
    """Whether ``call`` is ``torch.distributed.init_process_group`` as the module imports it:
    ``torch.distributed.X``, ``dist.X`` with ``import torch.distributed as dist`` (or ``from
    torch import distributed as dist``), or ``X`` from ``from torch.distributed import X``."""
    func = call.func
    imports = import_map(tree)
    if type(func) is cst.Attribute:
        base = dotted_name(func.value)
        return base == "torch.distributed" or imports.get(base or "") in _DISTRIBUTED_MODULE
    if type(func) is cst.Name:
        module = imports.get(func.value, ("", None))[0]
        return module == "torch" or module.startswith("torch.")
    return False


#: How ``torch.distributed`` is bound to a local name (``import torch.distributed as dist``,
#: ``from torch import distributed``), as :func:`import_map` records it.
_DISTRIBUTED_MODULE = (("torch.distributed", None), ("torch", "distributed"))


class CollectiveTimeout(Rule):
    code = "DDP010"
    name = "collective-timeout"
    summary = "init_process_group gets a timeout long enough for rank 0 to evaluate alone."
    rationale = __doc__
    settles = True
    triggers = ("init_process_group",)
    options = {
        "timeout_minutes": Option(
            DEFAULT_MINUTES,
            "minutes the other ranks wait in a collective before failing",
            minimum=1,
            expects="a whole number of minutes",
        )
    }
    examples = (
        Example(
            before="""
                import torch
                torch.distributed.init_process_group(backend='nccl')
            """,
            after="""
                import datetime
                import torch
                torch.distributed.init_process_group(backend='nccl', timeout=datetime.timedelta(minutes=180))
            """,  # noqa: E501
            messages=(
                "other ranks wait in a collective while rank 0 evaluates: allow 180 minutes "
                "instead of the default 30 (10 for NCCL)",
            ),
        ),
        Example(
            before="""
                import datetime
                torch.distributed.init_process_group(
                    backend='nccl',
                    init_method='env://',  # set by the launcher
                )
            """,
            after="""
                import datetime
                torch.distributed.init_process_group(
                    backend='nccl',
                    init_method='env://',  # set by the launcher
                    timeout=datetime.timedelta(minutes=180),
                )
            """,
            messages=(
                "other ranks wait in a collective while rank 0 evaluates: allow 180 minutes "
                "instead of the default 30 (10 for NCCL)",
            ),
        ),
        Example(
            before="""
                dist.init_process_group('gloo', timeout=timedelta(hours=2))
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        minutes = self.option(ctx, "timeout_minutes")
        if not isinstance(minutes, int) or minutes <= 0:
            raise ValueError("[tool.ddpfix.rules.DDP010] timeout_minutes must be a positive int")
        tree = ctx.tree
        for call in tree.nodes(cst.Call):
            if callee_name(call) != "init_process_group" or not _torch_call(tree, call):
                continue  # a project's own wrapper may take no ``timeout`` (TypeError)
            if has_keyword(call, "timeout") or any(a.star for a in call.args):
                continue
            value = cst.parse_expression(f"datetime.timedelta(minutes={minutes})")
            timeout = cst.Arg(
                value, keyword=cst.Name("timeout"), equal=cst.AssignEqual(_NONE, _NONE)
            )
            args = _with_argument(call, timeout)
            ctx.fix(
                call,
                f"other ranks wait in a collective while rank 0 evaluates: allow {minutes} "
                "minutes instead of the default 30 (10 for NCCL)",
                {call: call.with_changes(args=args)},
                imports=("datetime",),
            )
