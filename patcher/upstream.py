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
