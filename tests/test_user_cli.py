"""What a user sees running ``ddpfix`` in a shell: each test starts the CLI as a process."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from clihelp import ROOT, ddpfix_process
from readme import block_after, mismatch

EXAMPLES = ROOT / "examples"


def test_named_files_are_always_validated(tmp_path: Path) -> None:
    # No rule's trigger string occurs in either file, so the prefilter alone would skip them.
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    py2 = tmp_path / "py2.py"
    py2.write_text('print "x"\n')
    run = ddpfix_process("check", "bad.py", "py2.py", cwd=tmp_path)
    assert run.returncode == 2, run.stderr
    errors = [line for line in run.stderr.splitlines() if ": error: " in line]
    assert errors == [
        "bad.py: error: syntax error at line 1, column 7: invalid syntax",
        "py2.py: error: Python 2 source (print statement at line 1); ddpfix rewrites Python 3 only",
    ]
    assert bad.read_text() == "def f(:\n    pass\n"


def test_walked_files_may_be_skipped_by_the_prefilter(tmp_path: Path) -> None:
    # Found by walking a directory, a file no rule could apply to is not parsed (documented).
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "py2.py").write_text('print "x"\n')
    run = ddpfix_process("check", "src", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "1 file checked" in run.stderr


#: Killed by SIGPIPE (what a shell shows as 141), or exited with that status: either way quiet.
BROKEN_PIPE = (128 + signal.SIGPIPE, -signal.SIGPIPE)


@pytest.mark.parametrize(
    "args",
    [
        ("apply", "--diff", EXAMPLES),
        ("check", EXAMPLES),
        ("rules",),
        ("explain", "DDP001"),
        ("upstream", "status", "--checkout", EXAMPLES),
    ],
    ids=["apply-diff", "check", "rules", "explain", "upstream-status"],
)
def test_broken_pipe_ends_quietly(args: tuple[str, ...]) -> None:
    run = ddpfix_process(*args, closed_stdout=True)
    assert run.returncode in BROKEN_PIPE, (run.returncode, run.stderr)
    assert run.stderr == ""  # no traceback, and no findings or summary after the reader left


NO_TORCH = "raise ImportError(\"No module named 'torch'\")\n"
NO_ACCELERATE = (  # as after `pip install -e .`: the package's metadata is not there
    "import importlib.metadata as m\n"
    "_version = m.version\n"
    "def version(name):\n"
    "    if name == 'accelerate':\n"
    "        raise m.PackageNotFoundError(name)\n"
    "    return _version(name)\n"
    "m.version = version\n"
)


@pytest.mark.parametrize("broken", ["torch", "accelerate"])
def test_verify_without_its_extra_says_what_to_install(tmp_path: Path, broken: str) -> None:
    stubs = tmp_path / "stubs"
    if broken == "torch":
        (stubs / "torch").mkdir(parents=True)
        (stubs / "torch" / "__init__.py").write_text(NO_TORCH)
    else:
        stubs.mkdir()
        (stubs / "sitecustomize.py").write_text(NO_ACCELERATE)
    env = dict(os.environ, PYTHONPATH=str(stubs))
    run = ddpfix_process("verify", EXAMPLES / "defect_detection" / "run.py", env=env)
    assert run.returncode == 2
    assert run.stderr == "error: verify needs the verify extra: pip install 'ddpfix[verify]'\n"
    assert run.stdout == ""


def test_upstream_status_prints_whole_paths_in_a_log(tmp_path: Path) -> None:
    # A changed pinned script with a long path and long problems, printed to a pipe (80 columns).
    pinned = "Code-Code/Clone-detection-BigCloneBench/code/run.py"
    (tmp_path / pinned).parent.mkdir(parents=True)
    (tmp_path / pinned).write_text("import os\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    run = ddpfix_process(
        "upstream", "status", "--checkout", tmp_path, "--repo", "microsoft/CodeXGLUE", env=env
    )
    assert run.returncode == 1, run.stderr  # its fixes no longer apply: drift breaks the patch
    rows = [line for line in run.stdout.splitlines() if "changed" in line]
    assert len(rows) == 1 and f"│ {pinned} " in rows[0], run.stdout
    assert "…" not in run.stdout
    assert "Code-Code/code-to-code-trans/evaluator/CodeBLEU/parser/build.py" in run.stdout


COMMANDS = [
    (),
    ("apply",),
    ("check",),
    ("rules",),
    ("explain",),
    ("verify",),
    ("plan",),
    ("launch",),
    ("upstream",),
    ("upstream", "pin"),
    ("upstream", "status"),
]
#: What typer adds around click's help: braces and doubled brackets around arguments in the
#: usage line, and type labels such as <list[Path]> or <int>.
ARTEFACT = re.compile(r"\{[^}]*\}|\[\[|\]\]|<[\w\[\]|, ]+>")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "ddpfix")
def test_help_has_no_framework_artefacts(command: tuple[str, ...]) -> None:
    run = ddpfix_process(*command, "--help")
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"Usage: ddpfix {' '.join(command)}".rstrip() + " ")
    assert ARTEFACT.findall(run.stdout) == []


def test_help_usage_lines_name_the_arguments() -> None:
    usages = {
        ("apply",): "Usage: ddpfix apply [OPTIONS] PATH...",
        ("verify",): "Usage: ddpfix verify [OPTIONS] SCRIPT [-- ARGS...]",
        ("launch",): "Usage: ddpfix launch [OPTIONS] SCRIPT [-- SCRIPT ARGS...]",
        ("explain",): "Usage: ddpfix explain [OPTIONS] CODE",
    }
    for command, usage in usages.items():
        assert ddpfix_process(*command, "--help").stdout.splitlines()[0] == usage


def test_explain_prints_the_summary_once() -> None:
    run = ddpfix_process("explain", "DDP003")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "DDP003 rank-zero-evaluate-and-save"
    assert sum("rank-zero-evaluate-and-save" in line for line in lines) == 1
    assert lines[2] == ""  # title, summary, then the rationale's body


def test_unknown_script_is_one_short_line(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hello')\n")
    run = ddpfix_process("verify", "train.py", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and len(run.stderr) < 160, run.stderr
    assert run.stderr.startswith("error: cannot tell which known script train.py is")
    assert "--target NAME" in run.stderr


FAILING = ROOT / "tests" / "verify_cases" / "rank_one_fails.py"
#: What libraries print while a tiny model is built, and a rank's progress bar.
NOISE = ("Tokenize words", "Count pairs", "Compute merges", "Writing model shards", "%|")


def _stages(stderr: str) -> list[str]:
    return [line.split(" ", 2)[1] for line in stderr.splitlines()]


def test_failing_verify_shows_the_failing_ranks_traceback() -> None:
    run = ddpfix_process("verify", FAILING, "--", "--unused", "1")  # stdout, stderr: pipes
    assert run.returncode == 1, run.stderr
    # a CI log sees every stage, one line each, and nothing else on stderr
    assert all(line.startswith("verify: ") for line in run.stderr.splitlines()), run.stderr
    assert _stages(run.stderr) == ["copying", "patching", "launching", "checking"]
    lines = run.stdout.splitlines()
    start = lines.index("rank 1 failed first; the end of its traceback:")
    tail = lines[start + 1 : start + 9]
    assert tail[0] == "Traceback (most recent call last):"
    assert '  File "<sandbox>/code/rank_one_fails.py", line 9, in load_shard' in tail
    assert tail[-1] == "ValueError: rank one broke while loading its shard"
    assert lines[-2] == (
        "the sandbox was removed; --keep DIR keeps it (code/, data/, output/, probe/, launch.log)"
    )
    assert lines[-1].startswith("FAIL: every rank exited 0: rank 1 raised ValueError")
    assert "ddpfix-verify-" not in run.stdout  # nothing points into the removed sandbox


def test_verify_report_into_a_closed_pipe_ends_quietly() -> None:
    run = ddpfix_process("verify", FAILING, "--", "--unused", "1", closed_stdout=True)
    assert run.returncode in BROKEN_PIPE, run.stderr
    assert all(line.startswith("verify: ") for line in run.stderr.splitlines()), run.stderr


def test_original_fails_cleanly_on_a_cold_cache(tmp_path: Path) -> None:
    # A cold cache: the tiny model is built in this run, with the libraries' bars silenced.
    env = dict(os.environ, DDPFIX_CACHE=str(tmp_path / "cache"))
    example = EXAMPLES / "defect_detection" / "run.py"
    run = ddpfix_process("verify", example, "--original", env=env)
    assert run.returncode == 1, run.stderr
    assert _stages(run.stderr) == ["copying", "building", "writing", "launching", "checking"]
    assert "verify: building a tiny roberta model" in run.stderr
    for noise in NOISE:
        assert noise not in run.stderr and noise not in run.stdout, noise
    lines = run.stdout.splitlines()
    assert lines[-1].startswith(
        "FAIL: ranks joined: 2 processes, torch.distributed never initialised"
    )
    assert "--keep DIR keeps it" in lines[-2]
    assert "ddpfix-verify-" not in run.stdout
    # and it is what the README shows for --original
    assert mismatch(block_after("and with `--original`"), lines) is None
