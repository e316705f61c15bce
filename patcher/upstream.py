"""Manifests of the upstream scripts ddpfix targets (``upstream/*.toml``): metadata, never code."""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST_DIR = Path(__file__).resolve().parent.parent / "upstream"


@dataclass(frozen=True)
class PinnedScript:
    repo: str
    commit: str
    path: str
    sha256: str
    fixes: dict[str, int] = field(default_factory=dict)
    unfixed: dict[str, int] = field(default_factory=dict)

    def matches(self, data: bytes) -> bool:
        return hashlib.sha256(data).hexdigest() == self.sha256


def load_manifests(directory: Path = MANIFEST_DIR) -> list[PinnedScript]:
    pins = []
    for manifest in sorted(directory.glob("*.toml")):
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
                )
            )
    return pins


def pin(checkout: Path, repo: str, commit: str) -> str:
    """The manifest text for every script in ``checkout`` that some rule changes or reports."""
    from collections import Counter

    from patcher.engine import fix_text
    from patcher.registry import all_rules
    from patcher.source import SourceError, read_source

    rules = all_rules()
    lines = [
        "# Pinned upstream scripts: metadata only, never their code.",
        f"# Regenerate: python -m patcher.upstream CHECKOUT {repo} COMMIT > upstream/<name>.toml",
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
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 4:
        sys.exit("usage: python -m patcher.upstream CHECKOUT OWNER/NAME COMMIT")
    print(pin(Path(sys.argv[1]), sys.argv[2], sys.argv[3]), end="")
