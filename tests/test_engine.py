"""The engine keeps everything it does not mean to change: encoding, BOM, newlines, tabs, mode."""

from __future__ import annotations

import stat
import textwrap
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import ClassVar
from unittest import mock

import libcst as cst
import pytest

from clihelp import ddpfix
from patcher import engine
from patcher.engine import fix_text, process_file
from patcher.linemap import LineMap
from patcher.registry import all_rules, every_rule, select_rules
from patcher.rule import Reason, Rule, RuleContext
from patcher.tree import Tree

SCRIPT = (
    "import argparse\n"
    "import os\n"
    "\n"
    "def main():\n"
    "    parser = argparse.ArgumentParser()\n"
    "    parser.add_argument('--local_rank', type=int, default=-1)\n"
    "    args = parser.parse_args()\n"
    "    return args\n"
)
PATCHED = (
    "import argparse\n"
    "import os\n"
    "\n"
    "def main():\n"
    "    parser = argparse.ArgumentParser()\n"
    "    parser.add_argument('--local_rank', '--local-rank', type=int, default=-1)\n"
    "    args = parser.parse_args()\n"
    "    # ddpfix: torchrun / accelerate launch pass the local rank only as LOCAL_RANK\n"
    "    if 'LOCAL_RANK' in os.environ and args.local_rank == -1:\n"
    "        args.local_rank = int(os.environ['LOCAL_RANK'])\n"
    "    return args\n"
)


def _apply(tmp_path: Path, data: bytes) -> bytes:
    path = tmp_path / "run.py"
    path.write_bytes(data)
    result = process_file(path, all_rules(), write=True)
    assert result.error is None, result.error
    return path.read_bytes()


def test_plain(tmp_path: Path) -> None:
    assert _apply(tmp_path, SCRIPT.encode()) == PATCHED.encode()


def test_crlf_stays_crlf(tmp_path: Path) -> None:
    out = _apply(tmp_path, SCRIPT.replace("\n", "\r\n").encode())
    assert out == PATCHED.replace("\n", "\r\n").encode()


def test_tabs_stay_tabs(tmp_path: Path) -> None:
    tabbed = SCRIPT.replace("    ", "\t")
    out = _apply(tmp_path, tabbed.encode()).decode()
    assert out == PATCHED.replace("    ", "\t")
    compile(out, "run.py", "exec")


def test_utf8_bom_is_kept(tmp_path: Path) -> None:
    out = _apply(tmp_path, b"\xef\xbb\xbf" + SCRIPT.encode())
    assert out == b"\xef\xbb\xbf" + PATCHED.encode()


def test_encoding_cookie_is_honoured(tmp_path: Path) -> None:
    source = "# -*- coding: latin-1 -*-\n# auteur: Ren\xe9\n" + SCRIPT
    out = _apply(tmp_path, source.encode("latin-1"))
    assert out == ("# -*- coding: latin-1 -*-\n# auteur: Ren\xe9\n" + PATCHED).encode("latin-1")


def test_missing_trailing_newline_stays_missing(tmp_path: Path) -> None:
    out = _apply(tmp_path, SCRIPT.rstrip("\n").encode())
    assert out == PATCHED.rstrip("\n").encode()


