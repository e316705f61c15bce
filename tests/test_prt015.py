"""PRT015: which calls and fields it rewrites or reports, and that the rewritten code means on the
installed transformers what transformers 4 did.

The mask helper is run against transformers 4's documented behaviour, written out by hand on
small masks (``(1 - mask) * finfo.min`` after adding head axes; a decoder's causal mask with the
cached positions visible). The output class is built the ways model code builds it, on the
installed ``ModelOutput`` and on a plain base standing in for transformers 4's (no
``past_key_values`` property).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, fields
from types import SimpleNamespace
from typing import Any

import pytest

from patcher.engine import fix_text
from patches import _extended_mask
from patches.prt015_transformers5_model_code import Transformers5ModelCode

RULE = [Transformers5ModelCode()]


def _fix(source: str) -> tuple[str, list]:
    return fix_text(textwrap.dedent(source), RULE)


MODEL = """\
import torch
from transformers.modeling_utils import PreTrainedModel


class Base(PreTrainedModel):
    pass


class Model(Base):
    @add_start_docstrings_to_model_forward("...")
    def forward(self, ids, mask):
        first = self.get_extended_attention_mask(mask, ids.shape)
        second = self.get_extended_attention_mask(mask, ids.shape, dtype=torch.float16)
        return first, second
