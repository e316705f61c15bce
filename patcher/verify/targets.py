"""Verify targets (``upstream/targets/*.toml``) and how a script is matched to one.

Identification is by exact sha256 first, then by a structural fingerprint: the strings a script is
recognisable by (checkpoint and predictions names, metric keys, its argparse flags and function
names). A fork that adds flags, renames files or drops sampling still shares most of them.
"""

from __future__ import annotations

import hashlib
import posixpath
import sys
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from patcher.manifests import manifest_dir
from patcher.tree import walk

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TARGET_DIR = manifest_dir() / "targets"
MATCH_THRESHOLD = 0.7


class TargetError(ValueError):
    pass


@dataclass(frozen=True)
class ResultsFile:
    path: str
    format: str


@dataclass(frozen=True)
class Target:
    name: str
    title: str
    repo: str
    commit: str
    path: str
    sha256: str
    model_type: str
    dataset: str
    args: tuple[str, ...]
    checkpoints: tuple[str, ...]
    results: tuple[ResultsFile, ...]
    fingerprint: frozenset[str]
    #: Where the script reads its data from when no flag names it, relative to its directory
    #: (TypePrediction's dataset builder reads ``../dataset``); verify puts the data there too.
    data_at: str = ""
    #: The width of the tiny model (0: the family's own, 64): a script whose own code hard-codes
    #: the pretrained model's width (WebQuery's head, ``nn.Linear(768*4, 768)``) gets a tiny model
    #: that wide, with the family's few layers and heads and small vocabulary.
    hidden_size: int = 0

    def script_args(self, *, model: Path, data: Path, output: Path) -> list[str]:
        values = {"model": str(model), "data": str(data), "output": str(output)}
        return [arg.format(**values) for arg in self.args]

    @property
    def harness_flags(self) -> frozenset[str]:
        """The flags verify fills in (model, data, output): they win over the user's."""
        from patcher.verify.cmdline import flag, groups

        return frozenset(flag(g) for g in groups(self.args) if any("{" in a for a in g))


def _target(path: Path) -> Target:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        results = tuple(ResultsFile(r["path"], r["format"]) for r in data.get("results", []))
        for result in results:
            kind = result.format.partition(":")[0]
            if kind not in ("tsv", "jsonl"):
                raise TargetError(f"{path.name}: unknown results format {result.format!r}")
        return Target(
            name=data["name"],
            title=data["title"],
            repo=data["repo"],
            commit=data.get("commit", ""),
            path=data["path"],
            sha256=data.get("sha256", ""),
            model_type=data["model_type"],
            dataset=data["dataset"],
            args=tuple(data["args"]),
            checkpoints=tuple(data.get("checkpoints", [])),
            results=results,
            fingerprint=frozenset(data.get("fingerprint", [])),
            data_at=_data_at(path, data.get("data_at", "")),
            hidden_size=_hidden_size(path, data.get("hidden_size", 0)),
        )
    except (KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise TargetError(f"{path}: invalid target manifest ({exc})") from None


def _data_at(path: Path, value: str) -> str:
    """``value`` if it is a relative path that stays in the sandbox: its directory, or beside it
    (the sandbox holds the copied directory as ``code/``, so one ``..`` is the most allowed)."""
    inside = posixpath.normpath(posixpath.join("code", value)) if value else ""
    if value and (value.startswith("/") or inside in ("", ".", "code") or inside.startswith("..")):
        raise TargetError(f"{path.name}: data_at {value!r} must name a directory in the sandbox")
    return value


def _hidden_size(path: Path, value: object) -> int:
    """``value`` if it is a width the tiny models can take: a positive even whole number (their
    two attention heads split it)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value % 2:
        raise TargetError(f"{path.name}: hidden_size {value!r} must be a positive even number")
    return value


def load_targets(directory: Path = TARGET_DIR) -> dict[str, Target]:
    return {t.name: t for t in map(_target, sorted(directory.glob("*.toml")))}


def script_features(source: str) -> set[str]:
    """Strings a script is recognisable by: its string literals and function/class names."""
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError:
        return set()
    features = set()
    for node in walk(module):
        if type(node) is cst.SimpleString:
            text = node.raw_value
            features.add(text)
            features.update(part for part in text.replace("/", " ").split() if part)
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            features.add(node.name.value)
    return features


def _shared_tail(upstream: str, script: Path) -> int:
    """How many trailing path components (file name included) the two paths share."""
    mine = script.resolve().parts[::-1]
    theirs = Path(upstream).parts[::-1]
    count = 0
    for a, b in zip(mine, theirs):
        if a != b:
            break
        count += 1
    return count


@dataclass(frozen=True)
class Match:
    target: Target
    how: str  # "sha256" or "fingerprint"
    score: float


def identify(script: Path, targets: dict[str, Target]) -> tuple[Match | None, list[Match]]:
    """The target this script is, or a fork of; and every candidate with its score."""
    data = script.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    exact = [t for t in targets.values() if t.sha256 and t.sha256 == digest]
    if exact:
        # byte-identical upstream scripts (CodeXGLUE's refinement and translation run.py): the
        # one whose upstream path shares the most trailing directories with this script's
        return Match(max(exact, key=lambda t: _shared_tail(t.path, script)), "sha256", 1.0), []
    features = script_features(data.decode("utf-8", errors="replace"))
    scored = sorted(
        (
            Match(t, "fingerprint", len(t.fingerprint & features) / len(t.fingerprint))
            for t in targets.values()
            if t.fingerprint
        ),
        key=lambda m: m.score,
        reverse=True,
    )
    best = scored[0] if scored else None
    if best is None or best.score < MATCH_THRESHOLD:
        return None, scored
    close = [m for m in scored if best.score - m.score < 0.05]
    if len(close) > 1:
        # A target whose strings include a sibling's and more (CodeBERT's code2nl, CodeXGLUE's
        # code-to-text with two more) wins when the script has more of its strings; an equal
        # count is too close to call: ask for --target.
        ranked = sorted(close, key=_matched, reverse=True)
        if _matched(ranked[0]) == _matched(ranked[1]):
            return None, scored
        return ranked[0], scored
    return best, scored


def _matched(match: Match) -> int:
    """How many of its target's fingerprint strings the script has."""
    return round(match.score * len(match.target.fingerprint))
