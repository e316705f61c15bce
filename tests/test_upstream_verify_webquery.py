"""Opt-in: ``ddpfix verify`` on CodeXGLUE NL-code-search-WebQuery (run_classifier.py), its data.

``DDPFIX_CORPUS`` names a CodeXGLUE checkout; skipped when unset. Upstream's ``main`` holds every
rank but 0 at ``torch.distributed.barrier()`` before it reads the training file ("the others will
use the cache"), but the matching rank-0 barrier after the read is missing: with the rank read
from LOCAL_RANK, rank 0 would go on into DistributedDataParallel's constructor and wait for rank
1, which waits at the barrier (a hang). DDP018 adds rank 0's half right before ``train(...)``,
so DDP001's read of LOCAL_RANK stands. Upstream's ``models.py`` hard-codes RoBERTa-base's width
(``nn.Linear(768*4, 768)``): the target asks for a tiny RoBERTa 768 wide (``hidden_size``).
Verify then gets both ranks training together. ``models.py`` hands ``BCELoss`` a ``[batch, 1]``
output and ``[batch]`` labels, a ValueError on today's torch; PRT017 views the output as the
labels, and every check passes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.targets import TargetError, identify, load_targets
from patcher.verify.tasks.webquery import webquery

NAME = "codexglue-nl-code-search-webquery"
RELATIVE = "Text-Code/NL-code-search-WebQuery/code/run_classifier.py"


def test_files_are_json_arrays_of_labelled_query_code_pairs(tmp_path: Path) -> None:
    keys = webquery(tmp_path)
    train = json.loads((tmp_path / "train.json").read_text())
    assert isinstance(train, list) and len(train) == 16
    assert {tuple(sorted(row)) for row in train} == {("code", "doc", "idx", "label")}
    assert {row["label"] for row in train} == {0, 1}
    assert keys == [row["idx"] for row in json.loads((tmp_path / "test.json").read_text())]
    assert len(set(keys)) == len(keys) == 8


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
def test_identified_by_sha256() -> None:
    match, _ = identify(find_script(RELATIVE), load_targets())
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
@pytest.mark.slow
def test_the_barrier_is_paired_and_local_rank_is_read() -> None:
    from patcher.engine import fix_text
    from patcher.registry import all_rules
    from patcher.source import read_source

    output, findings = fix_text(read_source(find_script(RELATIVE)).text, all_rules())
    fixed = {f.code: f.fixed for f in findings if f.code in ("DDP001", "DDP018")}
    assert fixed == {"DDP001": True, "DDP018": True}
    assert (
        "        train_dataset = TextDataset(tokenizer, args, train_data_path, type='train')\n"
        "        if args.local_rank == 0:\n"
        "            torch.distributed.barrier()\n"
        "        train(args, train_dataset, model, tokenizer)\n"
    ) in output


def test_the_target_asks_for_a_768_wide_model() -> None:
    assert load_targets()[NAME].hidden_size == 768


@pytest.mark.parametrize("value", ["768", 767, -2, True])
def test_a_hidden_size_the_tiny_models_cannot_take_is_refused(
    tmp_path: Path, value: object
) -> None:
    (tmp_path / "t.toml").write_text(
        'name = "t"\ntitle = "t"\nrepo = "r"\npath = "p.py"\nmodel_type = "roberta"\n'
        f'dataset = "defect"\nargs = []\nhidden_size = {json.dumps(value)}\n'
    )
    with pytest.raises(TargetError, match=r"hidden_size .* must be a positive even number"):
        load_targets(tmp_path)


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
def test_the_loss_takes_the_labels_shape() -> None:
    from patcher.engine import fix_text
    from patcher.registry import all_rules
    from patcher.source import read_source

    models = find_script(RELATIVE).parent / "models.py"
    output, findings = fix_text(read_source(models).text, all_rules())
    assert [f.code for f in findings if f.fixed and f.code == "PRT017"] == ["PRT017"]
    assert "loss = self.loss_func(logits.view_as(labels), labels.float())\n" in output


@pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")
@pytest.mark.slow
def test_verify_trains_on_both_ranks_and_passes() -> None:
    pytest.importorskip("torch")
    code, report = run_verify(find_script(RELATIVE).as_posix(), "--timeout", "90")
    assert code == 0 and report["target"] == NAME, report["verdict"] + "\n" + report["log_tail"]
    rows = {row["check"]: (row["ok"], row["evidence"]) for row in report["checks"]}
    assert "ranks 0, 1, world size 2" in rows["ranks joined"][1]
    assert rows["replicas in sync"][1].startswith("ranks 0, 1 hold identical parameters")
    assert rows["results complete"][1].startswith("predictions.txt: 8 of 8 lines, in order")
