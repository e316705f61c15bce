"""Opt-in rules (``Rule.default = False``, DDP017): never by default or by a prefix; by their
exact code, by ``ALL``, or by ``[tool.ddpfix] select``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clihelp import ddpfix
from patcher.registry import all_rules, every_rule, select_rules

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "DDP017" / "retrieval_vectors.in.py"


def codes(selected) -> set[str]:
    return {rule.code for rule in selected}


def test_opt_in_rules_are_in_the_catalogue_not_in_the_default_set() -> None:
    assert "DDP017" in codes(every_rule())
    assert "DDP017" not in codes(all_rules())
    assert codes(select_rules(every_rule(), None)) == codes(all_rules())


@pytest.mark.parametrize(
    ("select", "ignore", "selected"),
    [
        (["DDP"], [], False),
        (["DDP01"], [], False),
        (["DDP017"], [], True),
        (["ALL"], [], True),
        (["ALL"], ["DDP017"], False),
        (["ddp017"], [], True),
    ],
)
def test_selection(select: list[str], ignore: list[str], selected: bool) -> None:
    assert ("DDP017" in codes(select_rules(every_rule(), select, ignore))) is selected


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "run.py"
    path.write_text(FIXTURE.read_text())
    return path


def findings(run) -> list[str]:
    return [f["code"] for f in json.loads(run.stdout)["files"][0]["findings"]]


def test_cli_runs_it_only_when_selected(script: Path) -> None:
    assert "DDP017" not in findings(ddpfix("check", script, "--format", "json"))
    assert "DDP017" not in findings(ddpfix("check", "--select", "DDP", script, "--format", "json"))
    assert "DDP017" in findings(ddpfix("check", "--select", "DDP017", script, "--format", "json"))
    assert "DDP017" in findings(ddpfix("check", "--select", "ALL", script, "--format", "json"))


def test_config_selects_it(tmp_path: Path, script: Path, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.ddpfix]\nselect = ["DDP", "DDP017"]\n')
    monkeypatch.chdir(tmp_path)
    assert "DDP017" in findings(ddpfix("check", "run.py", "--format", "json"))


def test_listed_and_explained() -> None:
    assert "DDP017" in ddpfix("rules").stdout
    run = ddpfix("explain", "DDP017")
    assert run.code == 0 and "distributed-evaluation" in run.stdout
