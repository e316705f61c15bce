"""read → prefilter → parse → rules → render → (diff) → write, for one file at a time."""

from __future__ import annotations

import ast
import gc
import re
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcst as cst

from patcher.imports import added_imports, around_fix, shadowing
from patcher.linemap import LineMap, line_map
from patcher.registry import postconditions
from patcher.rule import SOURCE_PATH, Finding, Fix, Postcondition, Rule, RuleContext
from patcher.source import Source, SourceError, read_source, remove_leftovers, write_atomic
from patcher.suppress import Suppressions, find_suppressions
from patcher.tree import Around, Replacement, Tree, forget, walk

# Lines that only parse as Python 2; used to explain a syntax error, never to decide anything.
_PY2_HINTS = (
    (re.compile(r"^\s*print\s+(?![\s(=.,)\[]|$)"), "print statement"),
    (re.compile(r"^\s*except\s+[\w.]+\s*,\s*\w+\s*:"), "'except X, e:' clause"),
    (re.compile(r"^\s*exec\s+['\"\w]"), "exec statement"),
    (re.compile(r"^\s*raise\s+[\w.]+\s*,\s*"), "'raise E, msg' statement"),
    (re.compile(r"\bur['\"]|<>|`[^`]+`"), "Python 2 literal or operator"),
    (re.compile(r"(?<![\w.])(?:0\d+|\d+[lL])\b"), "Python 2 octal or long literal"),
)


class RuleError(SourceError):
    """A rule produced something it must not; the file is left alone and this is reported."""


@dataclass
class FileResult:
    path: Path
    original: str = ""
    fixed: str = ""
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None
    written: bool = False

    @property
    def changed(self) -> bool:
        return self.error is None and self.fixed != self.original

    @property
    def unfixed(self) -> list[Finding]:
        return [f for f in self.findings if not f.fixed and not f.suppressed]


def describe_syntax_error(text: str, exc: SyntaxError) -> str:
    """Python 2 when the line the parser stopped at holds a Python 2 form; else the parser's own
    error. Only that line: the same text earlier parsed, so it was in a comment or a string
    (a backquoted name in a comment is not Python 2)."""
    lines = text.splitlines()
    if exc.lineno is not None and 1 <= exc.lineno <= len(lines):
        for pattern, what in _PY2_HINTS:
            if pattern.search(lines[exc.lineno - 1]):
                return (
                    f"Python 2 source ({what} at line {exc.lineno}); ddpfix rewrites Python 3 only"
                )
    return f"syntax error at line {exc.lineno}, column {exc.offset or 0}: {exc.msg}"


def validate(text: str) -> ast.Module:
    """Python's own parser decides what is valid (LibCST accepts some Python 2 forms)."""
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise SourceError(describe_syntax_error(text, exc)) from None
    except (RecursionError, MemoryError, ValueError):
        raise SourceError("cannot be parsed (too deeply nested, or NUL bytes)") from None


def parse(text: str) -> tuple[cst.Module, ast.Module]:
    syntax = validate(text)
    try:
        return cst.parse_module(text), syntax
    except cst.ParserSyntaxError as exc:
        raise SourceError(f"syntax error at line {exc.raw_line}: {exc.message}") from None
    except RecursionError:
        raise SourceError("too deeply nested to parse") from None


MAX_PASSES = 10


