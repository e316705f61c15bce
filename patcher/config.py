"""``[tool.ddpfix]`` in the nearest ``pyproject.toml``; command-line flags win over it."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patcher.rule import Rule

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    #: Per-rule options: ``[tool.ddpfix.rules.DDP008]`` → ``{"DDP008": {...}}``.
    rule_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: ``per-file-ignores``: (glob, selectors) pairs, globs relative to ``path.parent``.
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def root(self) -> Path | None:
        """The directory ``per-file-ignores`` globs are relative to (ruff's project root)."""
        return None if self.path is None else self.path.parent


def find_pyproject(start: Path) -> Path | None:
    here = start.resolve()
    if here.is_file() or not here.exists():
        here = here.parent
    for directory in (here, *here.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _strings(table: Mapping[str, Any], key: str, where: Path) -> tuple[str, ...] | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: [tool.ddpfix] {key} must be a list of strings")
    return tuple(value)


def _per_file_ignores(
    table: Mapping[str, Any], where: Path
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``{"glob" = ["CODE", ...]}``, validated: a wrong type is a usage error, never ignored."""
    value = table.get("per-file-ignores", {})
    if not isinstance(value, dict):
        raise ConfigError(
            f"{where}: [tool.ddpfix] per-file-ignores must be a table of "
            f'glob = ["CODE", ...], e.g. {{"scripts/*.py" = ["DDP011"]}}'
        )
    pairs = []
    for pattern, codes in value.items():
        if isinstance(codes, str):
            codes = [codes]
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ConfigError(
                f"{where}: [tool.ddpfix] per-file-ignores {pattern!r} must be a list of rule "
                f"codes, not {type(codes).__name__}"
            )
        pairs.append((pattern, tuple(c.strip().upper() for c in codes if c.strip())))
    return tuple(pairs)


def check_rule_options(config: Config, rules: Iterable[Rule]) -> None:
    """Every ``[tool.ddpfix.rules.<CODE>]`` names a rule, and each option in it is one that
    rule declares, with a valid value; the first that is not raises :class:`ConfigError`."""
    declared = {rule.code: rule.options for rule in rules}
    for code, options in config.rule_options.items():
        where = f"{config.path}: [tool.ddpfix.rules.{code}]"
        if code not in declared:
            raise ConfigError(f"{where}: no rule {code}")
        known = declared[code]
        for name, value in options.items():
            option = known.get(name)
            if option is None:
                takes = f"takes: {', '.join(sorted(known))}" if known else "takes no options"
                raise ConfigError(f"{where}: unknown option {name!r} ({code} {takes})")
            problem = option.problem(name, value)
            if problem is not None:
                raise ConfigError(f"{where}: {problem}, not {value!r}")


def load_config(paths: Sequence[Path]) -> Config:
    """Read the config nearest to the first path (or the working directory)."""
    start = paths[0] if paths else Path.cwd()
    pyproject = find_pyproject(start)
    if pyproject is None:
        return Config()
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read configuration: {exc}") from None
    table = data.get("tool", {}).get("ddpfix")
    if table is None:
        return Config()
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.ddpfix] must be a table")
    known = {"select", "ignore", "exclude", "rules", "per-file-ignores"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{pyproject}: unknown [tool.ddpfix] key(s): {', '.join(unknown)}")
    rules = table.get("rules", {})
    if not isinstance(rules, dict) or not all(isinstance(v, dict) for v in rules.values()):
        raise ConfigError(f"{pyproject}: [tool.ddpfix.rules] must hold one table per rule code")
    return Config(
        path=pyproject,
        select=_strings(table, "select", pyproject),
        ignore=_strings(table, "ignore", pyproject) or (),
        exclude=_strings(table, "exclude", pyproject) or (),
        rule_options={code.upper(): dict(opts) for code, opts in rules.items()},
        per_file_ignores=_per_file_ignores(table, pyproject),
    )
