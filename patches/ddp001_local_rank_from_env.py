"""DDP001 local-rank-from-env: take LOCAL_RANK from the environment after parsing arguments.

``torchrun`` and ``accelerate launch`` pass the local rank only as the ``LOCAL_RANK`` environment
variable; ``python -m torch.distributed.launch`` used to pass ``--local_rank``. A script that only
reads the argument keeps ``args.local_rank == -1`` in every process: each one thinks it is alone,
all load onto GPU 0, and every rank-gated save or evaluation runs in every process.

Right after the statement that parses the arguments, the rule inserts a guarded read of
``LOCAL_RANK`` that only applies when the argument was not given (it still equals its default),
so an explicit ``--local_rank`` keeps working. It recognises ``parse_args()`` and
``parse_known_args()``, any result name, module level or inside a function, and helpers that
``return parser.parse_args()`` (the return is split so the read happens inside the helper). It
adds ``import os`` only when missing, and does nothing when the script already reads LOCAL_RANK
into the argument in any spelling (``os.environ[...]``, ``.get``, ``os.getenv``, an env-derived
``default=``).
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Replacement, Tree
from patches._syntax import (
    dotted_name,
    import_fix,
    int_literal,
    preferred_quote,
    string_value,
    walk,
)

OPTION_NAMES = ("--local_rank", "--local-rank")
PARSE_METHODS = ("parse_args", "parse_known_args")
MARKER = "# ddpfix: torchrun / accelerate launch pass the local rank only as LOCAL_RANK"


@dataclass(frozen=True)
class LocalRankOption:
    call: cst.Call
    parser: str | None
    dest: str
    default: cst.BaseExpression | None


def _option_strings(call: cst.Call) -> list[str]:
    strings = []
    for arg in call.args:
        if arg.keyword is not None or arg.star:
            break
        value = string_value(arg.value)
        if value is None:
            break
        strings.append(value)
    return strings


def _keyword(call: cst.Call, name: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    return None


def _mentions_local_rank_env(node: cst.CSTNode) -> bool:
    return any(string_value(n) == "LOCAL_RANK" for n in walk(node, into_functions=True))


def find_options(tree: Tree) -> list[LocalRankOption]:
    """Every ``add_argument("--local_rank", ...)`` (either spelling) in the module."""
    groups: dict[str, str] = {}  # group variable -> parser variable
    for node in tree.nodes(cst.Assign):
        call = node.value
        if (
            isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value in ("add_argument_group", "add_mutually_exclusive_group")
        ):
            owner = dotted_name(call.func.value)
            for target in node.targets:
                name = dotted_name(target.target)
                if name and owner:
                    groups[name] = owner
    options = []
    for node in tree.nodes(cst.Call):
        if not (isinstance(node.func, cst.Attribute) and node.func.attr.value == "add_argument"):
            continue
        strings = _option_strings(node)
        if not any(s in OPTION_NAMES for s in strings):
            continue
        dest_node = _keyword(node, "dest")
        dest = string_value(dest_node) if dest_node is not None else None
        if dest is None:
            long = next(s for s in strings if s.startswith("--"))
            dest = long[2:].replace("-", "_")
        parser = dotted_name(node.func.value)
        parser = groups.get(parser or "", parser)
        options.append(LocalRankOption(node, parser, dest, _keyword(node, "default")))
    return options


def _already_reads_env(tree: Tree, dest: str) -> bool:
    for node in tree.nodes(cst.Assign, cst.AnnAssign, cst.AugAssign):
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        else:
            targets = [node.target]
        if (
            any(isinstance(t, cst.Attribute) and t.attr.value == dest for t in targets)
            and node.value is not None
            and _mentions_local_rank_env(node.value)
        ):
            return True
    return False


def _parse_call(node: cst.CSTNode | None) -> cst.Call | None:
    if (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in PARSE_METHODS
    ):
        return node
    return None


def _parse_target(statement: cst.BaseSmallStatement) -> tuple[cst.Call, cst.BaseExpression] | None:
    """``args = p.parse_args()`` / ``args, rest = p.parse_known_args()`` → (call, args)."""
    if not isinstance(statement, cst.Assign) or len(statement.targets) != 1:
        return None
    call = _parse_call(statement.value)
    if call is None:
        return None
    target = statement.targets[0].target
    if isinstance(target, (cst.Tuple, cst.List)) and target.elements:
        target = target.elements[0].value
    if isinstance(target, (cst.Name, cst.Attribute)):
        return call, target
    return None


def _guard(
    module: cst.Module, option: LocalRankOption, target: cst.BaseExpression, quote: str
) -> cst.If:
    """``if "LOCAL_RANK" in os.environ and args.local_rank == -1: args.local_rank = ...``."""
    q, dest = quote, option.dest
    who = module.code_for_node(target)
    default = option.default
    if default is None or (isinstance(default, cst.Name) and default.value == "None"):
        unset = f"{who}.{dest} is None"
    else:
        unset = f"{who}.{dest} == {module.code_for_node(default)}"
    code = (
        f"if {q}LOCAL_RANK{q} in os.environ and {unset}:\n"
        f"    {who}.{dest} = int(os.environ[{q}LOCAL_RANK{q}])\n"
    )
    statement = cst.parse_statement(code, config=module.config_for_parsing)
    assert isinstance(statement, cst.If)
    return statement.with_changes(leading_lines=[cst.EmptyLine(comment=cst.Comment(MARKER))])


def _insertions(
    tree: Tree, option: LocalRankOption, parsers: set[str | None]
) -> dict[cst.CSTNode, Replacement]:
    """For each statement that parses the arguments: that statement followed by the guard."""
    quote = preferred_quote(tree.code)
    found: dict[cst.CSTNode, Replacement] = {}
    for line in tree.nodes(cst.SimpleStatementLine):
        if not isinstance(tree.parent(line), (cst.IndentedBlock, cst.Module)):
            continue
        first = line.body[0]
        parsed = _parse_target(first) if len(line.body) == 1 else None
        if parsed and _wanted(parsed[0], parsers):
            found[line] = Around(after=(_guard(tree.module, option, parsed[1], quote),))
        elif (
            len(line.body) == 1
            and isinstance(first, cst.Return)
            and (call := _parse_call(first.value)) is not None
            and _wanted(call, parsers)
        ):
            args = cst.Name("args")
            assign = line.with_changes(body=[cst.Assign([cst.AssignTarget(args)], call)])
            found[line] = [
                assign,
                _guard(tree.module, option, args, quote),
                cst.SimpleStatementLine([cst.Return(args)]),
            ]
    return found


def _wanted(call: cst.Call, parsers: set[str | None]) -> bool:
    assert isinstance(call.func, cst.Attribute)
    return not parsers or dotted_name(call.func.value) in parsers


def _count_parse_statements(tree: Tree) -> int:
    assigned = sum(1 for node in tree.nodes(cst.Assign) if _parse_target(node))
    returned = sum(1 for node in tree.nodes(cst.Return) if _parse_call(node.value))
    return assigned + returned


class LocalRankFromEnv(Rule):
    code = "DDP001"
    name = "local-rank-from-env"
    summary = "Read LOCAL_RANK from the environment when --local_rank was not passed."
    rationale = __doc__
    settles = True
    triggers = ("local_rank", "local-rank")
    examples = (
        Example(
            before=(
                "import argparse\n"
                "parser = argparse.ArgumentParser()\n"
                'parser.add_argument("--local_rank", type=int, default=-1)\n'
                "args = parser.parse_args()\n"
            ),
            after=(
                "import argparse\n"
                "import os\n"
                "parser = argparse.ArgumentParser()\n"
                'parser.add_argument("--local_rank", type=int, default=-1)\n'
                "args = parser.parse_args()\n"
                f"{MARKER}\n"
                'if "LOCAL_RANK" in os.environ and args.local_rank == -1:\n'
                '    args.local_rank = int(os.environ["LOCAL_RANK"])\n'
            ),
        ),
        Example(
            before=(
                "import os\n"
                "def get_args(parser):\n"
                "    parser.add_argument('--local_rank', type=int, default=-1)\n"
                "    return parser.parse_args()\n"
            ),
            after=(
                "import os\n"
                "def get_args(parser):\n"
                "    parser.add_argument('--local_rank', type=int, default=-1)\n"
                "    args = parser.parse_args()\n"
                f"    {MARKER}\n"
                "    if 'LOCAL_RANK' in os.environ and args.local_rank == -1:\n"
                "        args.local_rank = int(os.environ['LOCAL_RANK'])\n"
                "    return args\n"
            ),
        ),
        Example(
            before=(
                "import os\n"
                "parser.add_argument('--local_rank', type=int, default=-1)\n"
                "args = parser.parse_args()\n"
                "if 'LOCAL_RANK' in os.environ: args.local_rank = int(os.environ['LOCAL_RANK'])\n"
            ),
        ),
        Example(
            before=(
                "import os\n"
                "parser.add_argument('--local_rank', type=int,\n"
                "                    default=int(os.getenv('LOCAL_RANK', -1)))\n"
                "args = parser.parse_args()\n"
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        options = find_options(tree)
        if not options:
            return
        option = options[0]
        if any(o.default is not None and _mentions_local_rank_env(o.default) for o in options):
            return
        if _already_reads_env(tree, option.dest):
            return
        if option.default is not None and not (
            int_literal(option.default) is not None
            or (isinstance(option.default, cst.Name) and option.default.value == "None")
        ):
            ctx.report(
                option.call,
                "--local_rank has a non-literal default; read LOCAL_RANK from the environment "
                "after parsing by hand",
            )
            return
        parsers = {o.parser for o in options}
        if _count_parse_statements(tree) == 1:
            parsers = set()  # the only parse in the file is the one that matters
        insertions = _insertions(tree, option, parsers)
        if not insertions:
            ctx.report(
                option.call,
                "--local_rank is defined but its parsed result is not assigned in this file; "
                "read LOCAL_RANK from the environment where the arguments are parsed",
            )
            return
        replacements: dict[cst.CSTNode, Replacement] = dict(insertions)
        for anchor, around in import_fix(tree.module, "os").items():
            present = replacements.get(anchor)
            if isinstance(present, Around):  # the import lands next to the parse statement itself
                around = present.merged(around)
            elif present is not None:
                continue  # the parse statement is rewritten: the next pass adds the import
            replacements[anchor] = around
        first = next(iter(insertions))
        ctx.fix(
            first,
            f"read LOCAL_RANK into .{option.dest} after parsing (torchrun/accelerate pass "
            "it only in the environment)",
            replacements,
        )