def _accept(fixes: Sequence[Fix], tree: Tree) -> list[Fix]:
    """The fixes that can be applied together.

    A replaced node is rebuilt from the original, so a fix inside it can go with it only when
    the rebuilt node still holds the fixed node itself (LibCST nodes are immutable, and a rule
    that rebuilds a call or a block keeps the children it does not change): the inner fix is
    then applied inside the rebuilt node, as in a later pass. A statement kept with others added
    around it (``Around``) may have fixes inside. Fixes come in rule order; one that overlaps an
    accepted one otherwise waits for the next pass, where its rule sees the tree with the other
    fix applied.
    """
    taken: set[int] = set()  # every accepted key
    hard: dict[int, set[int]] = {}  # accepted keys that are rebuilt → the nodes their rebuild holds
    above: dict[int, list[int]] = {}  # ancestors of accepted keys → those keys
    accepted = []
    for fix in fixes:
        keys = {id(node) for node in fix.replacements}
        if keys & taken:
            continue
        rebuilt = {id(n): new for n, new in fix.replacements.items() if not isinstance(new, Around)}
        ancestors = {id(a) for node in fix.replacements for a in tree.ancestors(node)}
        if any(keys - hard[a] for a in ancestors if a in hard):
            continue  # inside a rebuilt node that does not keep it, or inside a statement
        held = {key: _held(new) for key, new in rebuilt.items() if key in above}
        if any(set(above[key]) - held[key] for key in held):
            continue  # its rebuild would drop an accepted fix inside it, or is a statement
        taken |= keys
        for key, new in rebuilt.items():
            hard[key] = held[key] if key in held else _held(new)
        for node in fix.replacements:
            for a in tree.ancestors(node):
                above.setdefault(id(a), []).append(id(node))
        accepted.append(fix)
    return accepted


def _shadowed_import(tree: Tree, fix: Fix) -> str | None:
    """Why ``fix`` cannot have the imports it declares: the module binds one of their names to
    something else, which the ``import`` added above it would not survive."""
    for name in fix.imports:
        how = shadowing(tree.module, name, tree.code)
        if how is not None:
            return (
                f"not rewritten: the rewrite needs the module {name}, and `{how}` binds "
                f"{name} to something else here; do it by hand"
            )
    return None


def _held(new: Replacement) -> set[int]:
    """The nodes a rebuilt expression holds, by identity; none for a rebuilt statement or
    block, whose rule decided about the code inside it as it was (DDP011 gates a block where
    DDP012 would add a barrier: the two are not independent)."""
    if not isinstance(new, cst.BaseExpression):
        return set()
    return {id(n) for n in walk(new)}


def _rewrite(tree: Tree, accepted: Sequence[Fix]) -> Tree:
    """The next version: the accepted fixes applied, and each module they declare
    (``Fix.imports``) imported once. An import goes in the same rewrite, next to what a fix adds
    at the same statement; at a statement a fix rebuilds, it is added right after the rewrite."""
    replacements = {k: v for fix in accepted for k, v in fix.replacements.items()}
    names = [name for fix in accepted for name in fix.imports]
    if not names:
        return tree.rewritten(replacements)
    later: list[str] = []
    for anchor, (around, modules) in added_imports(tree.module, names).items():
        present = replacements.get(anchor)
        if present is None:
            replacements[anchor] = around
        elif isinstance(present, Around):
            replacements[anchor] = around_fix(present, around)
        else:
            later.extend(modules)
    tree = tree.rewritten(replacements)
    if later:
        placed = added_imports(tree.module, later)
        tree = tree.rewritten({anchor: around for anchor, (around, _) in placed.items()})
    return tree


def fix_text(
    text: str,
    rules: Sequence[Rule],
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    suppress: Sequence[str] = (),
    checks: Sequence[Postcondition] | None = None,
    named: bool = False,
    path: Path | None = None,
) -> tuple[str, list[Finding]]:
    """Apply ``rules`` to ``text`` until none proposes anything; findings carry lines of ``text``.

    Every pass indexes the current tree once; all rules look at that same version and propose
    fixes; the non-overlapping ones are applied together. One fix can enable another (a
    statement moved behind a rank-0 gate), so passes repeat until a pass proposes nothing, or
    until every applied fix came from a rule declared to settle (``Rule.settles``): the result
    is a fixed point, which is what makes ``apply`` idempotent.

    Findings suppressed by ``# ddpfix: ignore`` comments in ``text`` or by the selectors in
    ``suppress`` (``per-file-ignores``) are returned marked, and their fixes are not applied.

    ``checks`` are the post-conditions every output must keep (default: the rules' own,
    :func:`patcher.registry.postconditions`); a fix that breaks one is withdrawn and reported.

    A text no rule's trigger strings occur in is returned as it is without parsing, unless it
    is ``named`` (a file the user named): that one is still validated, so a syntax error or
    Python 2 source is an error there, never "1 file checked".

    ``path`` is the file ``text`` was read from, which rules may use to look at its siblings
    (:attr:`patcher.rule.RuleContext.path`).
    """
    options = options or {}
    if not any(rule.may_apply(text) for rule in rules):
        if named:
            validate(text)
        return text, []
    token = SOURCE_PATH.set(path)
    try:
        with _fewer_collections():
            try:
                return _fix_parsed(text, rules, options, suppress, checks)
            finally:
                forget()  # before the collector runs again: the trees then go by refcount
    finally:
        SOURCE_PATH.reset(token)


