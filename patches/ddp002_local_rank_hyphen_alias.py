"""DDP002 local-rank-hyphen-alias: accept both ``--local_rank`` and ``--local-rank``.

Since torch 2.0, ``python -m torch.distributed.launch`` passes ``--local-rank=N``; older releases
passed ``--local_rank=N``. A script that declares only one spelling dies at start-up with
``error: unrecognized arguments`` under the other. The rule adds the missing spelling as a second
option string of the same ``add_argument`` call. The first option string is left first, so the
destination (``args.local_rank``) does not change; an explicit ``dest=`` is kept as it is.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._argparse import LOCAL_RANK_OPTIONS, local_rank_options
from patches._syntax import string_value


def _spellings(call: cst.Call) -> set[str]:
    return {
        value
        for arg in call.args
        if arg.keyword is None and (value := string_value(arg.value)) in LOCAL_RANK_OPTIONS
    }


def _string_like(template: cst.SimpleString, text: str) -> cst.SimpleString:
    quote = template.quote
    return cst.SimpleString(f"{template.prefix}{quote}{text}{quote}")


def _with_alias(call: cst.Call, missing: str) -> cst.Call:
    """The same call with ``missing`` as its second option string, commas laid out alike."""
    args = list(call.args)
    first = args[0]
    assert type(first.value) is cst.SimpleString
    alias = cst.Arg(value=_string_like(first.value, missing))
    if type(first.comma) is cst.Comma:
        alias = alias.with_changes(comma=first.comma)
    else:
        first = first.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
    return call.with_changes(args=[first, alias, *args[1:]])


class LocalRankHyphenAlias(Rule):
    code = "DDP002"
    name = "local-rank-hyphen-alias"
    summary = "Declare --local_rank and --local-rank together (torch>=2 launch passes the latter)."
    rationale = __doc__
    settles = True
    triggers = ("local_rank", "local-rank")
    examples = (
        Example(
            before="""
                parser.add_argument("--local_rank", type=int, default=-1)
            """,
            after="""
                parser.add_argument("--local_rank", "--local-rank", type=int, default=-1)
            """,
            messages=("also accept --local-rank (same destination)",),
        ),
        Example(
            before="""
                parser.add_argument(
                    '--local_rank',
                    type=int,
                    default=-1,
                )
            """,
            after="""
                parser.add_argument(
                    '--local_rank',
                    '--local-rank',
                    type=int,
                    default=-1,
                )
            """,
            messages=("also accept --local-rank (same destination)",),
        ),
        Example(
            before="""
                parser.add_argument("--local_rank", "--local-rank", type=int)
            """
        ),
        Example(
            before="""
                parser.add_argument("--local-rank", "--local_rank", type=int)
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        options = local_rank_options(ctx.tree)
        declared = set().union(*(_spellings(o.call) for o in options)) if options else set()
        if not options or declared >= set(LOCAL_RANK_OPTIONS):
            return
        for option in options:
            present = string_value(option.call.args[0].value)
            if present not in LOCAL_RANK_OPTIONS:
                continue
            missing = next(n for n in LOCAL_RANK_OPTIONS if n != present)
            ctx.fix(
                option.call,
                f"also accept {missing} (same destination)",
                {option.call: _with_alias(option.call, missing)},
            )
