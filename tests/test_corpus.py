"""Opt-in: run over real checkouts. ``DDPFIX_CORPUS=/path/to/CodeXGLUE[:/path/to/CodeBERT]``.

Nothing from those checkouts is stored here; the tests skip when the variable is unset.
"""

from __future__ import annotations

import ast
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from locality import unexplained_changes
from patcher.engine import QUOTED_LINE, fix_text
from patcher.registry import all_rules
from patcher.source import SourceError, read_source
from patcher.upstream import load_manifests

ROOTS = [Path(p) for p in os.environ.get("DDPFIX_CORPUS", "").split(os.pathsep) if p]
pytestmark = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a checkout to run")

FOUR = (
    "Code-Code/Clone-detection-BigCloneBench/code/run.py",
    "Code-Code/Clone-detection-POJ-104/code/run.py",
    "Code-Code/Defect-detection/code/run.py",
    "Text-Code/NL-code-search-Adv/code/run.py",
)


def _unlined(message: str) -> str:
    """A message without the line numbers it quotes: they are lines of its input, which apply
    shifted (a withdrawn fix quotes the input's line, the second run the output's)."""
    return QUOTED_LINE.sub("line #", message)


def _python_files() -> list[Path]:
    return [p for root in ROOTS for p in sorted(root.rglob("*.py")) if ".git" not in p.parts]


def test_every_file_parses_idempotent_no_failure(capsys) -> None:
    rules = all_rules()
    changed: Counter[str] = Counter()
    files = _python_files()
    assert files, f"no Python files under {ROOTS}"
    for path in files:
        try:
            text = read_source(path).text
            once, findings = fix_text(text, rules)
        except SourceError:
            continue  # Python 2 or broken upstream files are reported, not crashed on
        ast.parse(once)
        twice, again = fix_text(once, rules)
        assert twice == once, f"not idempotent: {path}"
        unfixed = sorted((f.code, _unlined(f.message)) for f in findings if not f.fixed)
        assert sorted((f.code, _unlined(f.message)) for f in again) == unfixed, (
            f"report lost: {path}"
        )
        fixed_at = {f.line for f in findings if f.fixed}
        assert not unexplained_changes(text, once, fixed_at), f"not local: {path}"
        for code in {f.code for f in findings if f.fixed}:
            changed[code] += 1
    with capsys.disabled():
        per_rule = dict(sorted(changed.items()))
        print(f"\ncorpus: {len(files)} files; files changed per rule: {per_rule}")


def test_pinned_scripts_get_exactly_the_expected_fixes() -> None:
    seen = 0
    for pin in load_manifests():
        for root in ROOTS:
            path = root / pin.path
            if not path.exists() or not pin.matches(path.read_bytes()):
                continue
            seen += 1
            _, findings = fix_text(read_source(path).text, all_rules())
            assert dict(Counter(f.code for f in findings if f.fixed)) == pin.fixes, pin.path
            assert dict(Counter(f.code for f in findings if not f.fixed)) == pin.unfixed, pin.path
    if not seen:
        pytest.skip("no pinned script at its pinned version under DDPFIX_CORPUS")


@pytest.mark.parametrize("relative", FOUR)
def test_the_four_classification_scripts_end_up_right(relative: str) -> None:
    path = next((root / relative for root in ROOTS if (root / relative).exists()), None)
    if path is None:
        pytest.skip(f"{relative} not under DDPFIX_CORPUS")
    out, _ = fix_text(read_source(path).text, all_rules())
    assert re.search(r"\.parse_args\(\)\n\s+# ddpfix:.*\n\s+if \"LOCAL_RANK\" in os.environ", out)
    assert '"--local_rank", "--local-rank"' in out
    assert "local_rank == -1 and args.evaluate_during_training" not in out
    gate = (
        'int(os.environ.get("RANK", args.local_rank)) in [-1, 0] and args.evaluate_during_training'
    )
    assert gate in out  # rank 0 of the whole job (DDP003, then DDP008)
    assert 'evaluate(args, model.module if hasattr(model, "module") else model' in out
    assert "else DistributedSampler(eval_dataset)" not in out
    assert out.count("eval_sampler = SequentialSampler(eval_dataset)\n") == 2
    # the best-model read now sits inside the evaluation gate
    gate = out.index(gate)
    read = out.index("if results['eval_", gate)
    gate_indent = len(out[:gate].rsplit("\n", 1)[1]) - len("if ")
    read_indent = len(out[:read].rsplit("\n", 1)[1])
    assert read_indent > gate_indent
    assert fix_text(out, all_rules())[0] == out


def test_upstream_status_reports_every_pin_unchanged() -> None:
    from patcher.upstream import status

    for root in ROOTS:
        drifts = status(root)
        pinned = [d for d in drifts if d.state != "new"]
        if not pinned:
            continue
        assert {d.state for d in pinned} == {"unchanged"}, [d.to_json() for d in pinned]
        assert not [d for d in drifts if d.state == "new"]