#: The youngest generation's threshold while the engine runs (Python's default is 700).
YOUNG_THRESHOLD = 100_000


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Collect the youngest generation less often while a file is fixed.

    Parsing, indexing and rewriting allocate hundreds of thousands of small objects that live as
    long as their tree version, few of them garbage. With the default threshold the collector
    ran every 700 allocations and took about a fifth of the engine's time; the garbage is
    collected all the same, later. The previous thresholds come back afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _fix_parsed(
    text: str,
    rules: Sequence[Rule],
    options: Mapping[str, Mapping[str, Any]],
    suppress: Sequence[str],
    checks: Sequence[Postcondition] | None,
) -> tuple[str, list[Finding]]:
    """:func:`fix_text` past the prefilter."""
    suppressions = find_suppressions(text, suppress)
    module, syntax = parse(text)
    first = Tree(module, text, syntax)
    checks = postconditions() if checks is None else checks
    banned: dict[FixKey, str] = {}
    versions: dict[str, _Version] = {}
    current, last, findings, applied = _passes(
        text, first, rules, options, suppressions, banned, versions
    )
    if current != text and checks:
        current, last, findings = _withdraw_unsafe(
            text,
            first,
            rules,
            options,
            suppressions,
            checks,
            (current, last, findings, applied),
            versions,
        )
    _judge(text, current, last, rules, options, suppressions, findings)
    if current != text:
        try:
            last.check_syntax()  # parses the output once more, as Python would
        except SyntaxError as exc:  # pragma: no cover - a rule bug; never write such a file
            msg = f"rules produced invalid Python ({exc.msg} at line {exc.lineno})"
            raise RuleError(msg) from None
    ordered = sorted(findings.values(), key=lambda f: (f.line, f.code, f.column))
    return current, ordered


#: A fix as the engine recognises it again in a later run: (code, line in the input, message).
FixKey = tuple[str, int, str]
_Run = tuple[str, Tree, dict[FixKey, Finding], list[FixKey]]


@dataclass
class _Version:
    """What the rules made of one version: a run that withdraws a fix redoes the passes from
    the input, and reaches the versions before that fix again (the rules answer the same)."""

    tree: Tree
    fixes: list[Fix]
    contexts: list[RuleContext]  # the reporting rules' (not those that judge the output)


