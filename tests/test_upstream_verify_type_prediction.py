"""Opt-in: ``ddpfix verify`` on CodeXGLUE TypePrediction-TypeScript (train.py).

``DDPFIX_CORPUS`` names a CodeXGLUE checkout; skipped when unset. The script is already an
accelerate script (``Accelerator``, ``prepare``, ``gather``); ``apply`` only moves ``AdamW`` to
torch.optim. It has no data flag: ``load_dataset('ManyTypes4TypeScript.py')`` runs the dataset
builder beside it, which reads ``../dataset``, so the target asks verify to put the synthetic
data there (``data_at``). It cannot run on today's ``datasets``: it imports ``load_metric``
(removed in datasets 3) and loads a dataset script (unsupported since datasets 4). Verify names
that import, or the missing package when ``datasets`` is not installed.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.command import Sandbox, SetupError, _place_data
from patcher.verify.targets import TargetError, identify, load_targets
from patcher.verify.tasks.type_prediction import TYPES, type_prediction

NAME = "codexglue-type-prediction"
RELATIVE = "Code-Code/TypePrediction-TypeScript/code/train.py"
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
    with pytest.raises(SetupError, match="which code/ has"):
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
