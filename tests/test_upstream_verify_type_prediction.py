"""Opt-in: ``ddpfix verify`` on CodeXGLUE TypePrediction-TypeScript (train.py).

``DDPFIX_CORPUS`` names a CodeXGLUE checkout; skipped when unset. The script is already an
accelerate script (``Accelerator``, ``prepare``, ``gather``); ``apply`` only moves ``AdamW`` to
torch.optim. It has no data flag: ``load_dataset('ManyTypes4TypeScript.py')`` runs the dataset
builder beside it, which reads ``../dataset``, so the target asks verify to put the synthetic
data there (``data_at``). It cannot run on today's ``datasets``: it imports ``load_metric``
(removed in datasets 3) and loads a dataset script (unsupported since datasets 4). Verify names
that import, or the missing package when ``datasets`` is not installed. With those and
accelerate 1's ``mixed_precision`` written for today's libraries in a copy, both ranks train one
model and verify names what is left upstream: every process writes predictions.txt.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from corpus_runs import ROOTS, edited_copy, find_script, run_verify
from patcher.verify.command import Sandbox, SetupError, _place_data
from patcher.verify.targets import TargetError, identify, load_targets
from patcher.verify.tasks.type_prediction import TYPES, type_prediction

NAME = "codexglue-type-prediction"
RELATIVE = "Code-Code/TypePrediction-TypeScript/code/train.py"
_SEQEVAL = """from datasets import ClassLabel, Features, Sequence, Value, load_dataset


class _Accuracy:  # load_metric("seqeval") loaded a hub script; the keys the script reads
    def __init__(self):
        self.pairs = []

    def add_batch(self, predictions, references):
        self.pairs += [p for ps, rs in zip(predictions, references) for p in zip(ps, rs)]

    def compute(self):
        score = sum(p == r for p, r in self.pairs) / max(1, len(self.pairs))
        self.pairs = []
        keys = ("precision", "recall", "f1", "accuracy")
        return {f"overall_{key}": score for key in keys}


def load_metric(name):
    return _Accuracy()
"""
_FILES = """    vocab = open("../dataset/vocab_50000.txt").read().split()
    features = Features({"id": Value("string"), "tokens": Sequence(Value("string")),
                         "labels": Sequence(ClassLabel(names=vocab))})
    files = {"train": [f"../dataset/train{i}.jsonl" for i in range(3)],
             "validation": "../dataset/valid.jsonl", "test": "../dataset/test.jsonl"}
    dataset = load_dataset("json", data_files=files)
    dataset = dataset.map(lambda row, i: {"id": str(i)}, with_indices=True).cast(features)"""
#: What train.py needs on today's datasets and accelerate, as a user would write it.
TODAY = {
    "train.py": {
        "from datasets import load_dataset, load_metric": _SEQEVAL,
        "    dataset = load_dataset('ManyTypes4TypeScript.py', ignore_verifications=True)": _FILES,
        "accelerator.use_fp16": '(accelerator.mixed_precision == "fp16")',
    }
}
needs_corpus = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout")


def test_files_are_tokens_with_a_type_on_each_declaration(tmp_path: Path) -> None:
    keys = type_prediction(tmp_path)
    vocab = (tmp_path / "vocab_50000.txt").read_text().splitlines()
    assert vocab == list(TYPES) and vocab[:2] == ["UNK", "any"]
    labelled = 0
    for name in ("train0", "train1", "train2", "valid", "test"):
        rows = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert len(rows) == 8
        for row in rows:
            assert set(row) == {"tokens", "labels"} and len(row["tokens"]) == len(row["labels"])
            typed = [label for label in row["labels"] if label is not None]
            assert len(typed) == 4 and set(typed) <= set(vocab[2:])
            if name == "test":
                labelled += len(typed)
    assert keys == [str(i) for i in range(labelled)]


def _manifest(directory: Path, data_at: str) -> None:
    (directory / "t.toml").write_text(
        'name = "t"\ntitle = "t"\nrepo = "r"\npath = "p.py"\nmodel_type = "roberta"\n'
        f'dataset = "defect"\nargs = []\ndata_at = "{data_at}"\n'
    )


@pytest.mark.parametrize("data_at", ["../dataset", "data/in", "../cache/data"])
def test_data_at_is_a_directory_in_the_sandbox(tmp_path: Path, data_at: str) -> None:
    _manifest(tmp_path, data_at)
    assert load_targets(tmp_path)["t"].data_at == data_at


@pytest.mark.parametrize("data_at", ["../..", "/abs/data", "..", ".", "../code"])
def test_data_at_outside_the_sandbox_is_refused(tmp_path: Path, data_at: str) -> None:
    _manifest(tmp_path, data_at)
    with pytest.raises(TargetError, match="must name a directory in the sandbox"):
        load_targets(tmp_path)


def test_the_data_are_linked_where_the_script_reads_them(tmp_path: Path) -> None:
    box = Sandbox(tmp_path)
    box.code.mkdir()
    box.data.mkdir()
    (box.data / "test.jsonl").write_text("{}\n")
    _place_data(box, "../dataset")
    assert (tmp_path / "dataset" / "test.jsonl").read_text() == "{}\n"
    with pytest.raises(SetupError, match="the sandbox has that path"):
        _place_data(box, "../dataset")  # never over what is there


@needs_corpus
def test_identified_by_sha256() -> None:
    match, _ = identify(find_script(RELATIVE), load_targets())
    assert match is not None and (match.target.name, match.how) == (NAME, "sha256")


@needs_corpus
@pytest.mark.slow
def test_verify_names_what_todays_datasets_lacks(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    kept = tmp_path / "box"
    code, report = run_verify(find_script(RELATIVE).as_posix(), "--keep", str(kept))
    assert code == 1 and report["target"] == NAME
    assert (kept / "dataset" / "vocab_50000.txt").read_text().splitlines() == list(TYPES)
    if importlib.util.find_spec("datasets") is None:
        cause = "rank 0 failed at import: No module named 'datasets' (pip install datasets"
    else:
        cause = "rank 0 failed at import: cannot import name 'load_metric' from 'datasets'"
    assert report["verdict"].startswith(f"FAIL: ranks joined: {cause}")


@needs_corpus
@pytest.mark.slow
def test_with_the_stack_fixed_every_process_writes_predictions(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("datasets")
    code_dir = edited_copy(find_script(RELATIVE).parent, tmp_path / "code", TODAY)
    code, report = run_verify((code_dir / "train.py").as_posix(), "--target", NAME)
    assert code == 1, report["verdict"]
    rows = {row["check"]: row["evidence"] for row in report["checks"]}
    assert rows["every rank exited 0"] == "2 of 2 exited 0, no traceback"
    assert rows["replicas in sync"].startswith("ranks 0, 1 hold identical parameters")
    assert report["verdict"].startswith(
        "FAIL: results complete: predictions.txt written by 2 processes (rank 0, rank 1)"
    )
