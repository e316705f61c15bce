"""The probe counts the script's own ``model.eval()`` calls, on any model, and not a load's.

transformers 5 gives ``PreTrainedModel`` its own ``eval()`` (``self.train(False)``), which a
hook on ``torch.nn.Module.eval`` never saw: "evaluation ran" failed for every script evaluating
a bare Hugging Face model (CodeGPT's text-to-code). ``from_pretrained`` puts the model in eval
mode too, which is not an evaluation.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ranked import launch

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

SCRIPT = """
import argparse, os
import torch
from transformers import GPT2Config, GPT2LMHeadModel

parser = argparse.ArgumentParser()
parser.add_argument("--output_dir")
parser.add_argument("--evaluations", type=int, default=2)
args = parser.parse_args()
config = GPT2Config(vocab_size=32, n_embd=16, n_layer=1, n_head=2, n_positions=16,
                    bos_token_id=0, eos_token_id=1)
GPT2LMHeadModel(config).save_pretrained(os.path.join(args.output_dir, "tiny"))
model = GPT2LMHeadModel.from_pretrained(os.path.join(args.output_dir, "tiny"))  # not counted
model.train()
for _ in range(args.evaluations):
    model.eval()  # transformers' own eval()
    with torch.no_grad():
        model(torch.zeros(1, 4, dtype=torch.long))
    model.train()
torch.nn.Sequential(torch.nn.Linear(2, 2)).eval()  # torch's eval(): counted once, not per child
"""


@pytest.mark.parametrize("evaluations", [0, 2])
def test_each_evaluation_of_a_bare_hf_model_counts_once(tmp_path: Path, evaluations: int) -> None:
    run = launch(SCRIPT, ["--evaluations", str(evaluations)], tmp_path, ranks=1)
    assert run.exit_codes == [0], run.explain()
    assert [r.eval_calls for r in run.records] == [evaluations + 1]
