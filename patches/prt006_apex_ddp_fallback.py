"""PRT006 apex-ddp-fallback: use torch's DistributedDataParallel when apex is not installed.

The seq2seq scripts (CodeXGLUE code-to-text, code-refinement, code-to-code-trans, text-to-text;
CodeBERT code2nl) import ``DistributedDataParallel`` from NVIDIA's apex and raise when it is
missing. apex is not on PyPI and rarely builds on today's stack, so every distributed run stops
there. ``torch.nn.parallel.DistributedDataParallel`` does the same job. The rule keeps apex when it
is installed and falls back to torch's class, under the same name, when it is not. apex's wrapper
tolerates parameters that take no part in the loss (the seq2seq models have some: the encoder's
pooler), torch's raises unless told, so the fallback passes ``find_unused_parameters=True``.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._syntax import dotted_name

WRAPPER = "DistributedDataParallel"


def _apex_import(statement: cst.CSTNode) -> cst.ImportFrom | None:
    if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
        return None
    node = statement.body[0]
    if (
        isinstance(node, cst.ImportFrom)
        and node.module is not None
        and dotted_name(node.module) == "apex.parallel"
        and not isinstance(node.names, cst.ImportStar)
        and any(dotted_name(a.name) == WRAPPER for a in node.names)
    ):
        return node
    return None


class ApexDdpFallback(Rule):
    code = "PRT006"
    name = "apex-ddp-fallback"
    summary = "Fall back to torch's DistributedDataParallel when apex is not installed."
    rationale = __doc__
    settles = True
    triggers = ("apex",)
    examples = (
        Example(
            before="""
                try:
                    from apex.parallel import DistributedDataParallel as DDP
                except ImportError:
                    raise ImportError("Please install apex to use distributed training.")
            """,
            after="""
                try:
                    from apex.parallel import DistributedDataParallel as DDP
                except ImportError:
                    from functools import partial
                    from torch.nn.parallel import DistributedDataParallel as _TorchDDP
                    DDP = partial(_TorchDDP, find_unused_parameters=True)
            """,
            messages=(
                "apex is not installable here: fall back to "
                "torch.nn.parallel.DistributedDataParallel",
            ),
        ),
        Example(
            before="""
                from apex import amp
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        for attempt in ctx.tree.nodes(cst.Try):
            body = attempt.body
            if not (type(body) is cst.IndentedBlock and len(body.body) == 1):
                continue
            node = _apex_import(body.body[0])
            if node is None or len(attempt.handlers) != 1:
                continue
            handler = attempt.handlers[0].body
            if not (type(handler) is cst.IndentedBlock and len(handler.body) == 1):
                continue
            line = handler.body[0]
            if not (
                isinstance(line, cst.SimpleStatementLine)
                and len(line.body) == 1
                and isinstance(line.body[0], cst.Raise)
            ):
                continue
            assert not isinstance(node.names, cst.ImportStar)
            alias = next(a for a in node.names if dotted_name(a.name) == WRAPPER)
            name = cst.ensure_type(alias.asname.name, cst.Name).value if alias.asname else WRAPPER
            config = ctx.tree.module.config_for_parsing
            fallback = [
                cst.parse_statement("from functools import partial\n", config=config),
                cst.parse_statement(
                    "from torch.nn.parallel import DistributedDataParallel as _TorchDDP\n",
                    config=config,
                ),
                cst.parse_statement(
                    f"{name} = partial(_TorchDDP, find_unused_parameters=True)\n", config=config
                ),
            ]
            ctx.fix(
                attempt,
                "apex is not installable here: fall back to torch.nn.parallel."
                "DistributedDataParallel",
                {line: fallback},
            )
