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
    PRUNE,
    PRUNE_MODULES,
    RELOCATED,
    REMOVED,
    TO_PYTORCH_UTILS,
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
    (module, name, message)
    for name, (modules, message) in REMOVED.items()
    for module in modules
    if name != PRUNE  # defined in the script instead (below)
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
    lines |= {f"from transformers.pytorch_utils import {name}" for name in TO_PYTORCH_UTILS}
    lines |= {expected.splitlines()[-1] for _, expected in LAYER_NORM_CASES}
    for path in sorted(FIXTURES.glob("*.out.py")):
        source = path.read_text()
        output, _ = _fix(source)
        untouched = set(path.with_name(path.name.replace(".out.", ".in.")).read_text().splitlines())
        for line in output.splitlines():
            if line in untouched:  # a line the rule left (a reported import)
                continue
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


PRUNE_SOURCE = """\
# model code
import math
from transformers.pytorch_utils import apply_chunking_to_forward, {name}, prune_linear_layer
from transformers.utils import logging

logger = logging.get_logger(__name__)
"""


@pytest.mark.parametrize("module", PRUNE_MODULES)
def test_removed_pruning_helper_is_defined_after_the_imports(module: str) -> None:
    source = PRUNE_SOURCE.format(name=PRUNE).replace("transformers.pytorch_utils", module)
    output, findings = _fix(source)
    # modeling_utils's other two names move to pytorch_utils in the same fix
    moved = 2 if module == "transformers.modeling_utils" else 0
    assert [(f.line, f.fixed) for f in findings] == [(3, True)] * (1 + moved)
    head, definition = output.split("\n\n\ndef ")
    assert head == (
        "# model code\nimport math\nimport torch\n"
        "from transformers.pytorch_utils import apply_chunking_to_forward, prune_linear_layer\n"
        "from transformers.utils import logging"
    )
    assert definition.startswith(f"{PRUNE}(heads, n_heads, head_size, already_pruned_heads):")
    assert definition.endswith("\n\nlogger = logging.get_logger(__name__)\n")
    assert _fix(output) == (output, [])


def test_pruning_helper_alone_on_its_line_keeps_its_alias() -> None:
    source = (
        "import torch\n"
        f"from transformers.modeling_utils import {PRUNE} as find_heads\n"
        "from transformers import BertModel\n"
    )
    output, findings = _fix(source)
    assert [f.fixed for f in findings] == [True]
    assert output.startswith("import torch\nfrom transformers import BertModel\n\n\n")
    assert "def find_heads(heads, n_heads, head_size, already_pruned_heads):" in output
    assert PRUNE not in output.replace("def find_heads", "")


@pytest.mark.parametrize(
    "source",
    [
        # inside a function: no module-level line to replace
        f"def load():\n    from transformers.pytorch_utils import {PRUNE}\n    return {PRUNE}\n",
        # the name is bound again at module level
        f"from transformers.pytorch_utils import {PRUNE}\n{PRUNE} = None\n",
        # ... or defined there already
        f"from transformers.pytorch_utils import {PRUNE}\ndef {PRUNE}(*args):\n    pass\n",
        # several statements on the line
        f"from transformers.pytorch_utils import {PRUNE}; import os\n",
    ],
)
def test_pruning_helper_is_reported_where_a_definition_is_not_certain(source: str) -> None:
    output, findings = _fix(source)
    assert output == source
    assert [f.fixed for f in findings] == [False]
    assert "define the helper in the script" in findings[0].message


def test_defined_pruning_helper_gives_transformers_4s_heads_and_rows() -> None:
    """transformers 4's documented behaviour: the heads to prune that are not pruned yet, and
    the rows of the current layer to keep, where a head's rows now sit at its index less the
    heads pruned before it."""
    torch = pytest.importorskip("torch")
    output, _ = _fix(f"import torch\nfrom transformers.pytorch_utils import {PRUNE}\n")
    namespace: dict = {}
    exec(compile(output, "<patched>", "exec"), namespace)
    find = namespace[PRUNE]
    # 4 heads of 2 rows, none pruned: prune head 1 -> rows 2, 3 go
    heads, index = find([1], 4, 2, set())
    assert heads == {1} and index.dtype == torch.long
    assert index.tolist() == [0, 1, 4, 5, 6, 7]
    # 5 heads, head 1 pruned before (4 left): pruning 1 again and 3 -> only 3, now at row
    # block 2 (one pruned head below it)
    heads, index = find([1, 3], 4, 2, {1})
    assert heads == {3}
    assert index.tolist() == [0, 1, 2, 3, 6, 7]
    # nothing new to prune: every row stays
    heads, index = find([0], 2, 3, {0})
    assert heads == set() and index.tolist() == list(range(6))
    # the rows kept prune a real layer to the heads left
    from transformers.pytorch_utils import prune_linear_layer

    layer = torch.nn.Linear(4, 8)
    _, index = find([0, 2], 4, 2, set())
    pruned = prune_linear_layer(layer, index)
    assert pruned.out_features == 4
    assert torch.equal(pruned.weight, layer.weight[[2, 3, 6, 7]])


