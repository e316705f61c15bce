"""DDP010 collective-timeout: give the process group a timeout sized for rank-0 evaluation.

While rank 0 evaluates alone (DDP003), the other ranks wait inside their next collective. The
default process-group timeout (30 minutes; 10 for NCCL in recent torch) then kills a run whose
evaluation takes longer, which BigCloneBench's tens of thousands of validation pairs easily do.
The rule adds ``timeout=datetime.timedelta(minutes=N)`` to ``init_process_group`` calls that have
none. N is ``timeout_minutes`` in ``[tool.ddpfix.rules.DDP010]`` (default 180).
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._syntax import callee_name, import_fix

DEFAULT_MINUTES = 180


class CollectiveTimeout(Rule):
    code = "DDP010"
    name = "collective-timeout"
    summary = "init_process_group gets a timeout long enough for rank 0 to evaluate alone."
    rationale = __doc__
    settles = True
    triggers = ("init_process_group",)
    examples = (
        Example(
            before="import torch\ntorch.distributed.init_process_group(backend='nccl')\n",
            after=(
                "import datetime\n"
                "import torch\n"
                "torch.distributed.init_process_group(backend='nccl', "
                "timeout=datetime.timedelta(minutes=180))\n"
            ),
        ),
        Example(before="dist.init_process_group('gloo', timeout=timedelta(hours=2))\n"),
    )

    def run(self, ctx: RuleContext) -> None:
        minutes = ctx.options.get("timeout_minutes", DEFAULT_MINUTES)
        if not isinstance(minutes, int) or minutes <= 0:
            raise ValueError("[tool.ddpfix.rules.DDP010] timeout_minutes must be a positive int")
        tree = ctx.tree
        for call in tree.nodes(cst.Call):
            if callee_name(call) != "init_process_group":
                continue
            if any(a.keyword and a.keyword.value == "timeout" for a in call.args) or any(
                a.star for a in call.args
            ):
                continue
            value = cst.parse_expression(f"datetime.timedelta(minutes={minutes})")
            space = cst.SimpleWhitespace(" ")
            args = list(call.args)
            if args:
                args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=space))
            args.append(
                cst.Arg(
                    value,
                    keyword=cst.Name("timeout"),
                    equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
                )
            )
            ctx.fix(
                call,
                f"other ranks wait in a collective while rank 0 evaluates: allow {minutes} "
                "minutes instead of the default 30 (10 for NCCL)",
                {call: call.with_changes(args=args), **import_fix(tree.module, "datetime")},
            )