"""


def test_calls_through_a_local_base_become_the_module_function_once() -> None:
    output, findings = _fix(MODEL)
    assert output.count("def get_extended_attention_mask(") == 1
    assert output.index("def get_extended_attention_mask(") > output.index("import PreTrainedModel")
    assert "first = get_extended_attention_mask(self, mask, ids.shape)\n" in output
    assert "get_extended_attention_mask(self, mask, ids.shape, dtype=torch.float16)" in output
    assert [(f.line, f.fixed) for f in findings] == [(12, True), (13, True)]
    assert _fix(output) == (output, [])


@pytest.mark.parametrize(
    "source",
    [
        # not a transformers model: nn.Module only
        "from torch import nn\nclass M(nn.Module):\n"
        "    def f(self, m, s):\n        return self.get_extended_attention_mask(m, s)\n",
        # the class defines it itself (or a local base does)
        "from transformers import PreTrainedModel\nclass B(PreTrainedModel):\n"
        "    def get_extended_attention_mask(self, m, s):\n        return m\n"
        "class M(B):\n    def f(self, m, s):\n"
        "        return self.get_extended_attention_mask(m, s)\n",
        # a static method's first parameter is not the model
        "from transformers import PreTrainedModel\nclass M(PreTrainedModel):\n"
        "    @staticmethod\n    def f(self, m, s):\n"
        "        return self.get_extended_attention_mask(m, s)\n",
    ],
)
def test_someone_elses_method_is_left_alone(source: str) -> None:
    assert _fix(source) == (source, [])


@pytest.mark.parametrize(
    ("source", "line"),
    [
        # a base from elsewhere: cannot tell what defines the method
        (
            "from .modeling import Base\nclass M(Base):\n"
            "    def f(self, m, s):\n        return self.get_extended_attention_mask(m, s)\n",
            4,
        ),
        # self rebound in the method
        (
            "from transformers import PreTrainedModel\nclass M(PreTrainedModel):\n"
            "    def f(self, m, s):\n        self = self.inner\n"
            "        return self.get_extended_attention_mask(m, s)\n",
            5,
        ),
        # the helper's name is taken at module level
        (
            "from transformers import PreTrainedModel\nget_extended_attention_mask = None\n"
            "class M(PreTrainedModel):\n"
            "    def f(self, m, s):\n        return self.get_extended_attention_mask(m, s)\n",
            5,
        ),
        # the other ModuleUtilsMixin helpers 5 removed
        (
            "from transformers import PreTrainedModel\nclass M(PreTrainedModel):\n"
            "    def f(self, m):\n        return self.invert_attention_mask(m)\n",
            4,
        ),
    ],
)
def test_uncertain_calls_are_reported(source: str, line: int) -> None:
    output, findings = _fix(source)
    assert output == source
    assert [(f.line, f.fixed) for f in findings] == [(line, False)]


def _helper() -> Callable[..., Any]:
    torch = pytest.importorskip("torch")
    namespace = {"torch": torch}
    exec(_extended_mask.HELPER, namespace)
    return namespace[_extended_mask.NAME]


def _model(is_decoder: bool | None = None) -> SimpleNamespace:
    import torch

    config = SimpleNamespace() if is_decoder is None else SimpleNamespace(is_decoder=is_decoder)
    return SimpleNamespace(config=config, dtype=torch.float32)


def test_helper_means_transformers_4s_mask() -> None:
    helper = _helper()
    import torch

    low = torch.finfo(torch.float32).min
    # Longformer's merged mask: 0 padding, 1 local, 2 global (positive after the rewrite, as in 4)
    mask = torch.tensor([[1, 2, 0]])
    extended = helper(_model(), mask, mask.shape)
    assert extended.shape == (1, 1, 1, 3) and extended.dtype == torch.float32
    assert extended[0, 0, 0].tolist() == [0.0, -low, low]
    # a config without is_decoder (transformers 5's) is an encoder's, as 4's default False
    assert torch.equal(helper(_model(False), mask, mask.shape), extended)
    # 3-D [batch, from, to]: a head axis only
    three = torch.tensor([[[1, 0], [1, 1]]])
    assert helper(_model(), three, (1, 2))[0, 0].tolist() == [[0.0, low], [0.0, 0.0]]
    # a decoder: causal, the one cached position visible to both queries, padding still masked
    decoder = helper(_model(True), torch.tensor([[1, 1, 0]]), (1, 2))
    assert decoder.shape == (1, 1, 2, 3)
    assert decoder[0, 0].tolist() == [[0.0, 0.0, low], [0.0, 0.0, low]]
    decoder = helper(_model(True), torch.tensor([[1, 1, 1]]), (1, 3))
    assert decoder[0, 0].tolist() == [[0.0, low, low], [0.0, 0.0, low], [0.0, 0.0, 0.0]]
    # an explicit dtype wins over the model's
    assert helper(_model(), mask, mask.shape, dtype=torch.float16).dtype == torch.float16
    with pytest.raises(ValueError, match="not 2-D or 3-D"):
        helper(_model(), torch.ones(1, 1, 1, 2), (1, 2))


OUTPUT = """\
from dataclasses import dataclass
from typing import Optional, Tuple
import torch
from transformers.utils import ModelOutput

@dataclass
class DecoderOutput(ModelOutput):
    last_hidden_state: torch.FloatTensor
    # the cache, per layer
    past_key_values: Optional[Tuple[torch.FloatTensor]] = None  # (k, v)
    attentions: Optional[Tuple[torch.FloatTensor]] = None
"""
EITHER = """\
    # the cache, per layer
    if hasattr(ModelOutput, "past_key_values"):  # transformers 5 names it cache
        cache: Optional[Tuple[torch.FloatTensor]] = None  # (k, v)
    else:
        past_key_values: Optional[Tuple[torch.FloatTensor]] = None  # (k, v)
