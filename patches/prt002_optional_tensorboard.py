"""PRT002 optional-tensorboard: a never-used SummaryWriter import must not need tensorboard.

The template imports ``SummaryWriter`` from ``torch.utils.tensorboard`` and falls back to
``tensorboardX``. With neither installed (the usual case on a fresh machine: torch does not
depend on tensorboard) the fallback raises ModuleNotFoundError before anything runs, although
most scripts never use ``SummaryWriter``. When the module never uses the name, the rule guards the
fallback so the name becomes ``None`` instead. When the script does use it, the dependency is
real: the rule reports it (install ``tensorboard``) without a fix.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._syntax import dotted_name

WRITER = "SummaryWriter"
SOURCES = ("torch.utils.tensorboard", "tensorboardX")
MARKER = "# ddpfix: optional, never used"


def _imports_writer(statement: cst.CSTNode) -> bool:
    if not (isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1):
        return False
    node = statement.body[0]
    return (
        isinstance(node, cst.ImportFrom)
        and node.module is not None
        and dotted_name(node.module) in SOURCES
        and not isinstance(node.names, cst.ImportStar)
        and any(dotted_name(a.name) == WRITER and a.asname is None for a in node.names)
    )


def _used(tree: Tree) -> bool:
    for name in tree.nodes(cst.Name):
        if name.value == WRITER and not isinstance(tree.parent(name), cst.ImportAlias):
            return True
    return False


def _guarded(statement: cst.SimpleStatementLine, module: cst.Module) -> cst.Try:
    code = f"try:\n    pass\nexcept ImportError:\n    {WRITER} = None  {MARKER}\n"
    guard = cst.parse_statement(code, config=module.config_for_parsing)
    assert type(guard) is cst.Try and type(guard.body) is cst.IndentedBlock
    body = guard.body.with_changes(body=[statement.with_changes(leading_lines=[])])
    return guard.with_changes(body=body, leading_lines=statement.leading_lines)


class OptionalTensorboard(Rule):
    code = "PRT002"
    name = "optional-tensorboard"
    summary = "An unused tensorboard/tensorboardX fallback import no longer requires either."
    rationale = __doc__
    settles = True
    triggers = (WRITER,)
    examples = (
        Example(
            before="""
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except:
                    from tensorboardX import SummaryWriter
            """,
            after=f"""
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except:
                    try:
                        from tensorboardX import SummaryWriter
                    except ImportError:
                        SummaryWriter = None  {MARKER}
            """,
            messages=(
                "SummaryWriter is never used: let its import fail quietly when neither "
                "tensorboard nor tensorboardX is installed",
            ),
        ),
        Example(
            before="""
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError:
                    from tensorboardX import SummaryWriter
                tb_writer = SummaryWriter()
            """,
            reports=1,
            messages=(
                "SummaryWriter is used: this script needs tensorboard (pip install tensorboard)",
            ),
        ),
        Example(
            before="""
                from torch.utils.tensorboard import SummaryWriter
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        for attempt in tree.nodes(cst.Try):
            body = attempt.body
            if not (type(body) is cst.IndentedBlock and len(body.body) == 1):
                continue
            if not _imports_writer(body.body[0]) or len(attempt.handlers) != 1:
                continue
            handler = attempt.handlers[0].body
            if not (type(handler) is cst.IndentedBlock and len(handler.body) == 1):
                continue
            fallback = handler.body[0]
            if not _imports_writer(fallback):
                continue  # already guarded, or not the fallback pattern
            if _used(tree):
                ctx.report(
                    attempt,
                    f"{WRITER} is used: this script needs tensorboard (pip install tensorboard)",
                )
                continue
            assert type(fallback) is cst.SimpleStatementLine
            ctx.fix(
                attempt,
                f"{WRITER} is never used: let its import fail quietly when neither tensorboard "
                "nor tensorboardX is installed",
                {fallback: _guarded(fallback, tree.module)},
            )
