"""``# ddpfix: ignore[CODE]`` and ``per-file-ignores``, as ruff users expect of ``noqa``.

The CLI runs as a subprocess on files in ``tmp_path``: a suppressed finding is neither fixed nor
counted nor printed, unless ``--show-suppressed`` lists it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from patcher.suppress import directive_codes, file_codes, find_suppressions

# Only DDP001 fires here (the flag already has its hyphen alias): line 6 is the finding's line.
PARSED = (
    "import argparse\n"
    "import os\n"
    "\n"
    "parser = argparse.ArgumentParser()\n"
    'parser.add_argument("--local_rank", "--local-rank", type=int, default=-1)\n'
    "args = parser.parse_args(){comment}\n"
    "print(args.local_rank)\n"
)
# DDP001 can only report this one (no fix): the parsed result is never bound. Line 9.
REPORTED = (
    "import argparse\n"
    "\n"
    "\n"
    "def run(args):\n"
    "    print(args.local_rank)\n"
    "\n"
    "\n"
    "parser = argparse.ArgumentParser()\n"
    'parser.add_argument("--local_rank", "--local-rank", type=int, default=-1){comment}\n'
    "run(parser.parse_args())\n"
)


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def ddpfix(*args: object, cwd: Path | None = None) -> Run:
    run = subprocess.run(
        [sys.executable, "-m", "patcher", *(str(a) for a in args)],
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    return Run(run.returncode, run.stdout, run.stderr)


def write(path: Path, template: str, comment: str = "") -> Path:
    path.write_text(template.format(comment=comment), encoding="utf-8")
    return path


@pytest.fixture
def script(tmp_path: Path) -> Path:
    return tmp_path / "run.py"


def test_unsuppressed_finding_is_fixed(script: Path) -> None:
    """The baseline the other tests lean on: without a comment DDP001 rewrites line 6."""
    write(script, PARSED)
    run = ddpfix("check", script)
    assert run.code == 1
    assert f"{script.as_posix()}:6:1: DDP001 (fixable)" in run.stderr


@pytest.mark.parametrize(
    "comment",
    [
        "  # ddpfix: ignore[DDP001]",
        "  # ddpfix: ignore",
        "  # ddpfix: ignore[DDP00]",
        "  # ddpfix: ignore[PRT001, DDP001]",
        "  # parse once  # ddpfix: ignore[ddp001] (LOCAL_RANK is read later)",
    ],
)
def test_comment_suppresses_the_fix(script: Path, comment: str) -> None:
    write(script, PARSED, comment)
    before = script.read_bytes()
    run = ddpfix("apply", script)
    assert run.code == 0, run.stderr
    assert script.read_bytes() == before
    assert "DDP001" not in run.stderr
    assert run.stderr.strip() == "no file changed, 1 file checked."
    assert ddpfix("check", script).code == 0


@pytest.mark.parametrize(
    "comment",
    [
        "  # ddpfix: ignore[DDP002]",
        "  # ddpfix: ignore[TRN]",
        "  # ddpfix: ignore[]",
        "  # ddpfix: ignore[DDP001",  # unclosed: no directive, never "ignore everything"
        "  # ddpfix: ignored",
        "  # noqa: DDP001",
    ],
)
def test_other_codes_do_not_suppress(script: Path, comment: str) -> None:
    write(script, PARSED, comment)
    run = ddpfix("apply", script)
    assert run.code == 0
    assert f"{script.as_posix()}:6:1: DDP001 (fixed)" in run.stderr
    assert 'int(os.environ["LOCAL_RANK"])' in script.read_text()


def test_comment_on_another_line_does_not_suppress(script: Path) -> None:
    text = PARSED.format(comment="").replace(
        "print(args.local_rank)\n", "print(args.local_rank)  # ddpfix: ignore\n"
    )
    script.write_text(text)
    assert ddpfix("check", script).code == 1


def test_marker_inside_a_string_does_not_suppress(script: Path) -> None:
    text = PARSED.format(comment="").replace(
        "parser.parse_args()", 'parser.parse_args(None or "  # ddpfix: ignore[DDP001]" and None)'
    )
    script.write_text(text)
    run = ddpfix("check", script)
    assert run.code == 1
    assert "DDP001 (fixable)" in run.stderr


def test_comment_at_the_end_of_a_multiline_statement(script: Path) -> None:
    """As with ruff's noqa, the last line of a statement speaks for the line it starts on."""
    text = PARSED.format(comment="").replace(
        "args = parser.parse_args()\n",
        "args = parser.parse_args(\n    [],\n)  # ddpfix: ignore[DDP001]\n",
    )
    script.write_text(text)
    run = ddpfix("check", script)
    assert run.code == 0, run.stderr + run.stdout


def test_suppressed_report_does_not_fail_apply(script: Path) -> None:
    write(script, REPORTED)
    assert ddpfix("apply", script).code == 1  # no fix: reported, exit 1
    write(script, REPORTED, "  # ddpfix: ignore[DDP001]")
    run = ddpfix("apply", script)
    assert run.code == 0 and "DDP001" not in run.stderr
    assert ddpfix("check", "--strict", script).code == 0


