"""PRT003's CPU fallback keeps what the expression around a cuda device meant.

The fallback is a conditional expression, which binds more loosely than anything it can land in:
``torch.device("cuda") if args.cuda else torch.device("cpu")`` rewritten without parentheses read
``cuda if available else (cpu if args.cuda else cpu)``, so a GPU machine run without ``--cuda``
got the GPU; ``torch.device("cuda").type`` took ``.type`` of the CPU branch only; and a comparison
``device == torch.device("cuda")`` became ``(device == cuda) if available else cpu``, a device
object, true on every CPU machine. The fixture's statements are run here as the script runs them,
with CUDA present and absent (``torch.cuda.is_available`` patched: building a cuda
``torch.device`` needs no GPU), against the original's values.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from patcher.engine import fix_text
from patcher.registry import every_rule, select_rules

torch = pytest.importorskip("torch")

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE = FIXTURES / "PRT003" / "device_inside_expressions.in.py"


def _run(source: str, argv: list[str], cuda: bool, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(sys, "argv", ["run.py", *argv])
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    scope: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(source, "run.py", "exec"), scope)
    return {
        "device": scope["device"],
        "second": scope["second"],
        "kind": scope["kind"],
        "benchmark": torch.backends.cudnn.benchmark,
    }


@pytest.fixture(scope="module")
def sources() -> tuple[str, str]:
    original = FIXTURE.read_text()
    fixed, _ = fix_text(original, select_rules(every_rule(), ["PRT003"]))
    assert fixed != original
    return original, fixed


@pytest.mark.parametrize("argv", [[], ["--cuda"], ["--cuda", "--n_gpu", "0"]])
def test_with_cuda_the_patched_script_chooses_what_the_original_chose(
    sources: tuple[str, str], argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    original, fixed = sources
    assert _run(fixed, argv, True, monkeypatch) == _run(original, argv, True, monkeypatch)


@pytest.mark.parametrize("argv", [[], ["--cuda"], ["--cuda", "--n_gpu", "0"]])
def test_without_cuda_every_device_is_the_cpu_and_tests_stay_false(
    sources: tuple[str, str], argv: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _run(sources[1], argv, False, monkeypatch)
    assert values["device"] == torch.device("cpu")
    assert values["second"] in (torch.device("cpu"), "cpu")
    assert values["kind"] == "cpu"
    assert values["benchmark"] is False  # `device == torch.device("cuda")` left as a test


def test_comparisons_with_a_cuda_device_are_not_rewritten(sources: tuple[str, str]) -> None:
    fixed = sources[1]
    assert 'if device == torch.device("cuda"):\n' in fixed
    assert 'if torch.device("cuda", 0) != device:\n' in fixed
