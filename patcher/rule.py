"""What a rule is: a code, its documentation, its examples, and one transformation.

The engine knows nothing about distributed training; everything specific lives in ``patches/``.
A rule receives a :class:`RuleContext` over a shared, indexed tree (``ctx.tree``). It proposes
each rewrite with ``ctx.fix(node, message, {old: new})`` and reports what it cannot rewrite safely
with ``ctx.report(node, message)``. The engine applies the fixes, so rules never walk or rebuild
the whole module themselves. A fix that needs a module declares it (``imports=("os",)``); the
engine adds each ``import x`` once, where it belongs, so fixes needing the same import do not
collide on the import statement.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import libcst as cst

from patcher.tree import Replacement, Tree


@dataclass(frozen=True)
class Finding:
    code: str
    line: int
    column: int
    message: str
    fixed: bool
    #: Hidden by ``# ddpfix: ignore`` or ``per-file-ignores``: not fixed, counted or printed.
    suppressed: bool = False

    def to_json(self) -> dict[str, Any]:
        """``suppressed`` appears only when true, so unsuppressed findings keep their shape."""
        data: dict[str, Any] = {
            "code": self.code,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "fixed": self.fixed,
        }
        if self.suppressed:
            data["suppressed"] = True
        return data


class Reason(str):
    """A post-condition's reason that also names the rules whose fixes most likely broke it
    (``suspects``, rule codes). The engine tries withdrawing those rules' fixes first: one
    trial instead of a bisection over every applied fix, each trial rerunning every pass."""

    suspects: tuple[str, ...]

    def __new__(cls, text: str, suspects: Sequence[str] = ()) -> Reason:
        reason = super().__new__(cls, text)
        reason.suspects = tuple(suspects)
        return reason


#: A property every output must keep, as the rules define it: a module version → what it
#: breaks, by a key that stays the same across versions (→ a one-line reason). The engine
#: withdraws a fix whose output breaks one that its input kept. A reason may be a
#: :class:`Reason` naming the likely culprits.
Postcondition = Callable[[Tree], Mapping[Hashable, str]]


def _script(text: str) -> str:
    """An example written as an indented triple-quoted string (starting with a newline) as the
    script it stands for; any other string is taken as it is."""
    return textwrap.dedent(text[1:]) if text.startswith("\n") else text


@dataclass(frozen=True)
class Example:
    """A before/after pair; ``after is None`` means the code must come out unchanged.

    Write the code as it reads, in a triple-quoted string that starts on the next line, indented
    with the call (it is dedented). ``reports`` is how many findings without a fix the example
    must produce (report-only rules document themselves with a flagged example and a silent
    one); ``messages`` are the messages of every finding it produces, in order."""

    before: str
    after: str | None = None
    reports: int = 0
    messages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "before", _script(self.before))
        if self.after is not None:
            object.__setattr__(self, "after", _script(self.after))


@dataclass(frozen=True)
class Option:
    """One rule option, set in ``[tool.ddpfix.rules.<CODE>]``: its default (whose type is the
    option's type), what it does, and for numbers the smallest value that makes sense. The
    configuration is checked against it when it loads, so a misspelt option or a wrong value
    is a usage error there, not silently the default or an error in every file."""

    default: bool | int | str
    help: str
    minimum: int | None = None
    #: How a valid value reads in an error message ("a whole number of minutes").
    expects: str = ""

    def problem(self, name: str, value: object) -> str | None:
        """Why ``value`` is not valid for this option (None when it is)."""
        if isinstance(self.default, bool):
            return None if isinstance(value, bool) else f"{name} must be true or false"
        if isinstance(self.default, int):
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and (self.minimum is None or value >= self.minimum)
            ):
                return None
            least = "" if self.minimum is None else f" of at least {self.minimum}"
            return f"{name} must be {self.expects or 'a whole number'}{least}"
        return None if isinstance(value, str) else f"{name} must be a string"


@dataclass
class Fix:
    """A finding and the replacements that resolve it; applied together or not at all."""

    finding: Finding
    replacements: Mapping[cst.CSTNode, Replacement]
    #: What else the same rewrite changes, where (a fix that touches several places: each is
    #: named where it happens, and all of them are applied, or withdrawn, together).
    also: tuple[Finding, ...] = ()
    #: Modules the rewrite uses (``import x``, plain names). The engine adds each one the module
    #: does not import yet, once per pass, in alphabetical place among the first run of plain
    #: imports (else after the docstring); a declared import conflicts with no other fix.
    imports: tuple[str, ...] = ()


#: The file being fixed, while the engine fixes it (None for text that came without a path).
SOURCE_PATH: ContextVar[Path | None] = ContextVar("ddpfix_source_path", default=None)


@dataclass
class RuleContext:
    """One rule's view of one module version: the shared index, options, and what it found."""

    tree: Tree
    code: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: What the rule reported (node, message), positioned only when :attr:`findings` is read:
    #: the engine reads only the last pass's, and a line in a rewritten version costs a parse.
    reports: list[tuple[cst.CSTNode, str]] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    #: True when a rule that judges the output (``Rule.judges_output``) runs on the final
    #: version, where its reports count; in the passes before, only its fixes do.
    judging: bool = False

    @property
    def module(self) -> cst.Module:
        return self.tree.module

    @property
    def path(self) -> Path | None:
        """The file being fixed, when the engine was given one: a rule that names another
        file of the project (the module an argument parser lives in) may look at it."""
        return SOURCE_PATH.get()

    @property
    def findings(self) -> list[Finding]:
        """The reports, with their positions in this version."""
        return [self._finding(node, message, fixed=False) for node, message in self.reports]

    def _finding(self, node: cst.CSTNode, message: str, fixed: bool) -> Finding:
        line, column = self.tree.position(node)
        return Finding(self.code, line, column, message, fixed)

    def report(self, node: cst.CSTNode, message: str) -> None:
        """A problem this rule cannot rewrite safely."""
        self.reports.append((node, message))

    def fix(
        self,
        node: cst.CSTNode,
        message: str,
        replacements: Mapping[cst.CSTNode, Replacement],
        also: Sequence[tuple[cst.CSTNode, str]] = (),
        imports: Sequence[str] = (),
    ) -> None:
        """A problem and its rewrite: each key node is replaced by its value. ``also`` names
        the other places the same rewrite changes (node, what happens there). ``imports`` are
        the modules the rewrite uses (``"os"`` for ``import os``): the engine adds those the
        module lacks, so a rule never edits import statements for them."""
        others = tuple(self._finding(n, m, fixed=True) for n, m in also)
        finding = self._finding(node, message, fixed=True)
        self.fixes.append(Fix(finding, dict(replacements), others, tuple(imports)))


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
    #: The options ``[tool.ddpfix.rules.<CODE>]`` may set, by name; a rule reads them with
    #: :meth:`option`.
    options: ClassVar[Mapping[str, Option]] = {}
    #: True when this rule's fixes never create work for any rule (its own or others'): the
    #: engine may then skip the confirming pass. The idempotence tests hold rules to it.
    settles: ClassVar[bool] = False
    #: True for rules whose reports judge the final output (after every fix): the engine takes
    #: their reports from the version it returns only (``RuleContext.judging``), so they never
    #: report what a later pass fixed; their fixes, if any, are proposed in every pass.
    judges_output: ClassVar[bool] = False
    #: Rules this one is only safe together with, and why (a warning when selected alone).
    companions: ClassVar[tuple[str, ...]] = ()
    companion_reason: ClassVar[str] = ""
    #: False for opt-in rules: they run only when selected by their exact code or ``ALL``
    #: (``--select``, ``[tool.ddpfix] select``), never by default or by a prefix such as ``DDP``.
    default: ClassVar[bool] = True

    def option(self, ctx: RuleContext, name: str) -> Any:
        """The configured value of option ``name`` (checked when the config loaded), or its
        declared default."""
        return ctx.options.get(name, self.options[name].default)

    def run(self, ctx: RuleContext) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def may_apply(self, text: str) -> bool:
        return any(trigger in text for trigger in self.triggers)
