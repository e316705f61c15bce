"""argparse as scripts use it: the options a parser declares and the statements that parse.

DDP001 adds the LOCAL_RANK read after the parse of the parser that declares ``--local_rank``;
DDP002 adds the other spelling to that declaration. Both find them here.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from patcher.tree import Tree
from patches._args import keyword_value
from patches._syntax import dotted_name, string_value

#: The spellings of the local-rank option: torch < 2.0's launcher passes the first, later ones
#: the second.
LOCAL_RANK_OPTIONS = ("--local_rank", "--local-rank")
#: Methods that parse the command line into a namespace.
PARSE_METHODS = ("parse_args", "parse_known_args")
_GROUPS = ("add_argument_group", "add_mutually_exclusive_group")


@dataclass(frozen=True)
class ArgparseOption:
    """One ``add_argument(...)``: the call, the parser it belongs to (through argument groups),
    where the value lands (``dest``) and its ``default=`` expression if given."""

    call: cst.Call
    parser: str | None
    dest: str
    default: cst.BaseExpression | None


def option_strings(call: cst.Call) -> list[str]:
    """The leading string arguments of ``add_argument`` (``"-l", "--local_rank"``)."""
    strings = []
    for arg in call.args:
        if arg.keyword is not None or arg.star:
            break
        value = string_value(arg.value)
        if value is None:
            break
        strings.append(value)
    return strings


def _group_parsers(tree: Tree) -> dict[str, str]:
    """Argument group variable → the parser variable it was made from."""
    groups: dict[str, str] = {}
    for node in tree.nodes(cst.Assign):
        call = node.value
        if (
            type(call) is cst.Call
            and type(call.func) is cst.Attribute
            and call.func.attr.value in _GROUPS
        ):
            owner = dotted_name(call.func.value)
            for target in node.targets:
                name = dotted_name(target.target)
                if name and owner:
                    groups[name] = owner
    return groups


def find_options(tree: Tree, names: tuple[str, ...]) -> list[ArgparseOption]:
    """Every ``add_argument`` call in the module that declares one of the option ``names``."""
    groups = _group_parsers(tree)
    options = []
    for node in tree.nodes(cst.Call):
        if not (type(node.func) is cst.Attribute and node.func.attr.value == "add_argument"):
            continue
        strings = option_strings(node)
        if not any(s in names for s in strings):
            continue
        dest_node = keyword_value(node, "dest")
        dest = string_value(dest_node) if dest_node is not None else None
        if dest is None:
            long = next(s for s in strings if s.startswith("--"))
            dest = long[2:].replace("-", "_")
        parser = dotted_name(node.func.value)
        parser = groups.get(parser or "", parser)
        options.append(ArgparseOption(node, parser, dest, keyword_value(node, "default")))
    return options


def local_rank_options(tree: Tree) -> list[ArgparseOption]:
    """Every ``add_argument("--local_rank", ...)`` (either spelling) in the module."""
    return find_options(tree, LOCAL_RANK_OPTIONS)


def parse_call(
    node: cst.CSTNode | None, methods: tuple[str, ...] = PARSE_METHODS
) -> cst.Call | None:
    """``node`` if it is a ``<parser>.parse_args()``-like call (any of ``methods``)."""
    if (
        type(node) is cst.Call
        and type(node.func) is cst.Attribute
        and node.func.attr.value in methods
    ):
        return node
    return None


def parse_target(statement: cst.BaseSmallStatement) -> tuple[cst.Call, cst.BaseExpression] | None:
    """``args = p.parse_args()`` / ``args, rest = p.parse_known_args()`` → (call, args)."""
    if type(statement) is not cst.Assign or len(statement.targets) != 1:
        return None
    call = parse_call(statement.value)
    if call is None:
        return None
    target: cst.BaseExpression = statement.targets[0].target
    if isinstance(target, (cst.Tuple, cst.List)) and target.elements:
        target = target.elements[0].value
    if isinstance(target, (cst.Name, cst.Attribute)):
        return call, target
    return None
