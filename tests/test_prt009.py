"""PRT009: every relocation rewrites to the exact import, and that import really works.

The import check runs the rewritten lines in a fresh interpreter against the installed
transformers. ``DDPFIX_TRANSFORMERS4_PYTHON=/path/to/python`` (an environment with transformers
4.40) runs the same lines there too, since patched scripts must work on either.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from patcher.engine import fix_text
from patches.prt009_transformers5_imports import (
    LAYER_NORM,
    NOT_MOVED,
    RELOCATED,
    REMOVED,
    Transformers5Imports,
)

RULE = [Transformers5Imports()]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "PRT009"

RELOCATIONS = sorted(
    (old, new, name) for old, (new, names) in RELOCATED.items() for name in sorted(names)
)
LAYER_NORM_CASES = (
    (
        "from transformers.modeling_bert import BertLayerNorm\n",
        "from torch.nn import LayerNorm as BertLayerNorm\n",
    ),
    (
        "from transformers.modeling_bert import BertLayerNorm as LN\n",
        "from torch.nn import LayerNorm as LN\n",
    ),
    (
        "from transformers.modeling_bert import BertLayerNorm as LayerNorm\n",
        "from torch.nn import LayerNorm\n",
    ),
    (
        "# layers\nfrom transformers.modeling_bert import BertModel, BertLayerNorm, BertPooler\n",
        "# layers\nfrom transformers.models.bert.modeling_bert import BertModel, BertPooler\n"
        "from torch.nn import LayerNorm as BertLayerNorm\n",
    ),
    (
        "from transformers.modeling_bert import (\n    BertLayerNorm,\n    BertModel,\n)\n",
        "from transformers.models.bert.modeling_bert import (\n    BertModel,\n)\n"
        "from torch.nn import LayerNorm as BertLayerNorm\n",
    ),
)
REPORTS = sorted(
    (module, name, message) for name, (modules, message) in REMOVED.items() for module in modules
)


def _fix(source: str) -> tuple[str, list]:
    return fix_text(source, RULE)


@pytest.mark.parametrize(("old", "new", "name"), RELOCATIONS, ids=lambda v: str(v))
def test_relocation_is_exact_and_idempotent(old: str, new: str, name: str) -> None:
    source = f"from {old} import {name}\n"
    output, findings = _fix(source)
    assert output == f"from {new} import {name}\n"
    assert [f.fixed for f in findings] == [True]
    assert _fix(output) == (output, [])


def test_aliases_and_parentheses_are_kept() -> None:
    source = (
        "from transformers.modeling_roberta import (  # heads\n"
        "    RobertaModel as Encoder,\n"
        "    RobertaClassificationHead,\n"
        ")\n"
    )
    output, _ = _fix(source)
    assert output == source.replace(
        "transformers.modeling_roberta", "transformers.models.roberta.modeling_roberta"
    )


@pytest.mark.parametrize(("source", "expected"), LAYER_NORM_CASES)
def test_bert_layer_norm_becomes_torch_layer_norm(source: str, expected: str) -> None:
    output, findings = _fix(source)
    assert output == expected
    assert all(f.fixed for f in findings) and findings
    assert _fix(output) == (output, [])


@pytest.mark.parametrize(("module", "name", "message"), REPORTS)
def test_removed_name_is_reported_not_fixed(module: str, name: str, message: str) -> None:
    source = f"from {module} import {name}\n"
    output, findings = _fix(source)
    assert output == source
    assert [f.fixed for f in findings] == [False]
    assert message in findings[0].message  # a flat module's report names its new path first
    assert _fix(output)[1] == findings


@pytest.mark.parametrize(("module", "name"), sorted(NOT_MOVED))
def test_flat_import_with_a_name_that_did_not_move_is_left_whole(module: str, name: str) -> None:
    new = RELOCATED[module][0]
    source = f"from {module} import {name}, {sorted(RELOCATED[module][1])[0]}\n"
    output, findings = _fix(source)
    assert output == source
    assert len(findings) == 1 and not findings[0].fixed
    assert new in findings[0].message and NOT_MOVED[module, name] in findings[0].message


def test_attribute_use_of_a_removed_name_is_reported() -> None:
    source = "import transformers\ns = transformers.WarmupLinearSchedule(opt, 10, 100)\n"
    output, findings = _fix(source)
    assert output == source
    assert [(f.line, f.fixed) for f in findings] == [(2, False)]
    assert "get_linear_schedule_with_warmup" in findings[0].message


def test_look_alikes_are_left_alone() -> None:
    source = (
        "from transformers.models.bert.modeling_bert import BertModel\n"
        "from transformers.tokenization_utils_base import TruncationStrategy\n"
        "from transformers.modeling_utils import PreTrainedModel\n"
        "from .modeling_bert import BertLayerNorm\n"
        "from pytorch_transformers import WarmupLinearSchedule\n"
        "schedule = self.transformers.cached_path\n"
    )
    assert _fix(source) == (source, [])


def test_fixtures_are_idempotent() -> None:
    for path in sorted(FIXTURES.glob("*.in.py")):
        once, _ = _fix(path.read_text())
        assert _fix(once)[0] == once, path.name


def _rewritten_import_lines() -> list[str]:
    lines = {f"from {new} import {name}" for _, new, name in RELOCATIONS}
    lines |= {expected.splitlines()[-1] for _, expected in LAYER_NORM_CASES}
    for path in sorted(FIXTURES.glob("*.out.py")):
        source = path.read_text()
        output, _ = _fix(source)
        for line in output.splitlines():
            if line.startswith("from transformers") or line.startswith("from torch.nn"):
                if not line.rstrip().endswith("("):
                    lines.add(line.split("#")[0].rstrip())
    return sorted(lines)


_CHECK = """
import sys
failed = []
for line in sys.stdin.read().splitlines():
    try:
        exec(line, {})
    except Exception as error:  # noqa: BLE001 - every failure is reported
        failed.append(f"{line}: {type(error).__name__}: {error}")
