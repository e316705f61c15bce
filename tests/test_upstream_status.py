"""`ddpfix upstream pin` / `status`: pins of a checkout, and drift that breaks a patch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clihelp import ddpfix

SCRIPTS = Path(__file__).resolve().parent / "fixtures" / "scripts"


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "fork"
    for name in ("clone_bcb_style", "search_merged_gate", "no_distributed_code"):
        target = root / name / "run.py"
        target.parent.mkdir(parents=True)
        shutil.copy(SCRIPTS / f"{name}.in.py", target)
    return root


def _pin(checkout: Path, tmp_path: Path) -> Path:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    run = ddpfix(
        "upstream",
        "pin",
        "--checkout",
        checkout,
        "--repo",
        "me/fork",
        "--commit",
        "abc123",
        "--output",
        manifests / "fork.toml",
    )
    assert run.code == 0, run.stderr
    return manifests


def _status(checkout: Path, manifests: Path) -> tuple[int, dict]:
    run = ddpfix(
        "upstream", "status", "--checkout", checkout, "--manifests", manifests, "--format", "json"
    )
    return run.code, json.loads(run.stdout)


def test_pin_lists_only_scripts_a_rule_changes(checkout: Path, tmp_path: Path) -> None:
    text = (_pin(checkout, tmp_path) / "fork.toml").read_text()
    assert 'repo = "me/fork"' in text and 'commit = "abc123"' in text
    assert 'path = "clone_bcb_style/run.py"' in text
    assert 'path = "search_merged_gate/run.py"' in text
    assert "no_distributed_code" not in text
    assert "DDP001 = 1" in text


def test_unchanged_checkout_reports_no_drift(checkout: Path, tmp_path: Path) -> None:
    code, report = _status(checkout, _pin(checkout, tmp_path))
    assert code == 0 and report["broken"] is False
    assert {f["state"] for f in report["files"]} == {"unchanged"}


def test_drift_that_breaks_a_patch_names_the_rule(checkout: Path, tmp_path: Path) -> None:
    manifests = _pin(checkout, tmp_path)
    script = checkout / "clone_bcb_style" / "run.py"
    # upstream "cleans up": the evaluation gate becomes a helper call the rule cannot see
    text = script.read_text().replace(
        "if args.local_rank == -1 and args.evaluate_during_training:",
        "if single_process(args) and args.evaluate_during_training:",
    )
    script.write_text(text)
    (checkout / "extra").mkdir()
    shutil.copy(SCRIPTS / "sed_patched.in.py", checkout / "extra" / "train.py")
    code, report = _status(checkout, manifests)
    assert code == 1 and report["broken"] is True
    files = {f["path"]: f for f in report["files"]}
    changed = files["clone_bcb_style/run.py"]
    assert changed["state"] == "changed"
    assert "DDP003 fixes: expected 1, now 0" in changed["problems"]
    assert files["search_merged_gate/run.py"]["state"] == "unchanged"
    assert files["extra/train.py"]["state"] == "new"


def test_a_harmless_change_is_drift_but_not_broken(checkout: Path, tmp_path: Path) -> None:
    manifests = _pin(checkout, tmp_path)
    script = checkout / "search_merged_gate" / "run.py"
    script.write_text(script.read_text() + "\n# a comment upstream added\n")
    code, report = _status(checkout, manifests)
    assert code == 0
    states = {f["path"]: f["state"] for f in report["files"]}
    assert states["search_merged_gate/run.py"] == "changed"
    (checkout / "clone_bcb_style" / "run.py").unlink()
    code, report = _status(checkout, manifests)
    assert {f["path"]: f["state"] for f in report["files"]}["clone_bcb_style/run.py"] == "missing"
