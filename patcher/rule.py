"""What a rule is: a code, its documentation, its examples, and one transformation.

The engine knows nothing about distributed training; everything specific lives in ``patches/``.
A rule receives a :class:`RuleContext`, reads ``ctx.module``, reports what it found with
``ctx.report`` and returns the (possibly) rewritten module. Reporting a finding with
``fixed=False`` means the rule saw a problem it cannot rewrite safely.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider


@dataclass(frozen=True)
class Finding:
    code: str
    line: int
    column: int
    message: str
    fixed: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "fixed": self.fixed,
        }


@dataclass(frozen=True)
class Example:
    """A before/after pair; ``after is None`` means the code must come out unchanged."""

    before: str
    after: str | None = None


@dataclass
class RuleContext:
    """One rule's view of one file: the tree, lazily computed positions, and its findings."""

    module: cst.Module
    code: str
    options: Mapping[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    _wrapper: MetadataWrapper | None = None
    _positions: Mapping[cst.CSTNode, Any] | None = None

    def __post_init__(self) -> None:
        # The parsed tree is private to the engine, so the defensive deep copy is not needed;
        # metadata then refers to the very nodes the rule visits.
        self._wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)

    @property
    def wrapper(self) -> MetadataWrapper:
        assert self._wrapper is not None
        return self._wrapper

    def position(self, node: cst.CSTNode) -> tuple[int, int]:
        if self._positions is None:
            self._positions = self.wrapper.resolve(PositionProvider)
        start = self._positions[node].start
        return start.line, start.column + 1

    def report(self, node: cst.CSTNode, message: str, *, fixed: bool) -> None:
        line, column = self.position(node)
        self.findings.append(Finding(self.code, line, column, message, fixed))


class Rule:
    """Base class of every rule in ``patches/``.

    Subclasses set the class attributes and implement :meth:`run`. ``triggers`` are plain
    substrings: a file containing none of them is skipped before parsing.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    summary: ClassVar[str]
    rationale: ClassVar[str]
    triggers: ClassVar[tuple[str, ...]]
    examples: ClassVar[tuple[Example, ...]] = ()
    #: Rules this one is only safe together with, and why (a warning when selected alone).
    companions: ClassVar[tuple[str, ...]] = ()
    companion_reason: ClassVar[str] = ""

    def run(self, ctx: RuleContext) -> cst.Module:  # pragma: no cover - interface
        raise NotImplementedError

    def may_apply(self, text: str) -> bool:
        return any(trigger in text for trigger in self.triggers)