print("\\n".join(failed))
"""


def _failing_imports(python: str) -> list[str]:
    lines = _rewritten_import_lines()
    assert len(lines) > 150
    result = subprocess.run(
        [python, "-c", _CHECK], input="\n".join(lines), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_every_rewritten_import_imports() -> None:
    pytest.importorskip("transformers")
    assert _failing_imports(sys.executable) == []


@pytest.mark.skipif(
    not os.environ.get("DDPFIX_TRANSFORMERS4_PYTHON"),
    reason="set DDPFIX_TRANSFORMERS4_PYTHON to an interpreter with transformers 4.40",
)
def test_every_rewritten_import_imports_on_transformers_4() -> None:
    failing = _failing_imports(os.environ["DDPFIX_TRANSFORMERS4_PYTHON"])
    # sentencepiece-backed tokenizers need sentencepiece installed to import in 4.x
    assert [f for f in failing if "sentencepiece" not in f] == []


def test_named_replacements_exist() -> None:
    transformers = pytest.importorskip("transformers")
    for name in (
        "get_linear_schedule_with_warmup",
        "get_constant_schedule_with_warmup",
        "get_cosine_schedule_with_warmup",
        "get_cosine_with_hard_restarts_schedule_with_warmup",
        "get_constant_schedule",
        "AutoModelForCausalLM",
        "AutoModelForMaskedLM",
        "AutoModelForSeq2SeqLM",
    ):
        assert hasattr(transformers, name), name
        for message in (m for _, m in REMOVED.values()):
            if name in message:
                break
        else:
            raise AssertionError(f"{name} named by no report")
    from transformers.pytorch_utils import prune_linear_layer  # noqa: F401

    assert LAYER_NORM == ("transformers.modeling_bert", "BertLayerNorm")
