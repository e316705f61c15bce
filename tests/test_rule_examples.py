"""Each rule's own documented examples (Fixit style) are run as tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from patcher.cli import rules_markdown
from patcher.engine import fix_text
from patcher.registry import every_rule

EXAMPLES = [
    pytest.param(rule, example, id=f"{rule.code}-{number}")
    for rule in every_rule()
    for number, example in enumerate(rule.examples, start=1)
]


@pytest.mark.parametrize(("rule", "example"), EXAMPLES)
def test_example(rule, example) -> None:
    output, findings = fix_text(example.before, [rule])
    assert len([f for f in findings if not f.fixed]) == example.reports
    assert tuple(f.message for f in findings) == example.messages
    if example.after is None:
        assert output == example.before
        assert not [f for f in findings if f.fixed]
    else:
        assert output == example.after
        assert [f.code for f in findings if f.fixed]
        again, _ = fix_text(output, [rule])
        assert again == output


@pytest.mark.parametrize("rule", every_rule(), ids=lambda r: r.code)
def test_rule_is_documented(rule) -> None:
    assert re.fullmatch(r"(DDP|PRT|TRN)\d{3}", rule.code)
    assert rule.name and rule.summary and len(rule.rationale.strip()) > 200
    assert rule.rationale.startswith(f"{rule.code} {rule.name}:")
    assert any(e.after is not None or e.reports for e in rule.examples)  # shows what it does
    assert any(e.after is None and not e.reports for e in rule.examples)  # and a look-alike


def test_codes_and_names_are_unique() -> None:
    rules = every_rule()
    assert len({r.code for r in rules}) == len(rules)
    assert len({r.name for r in rules}) == len(rules)


def test_readme_rules_table_is_the_generated_one() -> None:
    """The README's table is ``ddpfix rules --markdown``'s output: regenerate it when a rule's
    code, name or summary changes."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- rules-table:[^\n]*-->\n(.*?)<!-- /rules-table -->", readme, re.S)
    assert block is not None, "README lost its rules-table markers"
    assert block.group(1) == rules_markdown(every_rule())
    listed = re.findall(r"^\| ((?:DDP|PRT|TRN)\d{3}) \| ([\w-]+) \|", block.group(1), flags=re.M)
    assert sorted(listed) == sorted((rule.code, rule.name) for rule in every_rule())
