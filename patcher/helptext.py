"""``--help`` as click itself writes it, without typer's decorations.

typer 0.2x prints argument metavars as ``{PATH...}...`` and ``[[-- ARGS...]]...`` in the usage
line and adds type labels (``<list[Path]>``, ``<int>``); this command class prints the metavar a
parameter declares (else its name), and click's names for value types (``INTEGER``, ``PATH``).
Parameters, contexts and formatters are duck-typed: typer 0.2x carries its own copy of click
(``typer._click``), older typers use click itself.
"""

from __future__ import annotations

import re
from typing import Any

from typer.core import TyperCommand

_LABEL = re.compile(r" <([^<>]*)>(\.\.\.)?$")
_CLICK_NAMES = {"int": "INTEGER", "str": "TEXT", "float": "FLOAT", "path": "PATH", "bool": ""}


def _argument(param: Any) -> str:
    return str(param.metavar or str(param.name or "").upper())


def _value_label(match: re.Match[str]) -> str:
    label = match.group(1)
    name = f"[{label}]" if "|" in label else _CLICK_NAMES.get(label.lower(), label.upper())
    return f" {name}{match.group(2) or ''}" if name else ""


class HelpCommand(TyperCommand):
    """A typer command whose usage line and parameter list carry only what the code declares."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        params = self.get_params(ctx)
        pieces += [_argument(p) for p in params if p.param_type_name == "argument"]
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument(param), record[1]))
            else:
                options.append((_LABEL.sub(_value_label, record[0]), record[1]))
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
