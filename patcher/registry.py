"""The rule catalogue and ruff-style selection: ``--select DDP00``, ``--ignore DDP006``, ``ALL``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from patcher.rule import Postcondition, Rule


class SelectionError(ValueError):
    """A selector that matches no rule code."""


def every_rule() -> list[Rule]:
    """The whole catalogue, opt-in rules included, in the order the engine applies them."""
    from patches import RULES

    return sorted((cls() for cls in RULES), key=lambda rule: rule.code)


def all_rules() -> list[Rule]:
    """Every rule that runs by default (the catalogue without the opt-in rules), by code."""
    return [rule for rule in every_rule() if rule.default]


def postconditions() -> list[Postcondition]:
    """What every fix must keep (the rules' rank model: no collective reached by a subset of
    the ranks, no name unbound on a rank that reads it, no unordered read of a rank-0 file)."""
    from patches import POSTCONDITIONS

    return list(POSTCONDITIONS)


def _matches(selector: str, code: str) -> bool:
    return selector == "ALL" or code.startswith(selector)


def _selects(selector: str, rule: Rule) -> bool:
    """An opt-in rule is selected by ``ALL`` or its exact code only, never by a prefix."""
    if rule.default:
        return _matches(selector, rule.code)
    return selector in ("ALL", rule.code)


def _check(selectors: Iterable[str], rules: Sequence[Rule]) -> None:
    for selector in selectors:
        if not any(_matches(selector, rule.code) for rule in rules):
            known = ", ".join(rule.code for rule in rules)
            raise SelectionError(f"unknown rule selector {selector!r} (known: ALL, {known})")


def select_rules(
    rules: Sequence[Rule],
    select: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
) -> list[Rule]:
    """Rules whose code matches a ``select`` prefix and no ``ignore`` prefix; without
    ``select``, the default rules (opt-in ones need their code or ``ALL``)."""
    explicit = select is not None
    select = [s.strip().upper() for s in (select or ["ALL"]) if s.strip()]
    ignore = [s.strip().upper() for s in ignore if s.strip()]
    _check([*select, *ignore], rules)
    return [
        rule
        for rule in rules
        if (explicit or rule.default)
        and any(_selects(s, rule) for s in select)
        and not any(_matches(s, rule.code) for s in ignore)
    ]


def find_rule(code: str) -> Rule | None:
    wanted = code.strip().upper()
    for rule in every_rule():
        if wanted in (rule.code, rule.name.upper()):
            return rule
    return None


def companion_warnings(selected: Sequence[Rule]) -> list[str]:
    """Warnings for rules selected without the rules they are only safe with."""
    codes = {rule.code for rule in selected}
    warnings = []
    for rule in selected:
        missing = [c for c in rule.companions if c not in codes]
        if missing:
            without = ", ".join(missing)
            warnings.append(f"{rule.code} selected without {without}: {rule.companion_reason}")
    return warnings
