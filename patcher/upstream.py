"""Manifests of the upstream scripts ddpfix targets (``upstream/*.toml``): metadata, never code."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from patcher.manifests import manifest_dir

if TYPE_CHECKING:
    from patcher.rule import Finding

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST_DIR = manifest_dir()


@dataclass(frozen=True)
class PinnedScript:
    repo: str
    commit: str
    path: str
    sha256: str
    fixes: dict[str, int] = field(default_factory=dict)
    unfixed: dict[str, int] = field(default_factory=dict)
    target: str | None = None  # the `ddpfix verify` target for this script, if there is one

    def matches(self, data: bytes) -> bool:
        return hashlib.sha256(data).hexdigest() == self.sha256


def load_manifests(directory: Path = MANIFEST_DIR) -> list[PinnedScript]:
    pins = []
    for manifest in sorted(directory.glob("*.toml")):
        if manifest.parent.name == "targets":
            continue
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        for script in data.get("script", []):
            pins.append(
                PinnedScript(
                    repo=data["repo"],
                    commit=data["commit"],
                    path=script["path"],
                    sha256=script["sha256"],
                    fixes=dict(script.get("fixes", {})),
                    unfixed=dict(script.get("unfixed", {})),
                    target=script.get("target"),
                )
            )
    return pins


def pin(checkout: Path, repo: str, commit: str) -> str:
    """The manifest text for every script in ``checkout`` that some rule changes or reports."""
    from collections import Counter

    from patcher.engine import fix_text
    from patcher.registry import all_rules
    from patcher.source import SourceError, read_source
    from patcher.verify.targets import load_targets

    rules = all_rules()
    targets = {t.path: t.name for t in load_targets().values() if t.repo == repo}
    lines = [
        "# Pinned upstream scripts: metadata only, never their code.",
        f"# Regenerate: ddpfix upstream pin --checkout CHECKOUT --repo {repo} --output FILE",
        f'repo = "{repo}"',
        f'commit = "{commit}"',
        "",
    ]
    for path in sorted(checkout.rglob("*.py")):
        if ".git" in path.parts:
            continue
        try:
            _, findings = fix_text(read_source(path).text, rules)
        except SourceError:
            continue
        if not findings:
            continue
        fixed = Counter(f.code for f in findings if f.fixed)
        unfixed = Counter(f.code for f in findings if not f.fixed)
        lines += [
            "[[script]]",
            f'path = "{path.relative_to(checkout).as_posix()}"',
            f'sha256 = "{hashlib.sha256(path.read_bytes()).hexdigest()}"',
            "fixes = { " + ", ".join(f"{k} = {v}" for k, v in sorted(fixed.items())) + " }",
        ]
        if unfixed:
            lines.append(
                "unfixed = { " + ", ".join(f"{k} = {v}" for k, v in sorted(unfixed.items())) + " }"
            )
        relative = path.relative_to(checkout).as_posix()
        if relative in targets:
            lines.append(f'target = "{targets[relative]}"')
        lines.append("")
    return "\n".join(lines)


@dataclass
class Drift:
    """One pinned (or unpinned) script of a checkout, compared with its pin."""

    path: str
    state: str  # unchanged | changed | missing | new
    problems: list[str] = field(default_factory=list)

    @property
    def broken(self) -> bool:
        return bool(self.problems)

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "state": self.state, "problems": self.problems}


def _counts(findings: Iterable[Finding], fixed: bool) -> dict[str, int]:
    from collections import Counter

    return dict(Counter(f.code for f in findings if f.fixed == fixed))


def _describe(expected: dict[str, int], got: dict[str, int], what: str) -> list[str]:
    problems = []
    for code in sorted(set(expected) | set(got)):
        if expected.get(code, 0) != got.get(code, 0):
            problems.append(
                f"{code} {what}: expected {expected.get(code, 0)}, now {got.get(code, 0)}"
            )
    return problems


def status(
    checkout: Path,
    repo: str | None = None,
    manifests: Path = MANIFEST_DIR,
    verify: Callable[[Path], str | None] | None = None,
) -> list[Drift]:
    """Each pinned script of ``repo`` (or of the manifests whose files are in ``checkout``):
    unchanged, missing, or changed, and then whether its patch still holds; plus scripts some
    rule changes that are not pinned. ``verify(path)`` returns a problem or None."""
    from patcher.engine import fix_text
    from patcher.registry import all_rules
    from patcher.source import SourceError, read_source

    pins = load_manifests(manifests)
    if repo is not None:
        pins = [p for p in pins if p.repo == repo]
    else:
        present = {p.repo for p in pins if (checkout / p.path).exists()}
        pins = [p for p in pins if p.repo in present]
    rules = all_rules()
    drifts = []
    for pin in pins:
        path = checkout / pin.path
        if not path.exists():
            drifts.append(Drift(pin.path, "missing"))
            continue
        if pin.matches(path.read_bytes()):
            drifts.append(Drift(pin.path, "unchanged"))
            continue
        drift = Drift(pin.path, "changed")
        try:
            output, findings = fix_text(read_source(path).text, rules)
        except SourceError as exc:
            drift.problems.append(f"apply fails: {exc}")
            drifts.append(drift)
            continue
        drift.problems += _describe(pin.fixes, _counts(findings, True), "fixes")
        drift.problems += _describe(pin.unfixed, _counts(findings, False), "reports")
        again, _ = fix_text(output, rules)
        if again != output:
            drift.problems.append("a second apply changes the output (not idempotent)")
        if verify is not None and not drift.problems:
            problem = verify(path)
            if problem:
                drift.problems.append(f"verify: {problem}")
        drifts.append(drift)
    pinned = {p.path for p in pins}
    for path in sorted(checkout.rglob("*.py")):
        relative = path.relative_to(checkout).as_posix()
        if relative in pinned or ".git" in path.parts:
            continue
        try:
            _, findings = fix_text(read_source(path).text, rules)
        except SourceError:
            continue
        if any(f.fixed for f in findings):
            drifts.append(Drift(relative, "new"))
    return drifts