def _passes(
    text: str,
    tree: Tree,
    rules: Sequence[Rule],
    options: Mapping[str, Mapping[str, Any]],
    suppressions: Suppressions,
    banned: Mapping[FixKey, str],
    versions: dict[str, _Version],
) -> _Run:
    """The passes up to a fixed point; fixes in ``banned`` are reported, never applied.
    ``versions`` keeps what the rules made of each version, by its text, for the next run.

    The findings are every fix applied and what the last pass reported: a report made on an
    earlier version may have been resolved by a later fix (DDP001 declines to read LOCAL_RANK
    while the model is unwrapped; DDP014 then wraps it, and DDP001 reads it)."""
    settling = {rule.code for rule in rules if rule.settles}
    current = text
    done: dict[FixKey, Finding] = {}  # the fixes applied, over every pass
    applied: list[FixKey] = []
    # A report describes the version it was made on: only the last pass's count, so they are
    # positioned (which costs an `ast` parse in a rewritten version) once the passes are over.
    contexts: list[RuleContext] = []
    unapplied: list[Finding] = []  # fixes of the last pass reported instead, after its reports
    mapping = line_map(text, current)
    for _ in range(MAX_PASSES):
        mapping = line_map(text, current)
        unapplied = []
        known = versions.get(current)
        if known is None:
            known = versions[current] = _run_rules(tree, rules, options)
        tree, fixes, contexts = known.tree, list(known.fixes), known.contexts
        # ruff does not fix a noqa'd violation: a suppressed fix is recorded, never applied;
        # a fix withdrawn by a post-condition is reported with the reason instead.
        unsuppressed: list[Fix] = []
        for fix in fixes:
            key = _key(fix.finding, mapping)
            if key in banned:
                f = fix.finding
                why = f"{_quoted_original(f.message, mapping)}; not rewritten: {banned[key]}"
                unapplied.append(Finding(f.code, f.line, f.column, why, False))
            elif suppressions.covers(fix.finding.code, key[1]):
                unapplied.append(fix.finding)
            elif (shadowed := _shadowed_import(tree, fix)) is not None:
                f = fix.finding
                unapplied.append(
                    Finding(f.code, f.line, f.column, f"{f.message}; {shadowed}", False)
                )
            else:
                unsuppressed.append(fix)
        fixes = unsuppressed
        accepted = _accept(fixes, tree)
        if not accepted:
            break
        for fix in accepted:
            _record(done, fix.finding, mapping, suppressions)
            for other in fix.also:
                _record(done, other, mapping, suppressions)
            applied.append(_key(fix.finding, mapping))
        tree = _rewrite(tree, accepted)
        current = tree.code
        if len(accepted) == len(fixes) and all(f.finding.code in settling for f in accepted):
            if not _judging_fixes(tree, rules, options):
                break  # nothing deferred, and nothing applied can create new work
    else:  # pragma: no cover - would mean two rules undo each other
        raise RuleError(f"rules did not reach a fixed point in {MAX_PASSES} passes")
    findings: dict[FixKey, Finding] = {}  # what the last pass reported
    for ctx in contexts:
        for f in ctx.findings:
            _record(findings, f, mapping, suppressions)
    for f in unapplied:
        _record(findings, f, mapping, suppressions)
    for key, finding in findings.items():
        done.setdefault(key, finding)
    return current, tree, done, applied


def _run_rules(
    tree: Tree, rules: Sequence[Rule], options: Mapping[str, Mapping[str, Any]]
) -> _Version:
    """One pass of every rule over ``tree``."""
    contexts: list[RuleContext] = []
    fixes: list[Fix] = []
    for rule in rules:
        if not rule.may_apply(tree.code):
            continue
        ctx = RuleContext(tree=tree, code=rule.code, options=options.get(rule.code, {}))
        rule.run(ctx)
        fixes.extend(ctx.fixes)
        if not rule.judges_output:  # its reports are made on the final version (_judge)
            contexts.append(ctx)
    return _Version(tree, fixes, contexts)


def _judging_fixes(
    tree: Tree, rules: Sequence[Rule], options: Mapping[str, Mapping[str, Any]]
) -> bool:
    """Whether a rule that judges the output would fix ``tree``: settling fixes never create
    work for other rules' passes, but a judging rule reads the whole result, so the passes only
    stop when it has nothing to fix either (else a second ``apply`` would fix it)."""
    for rule in rules:
        if rule.judges_output and rule.may_apply(tree.code):
            ctx = RuleContext(tree=tree, code=rule.code, options=options.get(rule.code, {}))
            rule.run(ctx)
            if ctx.fixes:
                return True
    return False


def _judge(
    text: str,
    current: str,
    last: Tree,
    rules: Sequence[Rule],
    options: Mapping[str, Mapping[str, Any]],
    suppressions: Suppressions,
    findings: dict[FixKey, Finding],
) -> None:
    """Rules that judge the output (``Rule.judges_output``) report once, on the final version:
    what they report is what the user gets, not what a later pass already fixed. (They fix in
    the passes like any rule; a fix one proposes only here, on a version no pass ran it on, is
    reported unfixed unless the rule already has a finding on that line, such as the fix
    withdrawn by a post-condition.)"""
    mapping = line_map(text, current)
    for rule in rules:
        if rule.judges_output and rule.may_apply(current):
            ctx = RuleContext(
                tree=last, code=rule.code, options=options.get(rule.code, {}), judging=True
            )
            rule.run(ctx)
            for f in ctx.findings:
                _record(findings, f, mapping, suppressions)
            for fix in ctx.fixes:
                f = fix.finding
                line = mapping.to_original(f.line)
                if not any(key[0] == f.code and key[1] == line for key in findings):
                    unfixed = Finding(f.code, f.line, f.column, f.message, False)
                    _record(findings, unfixed, mapping, suppressions)