def test_show_suppressed_lists_them_without_changing_the_exit_code(script: Path) -> None:
    write(script, PARSED, "  # ddpfix: ignore[DDP001]")
    run = ddpfix("check", "--show-suppressed", script)
    assert run.code == 0 and run.stdout == ""
    assert f"{script.as_posix()}:6:1: DDP001 (suppressed) read LOCAL_RANK" in run.stderr
    assert "1 finding suppressed" in run.stderr
    write(script, REPORTED, "  # ddpfix: ignore")
    run = ddpfix("apply", "--show-suppressed", script)
    assert run.code == 0
    assert f"{script.as_posix()}:9:1: DDP001 (suppressed)" in run.stderr


def test_json_marks_suppressed_findings_only_when_asked(script: Path) -> None:
    write(script, PARSED, "  # ddpfix: ignore[DDP001]")
    quiet = json.loads(ddpfix("check", "--format", "json", script).stdout)
    assert quiet["files"][0]["findings"] == [] and quiet["exit_code"] == 0
    shown = json.loads(ddpfix("check", "--show-suppressed", "--format", "json", script).stdout)
    (finding,) = shown["files"][0]["findings"]
    assert finding["code"] == "DDP001" and finding["line"] == 6
    assert finding["suppressed"] is True and finding["fixed"] is False
    assert shown["summary"] == quiet["summary"]
    assert shown["summary"]["fixed"] == 0 and shown["summary"]["unfixed"] == 0
    assert shown["exit_code"] == 0 and shown["files"][0]["changed"] is False
    write(script, PARSED)
    unsuppressed = json.loads(ddpfix("check", "--format", "json", script).stdout)
    assert "suppressed" not in unsuppressed["files"][0]["findings"][0]


def test_per_file_ignores(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.ddpfix]\nper-file-ignores = {"scripts/legacy/*.py" = ["DDP001"], '
        '"run.py" = ["DDP"]}\n'
    )
    legacy = tmp_path / "scripts" / "legacy"
    legacy.mkdir(parents=True)
    ignored = [write(legacy / "old.py", PARSED), write(tmp_path / "run.py", PARSED)]
    nested = tmp_path / "other"
    nested.mkdir()
    ignored.append(write(nested / "run.py", PARSED))  # no slash: matches the name anywhere
    patched = write(tmp_path / "scripts" / "new.py", PARSED)
    run = ddpfix("apply", ".", cwd=tmp_path)
    assert run.code == 0, run.stderr
    assert all(path.read_text() == PARSED.format(comment="") for path in ignored)
    assert 'int(os.environ["LOCAL_RANK"])' in patched.read_text()
    assert "1 fix applied in 1 file, 4 files checked." in run.stderr
    # named from elsewhere, the globs are still relative to the pyproject.toml
    write(legacy / "old.py", PARSED)
    again = ddpfix("check", "--show-suppressed", legacy / "old.py")
    assert again.code == 0 and "DDP001 (suppressed)" in again.stderr


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('per-file-ignores = ["run.py"]', "per-file-ignores must be a table"),
        ('per-file-ignores = {"run.py" = 1}', "'run.py' must be a list of rule codes, not int"),
        ('per-file-ignores = {"run.py" = ["DDP9"]}', "unknown rule selector 'DDP9'"),
    ],
)
def test_bad_per_file_ignores_is_a_usage_error(script: Path, table: str, message: str) -> None:
    (script.parent / "pyproject.toml").write_text(f"[tool.ddpfix]\n{table}\n")
    write(script, PARSED)
    run = ddpfix("check", script)
    assert run.code == 2
    assert run.stdout == ""
    assert len(run.stderr.strip().splitlines()) == 1
    assert message in run.stderr and run.stderr.startswith("error: ")
    assert script.read_text() == PARSED.format(comment="")


def test_directive_grammar() -> None:
    assert directive_codes("# ddpfix: ignore") == {"ALL"}
    assert directive_codes("#ddpfix:ignore[ DDP001 ,DDP00 ]") == {"DDP001", "DDP00"}
    assert directive_codes("# DDPFIX: IGNORE [trn001]") == {"TRN001"}
    assert directive_codes("# ddpfix: ignore[]") == frozenset()
    assert directive_codes("# ddpfix: torchrun / accelerate launch") == frozenset()
    text = 'x = (\n    1,\n)  # ddpfix: ignore[PRT]\ns = """\n# ddpfix: ignore\n"""\n'
    found = find_suppressions(text)
    assert [found.covers("PRT001", n) for n in range(1, 7)] == [True] * 3 + [False] * 3
    assert not found.covers("DDP001", 1)
    assert find_suppressions("x = 1\n", ["DDP"]).covers("DDP004", 1)


def test_file_codes_globs(tmp_path: Path) -> None:
    table = [("scripts/**/*.py", ("DDP011",)), ("run.py", ("TRN",)), ("*/gen_*.py", ("PRT",))]
    assert file_codes(tmp_path / "scripts" / "a.py", table, tmp_path) == ("DDP011",)
    assert file_codes(tmp_path / "scripts" / "x" / "a.py", table, tmp_path) == ("DDP011",)
    assert file_codes(tmp_path / "deep" / "run.py", table, tmp_path) == ("TRN",)
    assert file_codes(tmp_path / "a" / "gen_1.py", table, tmp_path) == ("PRT",)
    assert file_codes(tmp_path / "other.py", table, tmp_path) == ()
    assert file_codes(tmp_path / "run.py", table, None) == ("TRN",)