"""


def test_output_field_takes_the_installed_name() -> None:
    output, findings = _fix(OUTPUT)
    assert EITHER in output
    assert [(f.line, f.fixed) for f in findings] == [(10, True)]
    assert _fix(output) == (output, [])


def _built(output_source: str, model_output: type) -> type:
    namespace: dict = {"ModelOutput": model_output}
    body = output_source.replace("from transformers.utils import ModelOutput\n", "")
    exec(compile(body, "<patched>", "exec"), namespace)
    return namespace["DecoderOutput"]


def test_patched_output_builds_as_in_4_on_the_installed_transformers() -> None:
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import torch

    output, _ = _fix(OUTPUT)
    cls = _built(output, transformers.utils.ModelOutput)
    cache = ((torch.ones(1),),)
    for built in (
        cls(last_hidden_state=torch.zeros(1), past_key_values=cache),
        cls(torch.zeros(1), cache),  # by position: the field keeps its place
    ):
        assert built.past_key_values is cache and built["past_key_values"] is cache
        assert len(built.to_tuple()) == 2 and built.to_tuple()[1] is cache
    assert cls(last_hidden_state=torch.zeros(1)).past_key_values is None
    if int(transformers.__version__.split(".")[0]) >= 5 and hasattr(
        transformers.utils.ModelOutput, "past_key_values"
    ):
        with pytest.raises(TypeError, match="unexpected keyword argument 'cache'"):
            _built(OUTPUT, transformers.utils.ModelOutput)(
                last_hidden_state=torch.zeros(1), past_key_values=cache
            )


def test_patched_output_keeps_past_key_values_where_modeloutput_has_no_property() -> None:
    """transformers 4's ModelOutput has no ``past_key_values`` attribute: the field keeps it."""

    @dataclass
    class Plain:
        pass

    output, _ = _fix(OUTPUT)
    cls = _built(output, Plain)
    names = [f.name for f in fields(cls)]
    assert names == ["last_hidden_state", "past_key_values", "attentions"]
    assert cls(1, 2).past_key_values == 2


@pytest.mark.parametrize(
    "base",
    [
        # another output class (transformers' own, or one of the module's)
        "BaseModelOutput",
        "LocalOutput",
    ],
)
def test_other_output_bases_are_reported(base: str) -> None:
    source = (
        "from dataclasses import dataclass\n"
        "from transformers.modeling_outputs import BaseModelOutput\n"
        "from transformers.utils import ModelOutput\n"
        "@dataclass\nclass LocalOutput(ModelOutput):\n    x: int = None\n"
        f"@dataclass\nclass Out({base}):\n    past_key_values: tuple = None\n"
    )
    output, findings = _fix(source)
    assert output == source
    assert [(f.line, f.fixed) for f in findings] == [(9, False)]


def test_cache_declared_too_is_reported() -> None:
    source = OUTPUT.replace("    attentions:", "    cache: Optional[tuple] = None\n    attentions:")
    output, findings = _fix(source)
    assert output == source and [f.fixed for f in findings] == [False]


def test_fields_of_other_classes_are_left_alone() -> None:
    source = (
        "from dataclasses import dataclass\n"
        "@dataclass\nclass Generation:\n    past_key_values: tuple = None\n"
    )
    assert _fix(source) == (source, [])


def test_classes_deriving_from_each_other_do_not_loop() -> None:
    source = (
        "from transformers import PreTrainedModel\n"
        "class A(B):\n    pass\n"
        "class B(A, PreTrainedModel):\n"
        "    def f(self, m, s):\n        return self.get_extended_attention_mask(m, s)\n"
    )
    output, findings = _fix(source)
    assert [(f.line, f.fixed) for f in findings] == [(6, True)]
    assert "return get_extended_attention_mask(self, m, s)" in output


def test_helper_exists_before_top_level_code_runs(tmp_path) -> None:
    """Fixture import_after_main: the module's last import follows ``main()``; the helper goes
    after the imports above that call, and the rewritten file runs as a script (the helper
    after the last import would be defined only after main() had called it: NameError)."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("transformers")
    source = Path(__file__).parent / "fixtures" / "PRT015" / "import_after_main.in.py"
    output, findings = fix_text(source.read_text(), RULE)
    assert [f.fixed for f in findings] == [True]
    assert output.index("def get_extended_attention_mask(") < output.index("class Encoder(")
    script = tmp_path / "model.py"
    script.write_text(output)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "torch.Size([1, 3, 4])"