def test_file_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "run.py"
    path.write_text(SCRIPT)
    path.chmod(0o750)
    process_file(path, all_rules(), write=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
    assert path.read_text() == PATCHED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.py"]  # no temp file left


def test_unchanged_file_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "run.py"
    path.write_text(PATCHED)
    before = path.stat().st_mtime_ns
    result = process_file(path, all_rules(), write=True)
    assert not result.written and path.stat().st_mtime_ns == before


def test_prefilter_skips_files_that_cannot_match() -> None:
    # not even valid Python, but nothing in it can match, so it is never parsed
    text = "def (:\n"
    assert fix_text(text, all_rules()) == (text, [])


def test_findings_name_lines_of_the_original_file() -> None:
    _, findings = fix_text(SCRIPT, all_rules())
    assert [(f.code, f.line) for f in findings] == [("DDP002", 6), ("DDP001", 7)]


@pytest.mark.parametrize(
    ("original", "current", "line", "expected"),
    [
        ("a\nb\nc\n", "a\nb\nc\n", 3, 3),
        ("a\nb\nc\n", "a\nX\nY\nb\nc\n", 5, 3),
        ("a\nb\nc\n", "a\nB\nc\n", 2, 2),
        ("a\nb\nc\nd\n", "a\nd\n", 2, 4),
    ],
)
def test_linemap(original: str, current: str, line: int, expected: int) -> None:
    assert LineMap(original, current).to_original(line) == expected


def test_internal_error_in_a_rule_leaves_the_file(tmp_path: Path, monkeypatch) -> None:
    from patches.ddp002_local_rank_hyphen_alias import LocalRankHyphenAlias

    def boom(self, ctx):
        raise ValueError("boom")

    monkeypatch.setattr(LocalRankHyphenAlias, "run", boom)
    path = tmp_path / "run.py"
    path.write_text(SCRIPT)
    run = ddpfix("apply", path)
    assert run.code == 2
    assert "internal error (ValueError: boom); file left unchanged" in run.stderr
    assert path.read_text() == SCRIPT


class _FromEnviron(Rule):
    """A test rule: ``rank()`` and ``world()`` read the environment, each as its own fix that
    needs ``import os`` (and ``world()`` also ``import sys``, to place two imports at once)."""

    code = "TST001"
    name = "from-environ"
    summary = rationale = "test rule"
    triggers = ("rank()", "world()")
    settles = True  # so the first pass that applies everything is the last
    runs: ClassVar[list[int]] = []

    def run(self, ctx: RuleContext) -> None:
        self.runs.append(1)
        for call in ctx.tree.nodes(cst.Call):
            if isinstance(call.func, cst.Name) and call.func.value in ("rank", "world"):
                var = "RANK" if call.func.value == "rank" else "WORLD_SIZE"
                new = cst.parse_expression(f"int(os.environ['{var}'])")
                if var == "RANK":
                    ctx.fix(call, f"read {var}", {call: new}, imports=("os",))
                else:  # rebuilds its whole statement
                    line = ctx.tree.parent(ctx.tree.statement(call))
                    assert isinstance(line, cst.SimpleStatementLine)
                    rebuilt = line.deep_replace(call, new)
                    ctx.fix(call, f"read {var}", {line: rebuilt}, imports=("os", "sys"))


def _from_environ(text: str) -> tuple[str, int]:
    _FromEnviron.runs.clear()
    out, findings = fix_text(textwrap.dedent(text), [_FromEnviron()], checks=[])
    assert sorted(f.message for f in findings if f.fixed) == ["read RANK", "read WORLD_SIZE"]
    return out, len(_FromEnviron.runs)


def test_fixes_needing_the_same_import_share_one_pass_and_one_import() -> None:
    out, passes = _from_environ(
        """\
        \"\"\"Doc.\"\"\"
        import argparse
        import torch

        r = rank()
        w = world()
        """
    )
    assert passes == 1  # as two fixes each adding its own `import os`, the second waited a pass
    assert out == textwrap.dedent(
        """\
        \"\"\"Doc.\"\"\"
        import argparse
        import os
        import sys
        import torch

        r = int(os.environ['RANK'])
        w = int(os.environ['WORLD_SIZE'])
        """
    )


def test_declared_imports_the_module_has_are_not_added_again() -> None:
    text = "import os, sys\n\nr = rank()\nw = world()\n"
    out, passes = _from_environ(text)
    assert passes == 1
    assert (
        out == "import os, sys\n\nr = int(os.environ['RANK'])\nw = int(os.environ['WORLD_SIZE'])\n"
    )


def test_an_import_at_a_statement_a_fix_rebuilds_follows_in_the_same_pass() -> None:
    # no plain imports: the imports go before the first statement, which a fix rebuilds
    out, passes = _from_environ("w = world()\nr = rank()\n")
    assert passes == 1
    assert out == (
        "import os\nimport sys\n\nw = int(os.environ['WORLD_SIZE'])\nr = int(os.environ['RANK'])\n"
    )


class _Renames(Rule):
    """A test rule: each call of one of ``names`` becomes a call of ``new_<name>``, one fix each."""

    name = "renames"
    summary = rationale = "test rule"
    settles = True
    names: ClassVar[tuple[str, ...]] = ()
    runs: ClassVar[list[str]] = []

    def run(self, ctx: RuleContext) -> None:
        self.runs.append(self.code)
        for call in ctx.tree.nodes(cst.Call):
            if isinstance(call.func, cst.Name) and call.func.value in self.names:
                new = call.with_changes(func=cst.Name(f"new_{call.func.value}"))
                ctx.fix(call, f"rename {call.func.value}", {call: new})


class _RenamesABC(_Renames):
    code = "TST002"
    triggers = names = ("a", "b", "c")


class _RenamesD(_Renames):
    code = "TST003"
    triggers = names = ("d",)


def _withdrawn(reason: str) -> tuple[str, list[str], int, int]:
    """The output, the withdrawn fixes' messages, the pass sequences run and the rule runs for
    a script where renaming both ``c`` and ``d`` breaks a post-condition (either withdrawal
    alone mends it)."""

    def both(tree: Tree) -> Mapping[Hashable, str]:
        return {"both": reason} if "new_c(" in tree.code and "new_d(" in tree.code else {}

    _Renames.runs.clear()
    with mock.patch.object(engine, "_passes", wraps=engine._passes) as sequences:
        out, findings = fix_text(
            "a()\nb()\nc()\nd()\n", [_RenamesABC(), _RenamesD()], checks=[both]
        )
    withdrawn = [f.message for f in findings if "not rewritten" in f.message]
    return out, withdrawn, sequences.call_count, len(_Renames.runs)


def test_a_broken_post_condition_withdraws_the_fix_bisection_finds() -> None:
    out, withdrawn, sequences, runs = _withdrawn("c and d together")
    # a, b withdrawn together keep the violation; c alone removes it: c goes, d stays
    assert out == "new_a()\nnew_b()\nc()\nnew_d()\n"
    assert withdrawn == ["rename c; not rewritten: c and d together"]
    assert sequences == 3  # the first run, then [a, b], then [c] (confirmed from memory)
    assert runs == 2  # every run starts from the input, whose pass the rules made once


def test_a_reason_naming_a_rule_withdraws_that_rules_fix_first() -> None:
    out, withdrawn, sequences, runs = _withdrawn(Reason("c and d together", ("TST003",)))
    assert out == "new_a()\nnew_b()\nnew_c()\nd()\n"
    assert withdrawn == ["rename d; not rewritten: c and d together"]
    assert (sequences, runs) == (2, 2)  # the first run and one trial without d


def test_fixes_that_break_a_post_condition_only_together_are_found_among_the_suspects() -> None:
    """Two fixes of suspected rules, each harmful alone (two gates of one save): withdrawing
    the suspects together, then putting back each one not needed, takes fewer runs than
    bisecting every fix and putting back each of them."""

    def either(reason: str) -> Callable[[Tree], Mapping[Hashable, str]]:
        def check(tree: Tree) -> Mapping[Hashable, str]:
            bad = "new_d(" in tree.code or "\nx()" in tree.code  # y() renamed x()
            return {"either": reason} if bad else {}

        return check

    text = "a()\nb()\nc()\nd()\ny()\n"
    rules = [_RenamesABC(), _RenamesD(), _RenamesNewX()]
    runs = []
    for reason in (Reason("d or y", ("TST003", "TST005")), "d or y"):
        with mock.patch.object(engine, "_passes", wraps=engine._passes) as sequences:
            out, findings = fix_text(text, rules, checks=[either(reason)])
        assert out == "new_a()\nnew_b()\nnew_c()\nd()\ny()\n"
        withdrawn = sorted(f.message for f in findings if "not rewritten" in f.message)
        assert withdrawn == ["rename d; not rewritten: d or y", "rename y; not rewritten: d or y"]
        runs.append(sequences.call_count)
    assert runs[0] < runs[1], runs


class _JudgesRenamed(Rule):
    """A test rule that judges the output: it reports every ``new_*()`` call of the version it
    sees, and renames ``x()`` to ``done_x()`` (a fix, proposed in every pass)."""

    code = "TST004"
    name = "judges-renamed"
    summary = rationale = "test rule"
    judges_output = True
    triggers = ("x(", "new_")
    seen: ClassVar[list[bool]] = []

    def run(self, ctx: RuleContext) -> None:
        self.seen.append(ctx.judging)
        for call in ctx.tree.nodes(cst.Call):
            if not isinstance(call.func, cst.Name):
                continue
            if call.func.value == "x":
                ctx.fix(call, "finish x", {call: call.with_changes(func=cst.Name("done_x"))})
            elif call.func.value.startswith("new_") and ctx.judging:
                ctx.report(call, f"{call.func.value} seen")


class _RenamesNewX(_Renames):
    code = "TST005"
    triggers = names = ("y",)

    def run(self, ctx: RuleContext) -> None:  # y() becomes x(): work for the judging rule
        for call in ctx.tree.nodes(cst.Call):
            if isinstance(call.func, cst.Name) and call.func.value == "y":
                ctx.fix(call, "rename y", {call: call.with_changes(func=cst.Name("x"))})


def test_a_judging_rule_fixes_in_the_passes_and_reports_on_the_output_only() -> None:
    _JudgesRenamed.seen.clear()
    out, findings = fix_text("x()\na()\n", [_JudgesRenamed(), _RenamesABC()], checks=[])
    assert out == "done_x()\nnew_a()\n"
    assert [(f.code, f.message, f.fixed) for f in findings] == [
        ("TST004", "finish x", True),
        ("TST002", "rename a", True),
        ("TST004", "new_a seen", False),  # made on the output, where a() is new_a()
    ]
    assert _JudgesRenamed.seen[-1] is True and not any(_JudgesRenamed.seen[:-1])


def test_a_judging_rules_fix_made_possible_by_settling_fixes_is_applied() -> None:
    # y() becomes x() in a pass of settling fixes only; finishing x is then possible, so the
    # passes go on instead of stopping: the output is a fixed point (a second run changes
    # nothing), not a report a second `apply` would fix
    rules = [_JudgesRenamed(), _RenamesNewX()]
    out, findings = fix_text("y()\n", rules, checks=[])
    assert out == "done_x()\n"
    assert [(f.code, f.message, f.fixed) for f in findings] == [
        ("TST004", "finish x", True),
        ("TST005", "rename y", True),
    ]
    assert fix_text(out, rules, checks=[]) == (out, [])


def test_a_withdrawn_fix_quoting_a_line_stays_withdrawn_when_lines_shift() -> None:
    """DDP014's message quotes the sampler's line; PRT003 adds lines above it in the same run.
    The ban must still name the wrap (a fix key ignores quoted lines), not the fix that shifted
    them, and the report quotes the input's line."""
    source = (
        Path(__file__).parent / "fixtures/DDP014/early_stop_mark_on_rank_zero.in.py"
    ).read_text()
    source = source.replace(
        '        torch.distributed.init_process_group(backend="nccl")\n',
        "        torch.cuda.set_device(args.local_rank)\n"
        '        torch.distributed.init_process_group(backend="nccl")\n',
    )
    lines = source.splitlines()
    sampler = 1 + next(i for i, line in enumerate(lines) if "DistributedSampler(data)" in line)
    output, findings = fix_text(source, all_rules())
    withdrawn = [f for f in findings if not f.fixed and "not rewritten" in f.message]
    assert [f.code for f in withdrawn] == ["DDP014"], [(f.code, f.message) for f in withdrawn]
    assert f"(line {sampler})" in withdrawn[0].message
    assert "torch.cuda.is_available()" in output  # PRT003's guards applied
    assert "DistributedDataParallel(" not in output


@pytest.mark.parametrize(
    ("binding", "how"),
    [
        ("from datetime import datetime", "from datetime import datetime"),
        ("from time import time as datetime", "from time import time as datetime"),
        ("import numpy as datetime", "import numpy as datetime"),
        ("def datetime():\n    pass", "def datetime"),
        ("datetime = None", "datetime = ..."),
    ],
)
def test_a_fix_whose_module_name_is_taken_is_reported(binding: str, how: str) -> None:
    """A fix needing ``import datetime`` where ``datetime`` is bound to something else would be
    rebound by that binding: reported, with what binds it, and the file keeps the rest."""
    source = (
        f"import torch\n{binding}\n\n\ndef main(args):\n"
        "    parser.add_argument('--local_rank', type=int, default=-1)\n"
        "    if args.local_rank != -1:\n"
        "        torch.distributed.init_process_group(backend='gloo')\n"
        "    if args.local_rank in [-1, 0]:\n"
        "        evaluate(args)\n"
        "    torch.distributed.barrier()\n"
    )
    output, findings = fix_text(source, select_rules(every_rule(), ["DDP010"]))
    assert output == source
    (finding,) = findings
    assert not finding.fixed
    assert f"`{how}` binds datetime to something else here" in finding.message
    plain = source.replace(binding, "import os")
    output, findings = fix_text(plain, select_rules(every_rule(), ["DDP010"]))
    assert "timeout=datetime.timedelta" in output and findings[0].fixed