#: A line number quoted in a message ("the data are sharded across ranks (line 38)") is one
#: of the version the rule ran on, which other fixes shift: not part of what names a fix.
QUOTED_LINE = re.compile(r"\b(lines?) (\d+)")


def _quoted_original(message: str, mapping: LineMap) -> str:
    """``message`` with the line numbers it quotes taken back to the input: a fix reported
    instead of applied is reported on the input's lines, from a version other fixes shifted."""
    return QUOTED_LINE.sub(
        lambda found: f"{found.group(1)} {mapping.to_original(int(found.group(2)))}", message
    )


def _key(f: Finding, mapping: LineMap) -> FixKey:
    """The fix as a later run recognises it: its line in the input, and its message without
    the line numbers it quotes (a fix withdrawn in one run must stay withdrawn in a run where
    another fix added a line above what it quotes)."""
    return (f.code, mapping.to_original(f.line), QUOTED_LINE.sub(r"\1 #", f.message))


def _broken(tree: Tree, checks: Sequence[Postcondition]) -> dict[Hashable, str]:
    found: dict[Hashable, str] = {}
    for check in checks:
        found.update(check(tree))
    return found


def _culprit(
    key: Hashable,
    why: str,
    candidates: list[FixKey],
    banned: Mapping[FixKey, str],
    checks: Sequence[Postcondition],
    run: Callable[[Mapping[FixKey, str]], _Run],
    suspects: Sequence[str] = (),
) -> tuple[list[FixKey], _Run] | None:
    """The applied fixes whose withdrawal removes violation ``key``, and the run without them.

    First the fixes of the rules the post-condition suspects (``suspects``, from a
    :class:`Reason`), each alone: a right guess costs one run; then the smallest set of them
    (two gates of one save, each harmless alone). Then the one fix that explains
    it, by bisection over the candidates (a run costs a whole pass sequence): withdraw half of
    them; if the violation goes, the culprit is in that half, else in the other; the fix found
    is confirmed alone. When no single fix explains it (two fixes that are harmless alone:
    DDP001 wakes the local-rank gates, DDP008 gates on the global rank, and only together leave
    a name unbound on the other ranks), the smallest set found by withdrawing all of them and
    putting back each one whose withdrawal is not needed. None when even withdrawing every
    candidate leaves the violation."""
    named = [c for c in candidates if c[0] in suspects]
    for suspect in named:
        trial = run({**banned, suspect: why})
        if key not in _broken(trial[1], checks):
            return [suspect], trial
    if len(named) > 1:  # together, then only those needed: fewer runs than over every fix
        found = _smallest(key, named, banned, checks, run, why)
        if found is not None:
            return found
    pool = list(candidates)
    while len(pool) > 1:
        half = pool[: len(pool) // 2]
        trial = run({**banned, **{c: why for c in half}})
        pool = half if key not in _broken(trial[1], checks) else pool[len(pool) // 2 :]
    if pool:
        trial = run({**banned, pool[0]: why})
        if key not in _broken(trial[1], checks):
            return [pool[0]], trial
    return _smallest(key, candidates, banned, checks, run, why)


def _smallest(
    key: Hashable,
    candidates: list[FixKey],
    banned: Mapping[FixKey, str],
    checks: Sequence[Postcondition],
    run: Callable[[Mapping[FixKey, str]], _Run],
    why: str,
) -> tuple[list[FixKey], _Run] | None:
    """The smallest set of ``candidates`` found whose withdrawal removes violation ``key``:
    all of them, then each put back whose withdrawal is not needed; None when withdrawing all
    of them leaves it."""
    needed = list(candidates)
    trial = run({**banned, **{c: why for c in needed}})
    if key in _broken(trial[1], checks):
        return None
    for candidate in list(needed):
        rest = [c for c in needed if c != candidate]
        attempt = run({**banned, **{c: why for c in rest}})
        if key not in _broken(attempt[1], checks):
            needed, trial = rest, attempt
    return needed, trial


def _withdraw_unsafe(
    text: str,
    first: Tree,
    rules: Sequence[Rule],
    options: Mapping[str, Mapping[str, Any]],
    suppressions: Suppressions,
    checks: Sequence[Postcondition],
    run: _Run,
    versions: dict[str, _Version],
) -> tuple[str, Tree, dict[FixKey, Finding]]:
    """Withdraw the fixes that break a post-condition the input kept.

    The rules' output is compared with their input, not pass by pass: fixes cooperate (one
    gates an evaluation, the next moves the reads of its results inside), and only the whole
    must be safe. A violation the output has and the input had not is pinned on the applied fix
    (or the smallest set of fixes) whose withdrawal removes it; a violation that cannot be pinned
    makes every fix go, and the file is left as it was with every finding reported."""
    current, last, findings, applied = run
    if not _broken(last, checks):
        return current, last, findings  # nothing broken: no need to look at the input
    before = _broken(first, checks)
    banned: dict[FixKey, str] = {}
    runs: dict[frozenset[tuple[FixKey, str]], _Run] = {}

    def trials(ban: Mapping[FixKey, str]) -> _Run:
        """A run without the fixes in ``ban``; the same ban is run once (the bisection's
        last half is the fix it then confirms alone)."""
        wanted = frozenset(ban.items())
        if wanted not in runs:
            runs[wanted] = _passes(text, first, rules, options, suppressions, ban, versions)
        return runs[wanted]

    for _ in range(len(applied) + 1):
        introduced = {k: v for k, v in _broken(last, checks).items() if k not in before}
        if not introduced:
            return current, last, findings
        key, reason = next(iter(introduced.items()))
        why = str(reason)
        found = _culprit(
            key,
            why,
            [a for a in applied if a not in banned],
            banned,
            checks,
            trials,
            getattr(reason, "suspects", ()),
        )
        if found is None:
            break
        banned.update({culprit: why for culprit in found[0]})
        current, last, findings, applied = found[1]
    everything = {a: "a post-condition of the rank model failed" for a in applied}
    banned.update({a: why for a, why in everything.items() if a not in banned})
    current, last, findings, _ = _passes(
        text, first, rules, options, suppressions, banned, versions
    )
    return current, last, findings


def _record(
    found: dict[tuple[str, int, str], Finding],
    f: Finding,
    mapping: LineMap,
    suppressions: Suppressions,
) -> None:
    line = mapping.to_original(f.line)
    hidden = suppressions.covers(f.code, line)  # then its fix is not in the output either
    finding = Finding(f.code, line, f.column, f.message, f.fixed and not hidden, hidden)
    found.setdefault((f.code, line, f.message), finding)


def process_file(
    path: Path,
    rules: Sequence[Rule],
    options: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    write: bool,
    suppress: Sequence[str] = (),
    named: bool = False,
) -> FileResult:
    """Run ``rules`` on one file; with ``write`` the file is replaced atomically when changed.

    ``named``: the user named this file (not found by walking a directory), so it is validated
    even when the prefilter finds nothing to do in it."""
    result = FileResult(path=path)
    try:
        if write and path.is_file():
            remove_leftovers(path.resolve())
        source: Source = read_source(path)
        result.original = source.text
        result.fixed, result.findings = fix_text(
            source.text, rules, options, suppress=suppress, named=named, path=path
        )
        if write and result.changed:
            write_atomic(path, source.encode(result.fixed))
            result.written = True
    except SourceError as exc:
        result.error = str(exc)
        result.fixed = result.original
        result.findings = []
    except Exception as exc:  # a bug in a rule must not cost the user a traceback or a file
        result.error = f"internal error ({type(exc).__name__}: {exc}); file left unchanged"
        result.fixed = result.original
        result.findings = []
    return result
