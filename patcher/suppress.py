"""Findings the user has accepted: ``# ddpfix: ignore[CODE]`` comments and ``per-file-ignores``.

They behave like ruff's ``# noqa`` and ``per-file-ignores``: a suppressed finding is not fixed,
not counted in exit codes or the summary, and not printed unless ``--show-suppressed`` asks.
Comments are read with :mod:`tokenize` from the original text, so a marker inside a string literal
is data, not a directive. Stdlib only: this runs on every file, before any rule does.
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: Selector meaning every rule (as in ``--select ALL``); a bare ``# ddpfix: ignore`` means it.
ALL = "ALL"

# ``# ddpfix: ignore`` alone, or with a bracketed list of codes or prefixes. An unclosed bracket is
# no directive at all, so a typo never widens into "ignore everything".
_DIRECTIVE = re.compile(
    r"#\s*ddpfix\s*:\s*ignore(?:\s*\[(?P<codes>[^\]]*)\]|(?![\w-]|\s*\[))", re.IGNORECASE
)
_SEPARATOR = re.compile(r"[\s,]+")


def matches(selector: str, code: str) -> bool:
    """``selector`` is a code, a prefix of codes (``DDP00``) or ``ALL``, as in ``--select``."""
    return selector == ALL or code.startswith(selector)


def unknown_selectors(selectors: Iterable[str], codes: Sequence[str]) -> list[str]:
    """The selectors that match no rule code (a misspelt code would silently suppress nothing)."""
    return [s for s in selectors if not any(matches(s, code) for code in codes)]


def directive_codes(comment: str) -> frozenset[str]:
    """The selectors one comment suppresses; empty when it holds no directive."""
    found: set[str] = set()
    for match in _DIRECTIVE.finditer(comment):
        codes = match.group("codes")
        if codes is None:
            found.add(ALL)
        else:
            found.update(c.upper() for c in _SEPARATOR.split(codes) if c)
    return frozenset(found)


@dataclass(frozen=True)
class Suppressions:
    """What one file suppresses: selectors per original line, and for the whole file."""

    by_line: Mapping[int, frozenset[str]] = field(default_factory=dict)
    whole_file: tuple[str, ...] = ()

    def covers(self, code: str, line: int) -> bool:
        """Whether a finding of ``code`` reported at ``line`` (1-based, original text) is hidden."""
        if any(matches(s, code) for s in self.whole_file):
            return True
        return any(matches(s, code) for s in self.by_line.get(line, ()))


def find_suppressions(text: str, whole_file: Sequence[str] = ()) -> Suppressions:
    """Directives in the comments of ``text``.

    A directive covers its own line. On the last line of a statement that spans several lines
    (brackets, backslashes, a multi-line string) it covers every line of that statement, as
    ruff's ``noqa`` does, since a formatter may have moved the comment there.
    """
    whole = tuple(whole_file)
    if "ddpfix" not in text.lower():  # the common case: no tokenizing at all
        return Suppressions(whole_file=whole)
    by_line: dict[int, set[str]] = {}
    start: int | None = None  # first line of the current statement
    pending: list[tuple[int, frozenset[str]]] = []  # directives seen in the current statement
    skipped = {tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            row = token.start[0]
            if token.type == tokenize.COMMENT:
                codes = directive_codes(token.string)
                if codes:
                    by_line.setdefault(row, set()).update(codes)
                    pending.append((row, codes))
            elif token.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                for where, codes in pending:
                    if start is not None and where == row:
                        for line in range(start, row):
                            by_line.setdefault(line, set()).update(codes)
                start, pending = None, []
            elif token.type not in skipped and start is None:
                start = row
            if token.type == tokenize.NL and start is None:
                pending = []  # a comment-only line is not part of the next statement
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - the text parsed already
        pass
    return Suppressions({k: frozenset(v) for k, v in by_line.items()}, whole)


def _candidates(path: Path, root: Path | None) -> list[str]:
    """The spellings of ``path`` a pattern may match: relative to ``root``, absolute, basename."""
    absolute = Path(os.path.abspath(path))
    names = [absolute.as_posix()]
    if root is not None:
        for spelling in (absolute, path.resolve()):
            try:
                names.append(spelling.relative_to(root).as_posix())
            except ValueError:
                continue
    return names


def file_codes(
    path: Path, per_file_ignores: Iterable[tuple[str, Sequence[str]]], root: Path | None
) -> tuple[str, ...]:
    """The selectors ``per-file-ignores`` suppresses in ``path``.

    Patterns are globs relative to ``root`` (the directory holding ``pyproject.toml``), or
    absolute; ``*`` may cross ``/`` and ``**/`` may match no directory, as in ruff. A pattern
    without a slash also matches the file's name in any directory.
    """
    names = _candidates(path, root)
    codes: list[str] = []
    for pattern, selectors in per_file_ignores:
        pattern = pattern[2:] if pattern.startswith("./") else pattern
        variants = {pattern, pattern.replace("**/", "")}
        spellings = names if "/" in pattern else [*names, path.name]
        if any(fnmatch.fnmatchcase(n, v) for n in spellings for v in variants):
            codes.extend(s for s in selectors if s not in codes)
    return tuple(codes)
