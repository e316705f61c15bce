"""Bad input: one clear line naming the file, a non-zero exit, and the file byte-for-byte intact."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from clihelp import ddpfix

LEGACY = (
    "import argparse\n"
    "parser = argparse.ArgumentParser()\n"
    'parser.add_argument("--local_rank", type=int, default=-1)\n'
    "args = parser.parse_args()\n"
)

BAD = {
    "python2": (
        b"import os\nprint 'local_rank', os.environ.get('LOCAL_RANK')\n",
        "Python 2 source (print statement at line 2)",
    ),
    "python2_except": (
        b"try:\n    local_rank = 0\nexcept ValueError, e:\n    pass\n",
        "Python 2 source ('except X, e:' clause at line 3)",
    ),
    "python2_octal": (
        b"import os\nos.chmod('run.sh', 0755)\n",
        "Python 2 source (Python 2 octal or long literal at line 2)",
    ),
    "syntax": (
        b"def train(args:\n    if args.local_rank == -1:\n        pass\n",
        "syntax error at line",
    ),
    "latin1_without_cookie": (
        b"# caf\xe9\nlocal_rank = -1\n",
        "not valid utf-8 text at byte 5",
    ),
    "binary": (b"\x7fELF\x02\x01\x01\x00local_rank\x00\x00", "binary file"),
    "bad_cookie": (b"# -*- coding: klingon -*-\nlocal_rank = 1\n", "bad encoding declaration"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_file_is_reported_and_untouched(tmp_path: Path, kind: str) -> None:
    data, message = BAD[kind]
    bad = tmp_path / "bad.py"
    bad.write_bytes(data)
    good = tmp_path / "good.py"
    good.write_text(LEGACY)

    run = ddpfix("apply", bad, good)

    assert run.code == 2
    lines = [line for line in run.stderr.splitlines() if "bad.py" in line]
    assert len(lines) == 1 and message in lines[0], run.stderr
    assert "error:" in lines[0]
    assert bad.read_bytes() == data
    assert "LOCAL_RANK" in good.read_text()  # the other file was still processed


def test_empty_file_is_fine(tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_bytes(b"")
    run = ddpfix("apply", empty)
    assert run.code == 0
    assert empty.read_bytes() == b""


def test_read_only_file_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(LEGACY)
    script.chmod(0o444)
    run = ddpfix("apply", script)
    assert run.code == 2
    assert "run.py: error: read-only file" in run.stderr
    assert script.read_text() == LEGACY
    assert stat.S_IMODE(script.stat().st_mode) == 0o444
    # check/diff only read, so a read-only file can still be checked
    assert ddpfix("check", script).code == 1


def test_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    target = tmp_path / "real_run.py"
    target.write_text(LEGACY)
    link = tmp_path / "run.py"
    link.symlink_to(target.name)
    run = ddpfix("apply", link)
    assert run.code == 0, run.stderr
    assert link.is_symlink() and os.readlink(link) == target.name
    assert 'int(os.environ["LOCAL_RANK"])' in target.read_text()


def test_broken_symlink(tmp_path: Path) -> None:
    link = tmp_path / "run.py"
    link.symlink_to("missing.py")
    run = ddpfix("apply", link)
    assert run.code == 2
    assert "run.py: error: broken symlink" in run.stderr
    assert link.is_symlink()


def test_symlinked_directories_are_not_walked_and_files_counted_once(tmp_path: Path) -> None:
    real = tmp_path / "code"
    real.mkdir()
    (real / "run.py").write_text(LEGACY)
    (tmp_path / "alias").symlink_to("code", target_is_directory=True)
    (real / "same.py").symlink_to("run.py")
    run = ddpfix("check", tmp_path, "--format", "json")
    assert run.code == 1
    import json

    paths = [f["path"] for f in json.loads(run.stdout)["files"]]
    assert len(paths) == 1 and paths[0].endswith("code/run.py")


def test_nonexistent_path(tmp_path: Path) -> None:
    run = ddpfix("check", tmp_path / "nope.py")
    assert run.code == 2
    assert "nope.py: error: no such file or directory" in run.stderr


def test_directory_without_python_files(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# nothing here\n")
    run = ddpfix("check", tmp_path)
    assert run.code == 0
    assert f"{tmp_path}: no Python files found" in run.stderr


def test_unwritable_directory_leaves_no_temp_file(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write into a read-only directory")
    script = tmp_path / "run.py"
    script.write_text(LEGACY)
    tmp_path.chmod(0o555)
    try:
        run = ddpfix("apply", script)
    finally:
        tmp_path.chmod(0o755)
    assert run.code == 2
    assert script.read_text() == LEGACY
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.py"]


def test_a_backquote_in_a_comment_is_not_python_2(tmp_path: Path) -> None:
    """The parser's own error is named, not the comment's backquotes (eighth batch D1)."""
    text = "def f(a, b):\n    return a\n\n\nf(1,, 2)\n# save with `save_pretrained()`\n"
    path = tmp_path / "run.py"
    path.write_text(text)
    result = ddpfix("apply", str(path))
    assert result.code != 0
    output = result.stdout + result.stderr
    assert "syntax error at line 5" in output and "Python 2" not in output
    assert path.read_text() == text
