"""Byte-exact before/after fixtures for every rule and whole legacy-style scripts."""

from __future__ import annotations

import pytest

from fixture_cases import Case, cases, render_findings
from locality import unexplained_changes
from patcher.engine import QUOTED_LINE, fix_text
from patcher.registry import all_rules

CASES = cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_output_is_byte_exact(case: Case) -> None:
    output, findings = fix_text(case.read(), case.rules())
    assert output == case.expected()
    assert render_findings(findings) == case.expected_findings()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_output_is_valid_python(case: Case) -> None:
    compile(case.expected(), case.expected_path.name, "exec")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_apply_is_idempotent_with_every_rule(case: Case) -> None:
    rules = all_rules()
    once, _ = fix_text(case.read(), rules)
    twice, findings = fix_text(once, rules)
    assert twice == once
    assert not [f for f in findings if f.fixed]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_change_is_inside_a_statement_a_fix_names(case: Case) -> None:
    source = case.read()
    for rules in (case.rules(), all_rules()):
        output, findings = fix_text(source, rules)
        fixed_at = {f.line for f in findings if f.fixed}
        assert unexplained_changes(source, output, fixed_at) == []


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reports_survive_apply(case: Case) -> None:
    """What apply cannot fix, check still reports afterwards: a fix must not hide a problem."""

    def reports(findings):
        # a line a message quotes is one of its input, which apply shifted
        unfixed = (f for f in findings if not f.fixed)
        return sorted((f.code, QUOTED_LINE.sub("line #", f.message)) for f in unfixed)

    for rules in (case.rules(), all_rules()):
        once, findings = fix_text(case.read(), rules)
        assert reports(fix_text(once, rules)[1]) == reports(findings)


def test_every_rule_has_fixtures_that_change_and_that_do_not() -> None:
    for rule in all_rules():
        mine = [c for c in CASES if c.group == rule.code]
        acts = [c.expected_path.exists() or c.findings_path.exists() for c in mine]
        assert any(acts), f"{rule.code}: no fixture it changes or reports"
        assert not all(acts), f"{rule.code}: no look-alike fixture it leaves alone"
