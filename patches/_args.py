"""A call's arguments, as Python binds them: by keyword, by position, or either.

Rules ask "what is ``open``'s mode" or "does ``init_process_group`` already get ``timeout=``";
these answer without each rule looping over ``call.args`` its own way.
"""

from __future__ import annotations

import libcst as cst

__all__ = [
    "argument",
    "has_keyword",
    "keyword_arg",
    "keyword_value",
    "positional_args",
    "positional_values",
]


def keyword_arg(call: cst.Call, name: str) -> cst.Arg | None:
    """The ``name=...`` argument of ``call``; None when it is not given by keyword."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def keyword_value(call: cst.Call, name: str) -> cst.BaseExpression | None:
    """The value given as ``name=...``; None when it is not given by keyword."""
    arg = keyword_arg(call, name)
    return None if arg is None else arg.value


def has_keyword(call: cst.Call, *names: str) -> bool:
    """Whether any of ``names`` is given by keyword."""
    return any(arg.keyword is not None and arg.keyword.value in names for arg in call.args)


def positional_args(call: cst.Call) -> list[cst.Arg]:
    """The plain positional arguments (no keyword, no ``*args``/``**kwargs``), in order."""
    return [arg for arg in call.args if arg.keyword is None and not arg.star]


def positional_values(call: cst.Call) -> list[cst.BaseExpression]:
    """The values of :func:`positional_args`."""
    return [arg.value for arg in positional_args(call)]


def argument(call: cst.Call, position: int, name: str) -> cst.BaseExpression | None:
    """The parameter at ``position`` that is also called ``name``, given either way (the
    keyword wins, as a duplicate would be a TypeError anyway): ``open(path, "w")`` and
    ``open(path, mode="w")`` both give the mode as ``argument(call, 1, "mode")``."""
    value = keyword_value(call, name)
    if value is not None:
        return value
    positional = positional_args(call)
    return positional[position].value if len(positional) > position else None
