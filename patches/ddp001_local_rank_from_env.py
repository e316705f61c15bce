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

from collections.abc import Sequence
from dataclasses import dataclass

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._syntax import (
    dotted_name,
    ensure_import,
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


def find_options(module: cst.Module) -> list[LocalRankOption]:
    """Every ``add_argument("--local_rank", ...)`` (either spelling) in the module."""
    groups: dict[str, str] = {}  # group variable -> parser variable
    options = []
    for node in walk(module, into_functions=True):
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
            call = node.value
            if isinstance(call.func, cst.Attribute) and call.func.attr.value in (
                "add_argument_group",
                "add_mutually_exclusive_group",
            ):
                owner = dotted_name(call.func.value)
                for target in node.targets:
                    name = dotted_name(target.target)
                    if name and owner:
                        groups[name] = owner
        if not (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "add_argument"
        ):
            continue
        strings = _option_strings(node)
        if not any(s in OPTION_NAMES for s in strings):
            continue
        dest_node = _keyword(node, "dest")
        dest = string_value(dest_node) if dest_node is not None else None
        if dest is None:
            long = next(s for s in strings if s.startswith("--"))
            dest = long[2:].replace("-", "_")
        options.append(
            LocalRankOption(node, dotted_name(node.func.value), dest, _keyword(node, "default"))
        )
    return [
        LocalRankOption(o.call, groups.get(o.parser or "", o.parser), o.dest, o.default)
        for o in options
    ]


def _already_reads_env(module: cst.Module, dest: str) -> bool:
    for node in walk(module, into_functions=True):
        if isinstance(node, (cst.Assign, cst.AnnAssign, cst.AugAssign)):
            targets = (
                [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            )
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


class _Inserter(cst.CSTTransformer):
    def __init__(self, module: cst.Module, option: LocalRankOption, parsers: set[str | None]):
        super().__init__()
        self.module = module
        self.option = option
        self.parsers = parsers
        self.quote = preferred_quote(module.code)
        self.inserted: list[cst.CSTNode] = []
        self.blocked: list[cst.CSTNode] = []

    def _wanted(self, call: cst.Call) -> bool:
        assert isinstance(call.func, cst.Attribute)
        return not self.parsers or dotted_name(call.func.value) in self.parsers

    def _guard(self, target: cst.BaseExpression) -> cst.If:
        q, dest = self.quote, self.option.dest
        who = self.module.code_for_node(target)
        default = self.option.default
        if default is None or (isinstance(default, cst.Name) and default.value == "None"):
            unset = f"{who}.{dest} is None"
        else:
            unset = f"{who}.{dest} == {self.module.code_for_node(default)}"
        code = (
            f"if {q}LOCAL_RANK{q} in os.environ and {unset}:\n"
            f"    {who}.{dest} = int(os.environ[{q}LOCAL_RANK{q}])\n"
        )
        statement = cst.parse_statement(code, config=self.module.config_for_parsing)
        assert isinstance(statement, cst.If)
        return statement.with_changes(leading_lines=[cst.EmptyLine(comment=cst.Comment(MARKER))])

    def _rewrite(
        self, original: Sequence[cst.BaseStatement], body: Sequence[cst.BaseStatement]
    ) -> list[cst.BaseStatement]:
        out: list[cst.BaseStatement] = []
        for before, statement in zip(original, body):
            out.append(statement)
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            for small in statement.body:
                found = _parse_target(small)
                if found and self._wanted(found[0]):
                    out.append(self._guard(found[1]))
                    self.inserted.append(before)
                    break
                if isinstance(small, cst.Return) and (call := _parse_call(small.value)):
                    if self._wanted(call) and len(statement.body) == 1:
                        args = cst.Name("args")
                        out[-1] = statement.with_changes(
                            body=[cst.Assign([cst.AssignTarget(args)], call)]
                        )
                        out.append(self._guard(args))
                        out.append(cst.SimpleStatementLine([cst.Return(args)]))
                        self.inserted.append(before)
                    break
        return out

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        return updated_node.with_changes(body=self._rewrite(original_node.body, updated_node.body))

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        return updated_node.with_changes(body=self._rewrite(original_node.body, updated_node.body))


def _count_parse_statements(module: cst.Module) -> int:
    count = 0
    for node in walk(module, into_functions=True):
        if (isinstance(node, cst.Assign) and _parse_target(node)) or (
            isinstance(node, cst.Return) and _parse_call(node.value)
        ):
            count += 1
    return count


class LocalRankFromEnv(Rule):
    code = "DDP001"
    name = "local-rank-from-env"
    summary = "Read LOCAL_RANK from the environment when --local_rank was not passed."
    rationale = __doc__
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

    def run(self, ctx: RuleContext) -> cst.Module:
        module = ctx.module
        options = find_options(module)
        if not options:
            return module
        option = options[0]
        if any(o.default is not None and _mentions_local_rank_env(o.default) for o in options):
            return module
        if _already_reads_env(module, option.dest):
            return module
        if option.default is not None and not (
            int_literal(option.default) is not None
            or (isinstance(option.default, cst.Name) and option.default.value == "None")
        ):
            ctx.report(
                option.call,
                "--local_rank has a non-literal default; read LOCAL_RANK from the environment "
                "after parsing by hand",
                fixed=False,
            )
            return module
        parsers = {o.parser for o in options}
        if _count_parse_statements(module) == 1:
            parsers = set()  # the only parse in the file is the one that matters
        inserter = _Inserter(module, option, parsers)
        updated = module.visit(inserter)
        if not inserter.inserted:
            ctx.report(
                option.call,
                "--local_rank is defined but its parsed result is not assigned in this file; "
                "read LOCAL_RANK from the environment where the arguments are parsed",
                fixed=False,
            )
            return module
        for statement in inserter.inserted:
            ctx.report(
                statement,
                f"read LOCAL_RANK into .{option.dest} after parsing (torchrun/accelerate pass "
                "it only in the environment)",
                fixed=True,
            )
        return ensure_import(updated, "os")