@pytest.mark.parametrize("name", sorted(TO_PYTORCH_UTILS))
def test_modeling_utils_reexports_move_to_pytorch_utils(name: str) -> None:
    output, findings = _fix(f"from transformers.modeling_utils import {name}\n")
    assert output == f"from transformers.pytorch_utils import {name}\n"
    assert [f.fixed for f in findings] == [True]
    assert _fix(output) == (output, [])


def test_modeling_utils_import_split_keeps_the_rest_and_defines_the_helper() -> None:
    source = (
        "import torch\n"
        "from transformers.modeling_utils import (\n"
        "    PreTrainedModel,\n"
        "    Conv1D as GPTConv1D,\n"
        f"    {PRUNE},\n"
        "    prune_conv1d_layer,\n"
        ")\n"
    )
    output, findings = _fix(source)
    head = output.split("\n\n\ndef ")[0]
    assert head == (
        "import torch\n"
        "from transformers.modeling_utils import (\n"
        "    PreTrainedModel,\n"
        "    prune_conv1d_layer,\n"
        ")\n"
        "from transformers.pytorch_utils import Conv1D as GPTConv1D"
    )
    assert f"def {PRUNE}(" in output
    assert [(f.fixed, f.message.split()[0]) for f in findings] == [
        (True, PRUNE),
        (True, "Conv1D"),
        (False, "prune_conv1d_layer"),
    ]
    assert _fix(output)[0] == output


def test_helper_exists_before_top_level_code_runs_and_keeps_the_comment(tmp_path) -> None:
    """Fixture helper_before_main: the import's comment moves with the helper, which goes
    before the top-level code that calls it (not after the late ``import sys``), so the
    rewritten file runs as a script and prunes as transformers 4 did."""
    pytest.importorskip("torch")
    source = (FIXTURES / "helper_before_main.in.py").read_text()
    output, findings = _fix(source)
    assert [f.fixed for f in findings] == [True]
    assert "# pruning is done the BERT way, see prune_heads\ndef " + PRUNE in output
    assert output.index(f"def {PRUNE}(") < output.index('if __name__ == "__main__":')
    script = tmp_path / "attention.py"
    script.write_text(output)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tensor([0, 1, 4, 5, 6, 7])"


#: transformers 4.40.2's ``find_pruneable_heads_and_indices`` on these arguments (heads,
#: n_heads, head_size, already pruned), computed once with it installed: the heads returned
#: (sorted) and the rows kept, or the exception raised. Negative heads count from the end, as
#: the tensor index 4 made of them did. The full random comparison is in
#: tests/test_transformers4_reference.py (opt-in).
TRANSFORMERS_4_PRUNING = [
    (([1], 4, 2, set()), ([1], [0, 1, 4, 5, 6, 7])),
    (([1, 3], 4, 2, {1}), ([3], [0, 1, 2, 3, 6, 7])),
    (([0], 2, 3, {0}), ([], [0, 1, 2, 3, 4, 5])),
    (([-1], 4, 2, set()), ([-1], [0, 1, 2, 3, 4, 5])),
    (([-4], 4, 1, set()), ([-4], [1, 2, 3])),
    (([-5], 4, 1, set()), "IndexError"),
    (([4], 4, 2, set()), "IndexError"),
    (([5], 4, 2, {1, 2}), ([5], [0, 1, 2, 3, 4, 5])),
    (([6], 4, 2, {1, 2}), "IndexError"),
    (([0, 2, -1], 5, 2, set()), ([-1, 0, 2], [2, 3, 6, 7])),
    (([], 3, 2, {0}), ([], [0, 1, 2, 3, 4, 5])),
    (([2, 2, 7], 6, 1, {0, 3}), ([2, 7], [0, 2, 3, 4])),
]


@pytest.mark.parametrize(("args", "expected"), TRANSFORMERS_4_PRUNING)
def test_pruning_helper_matches_transformers_4s_table(args: tuple, expected: object) -> None:
    pytest.importorskip("torch")
    output, _ = _fix(f"import torch\nfrom transformers.pytorch_utils import {PRUNE}\n")
    namespace: dict = {}
    exec(compile(output, "<patched>", "exec"), namespace)
    heads, n_heads, head_size, pruned = args
    if isinstance(expected, str):
        with pytest.raises(IndexError):
            namespace[PRUNE](list(heads), n_heads, head_size, set(pruned))
        return
    got_heads, index = namespace[PRUNE](list(heads), n_heads, head_size, set(pruned))
    assert (sorted(got_heads), index.tolist()) == expected
