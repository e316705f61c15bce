"""CodeXGLUE code refinement and code translation: their data generators, and ``ddpfix verify``.

The generator tests need nothing. The verify tests read the real scripts from a local checkout
(``DDPFIX_CORPUS=/path/to/CodeXGLUE[:...]``) and are skipped without one; nothing from it is stored
here. The two upstream run.py files are byte-identical: the hash matches both targets and the
script's own path (its task directory) decides between them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from corpus_runs import ROOTS, find_script, run_verify
from patcher.verify.datasets import generators
from patcher.verify.targets import identify, load_targets
from patcher.verify.tasks.seq2seq_pairs import code_refinement, code_to_code_trans

corpus = pytest.mark.skipif(not ROOTS, reason="set DDPFIX_CORPUS to a CodeXGLUE checkout to run")

REFINEMENT = "codexglue-code-refinement"
TRANSLATION = "codexglue-code-to-code-trans"
SCRIPTS = {
    REFINEMENT: "Code-Code/code-refinement/code/run.py",
    TRANSLATION: "Code-Code/code-to-code-trans/code/run.py",
}
SUFFIXES = {
    REFINEMENT: ("buggy-fixed.buggy", "buggy-fixed.fixed"),
    TRANSLATION: ("java-cs.txt.java", "java-cs.txt.cs"),
}


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_generator_writes_line_aligned_pairs_the_manifest_names(name: str, tmp_path: Path) -> None:
    target = load_targets()[name]
    keys = generators()[target.dataset](tmp_path)
    source, gold = SUFFIXES[name]
    sizes = {
        split: len(_lines(tmp_path / f"{split}.{source}")) for split in ("train", "valid", "test")
    }
    assert sizes == {"train": 16, "valid": 8, "test": 8}
    for split in sizes:
        assert len(_lines(tmp_path / f"{split}.{gold}")) == sizes[split]
    # the keys are the test targets in file order; the dev targets are the same (one key list)
    assert keys == _lines(tmp_path / f"test.{gold}") == _lines(tmp_path / f"valid.{gold}")
    assert len(set(keys)) == 8 and all(k and "\t" not in k for k in keys)
    # every file the manifest passes exists once {data} is filled in
    args = target.script_args(model=Path("m"), data=tmp_path, output=Path("o"))
    files = [
        a.partition("=")[2]
        for a in args
        if a.startswith(("--train_filename", "--dev_filename", "--test_filename"))
    ]
    assert len(files) == 3
    for pair in files:
        assert all(Path(p).is_file() for p in pair.split(","))


def test_refinement_sources_are_the_targets_with_one_operator_broken(tmp_path: Path) -> None:
    code_refinement(tmp_path)
    for split in ("train", "valid", "test"):
        buggy = _lines(tmp_path / f"{split}.buggy-fixed.buggy")
        fixed = _lines(tmp_path / f"{split}.buggy-fixed.fixed")
        assert all(b != f for b, f in zip(buggy, fixed))
    assert _lines(tmp_path / "test.buggy-fixed.fixed")[0] == (
        "int calcSum16 ( int [ ] best ) { int right = 0 ; for ( int left = 0 ; "
        "left < best . length ; left ++ ) { right += best [ left ] ; } return right ; }"
    )
    assert _lines(tmp_path / "test.buggy-fixed.buggy")[0] == (
        "int calcSum16 ( int [ ] best ) { int right = 0 ; for ( int left = 0 ; "
        "left <= best . length ; left ++ ) { right += best [ left ] ; } return right ; }"
    )
    # the dev copy of an example carries a different bug than its test copy
    valid, test = (_lines(tmp_path / f"{s}.buggy-fixed.buggy") for s in ("valid", "test"))
    assert all(v != t for v, t in zip(valid, test))


def test_translation_pairs_a_java_method_with_its_csharp_rendering(tmp_path: Path) -> None:
    code_to_code_trans(tmp_path)
    java = _lines(tmp_path / "test.java-cs.txt.java")
    csharp = _lines(tmp_path / "test.java-cs.txt.cs")
    assert java[2] == (
        "public boolean scanPalindrome18(String key) { int total = 0; int buf = key.length() - 1; "
        "while (total < buf) { if (key.charAt(total) != key.charAt(buf)) return false; total++; "
        "buf--; } return true; }"
    )
    assert csharp[2] == (
        "public bool ScanPalindrome18(string key) { int total = 0; int buf = key.Length - 1; "
        "while (total < buf) { if (key[total] != key[buf]) return false; total++; buf--; } "
        "return true; }"
    )
    assert not any("charAt" in line or "boolean" in line for line in csharp)


def _script(relative: str) -> Path:
    return find_script(relative)


def _verify(*args: str) -> tuple[int, dict]:
    return run_verify("--gpus", "2", *args)


@corpus
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_scripts_are_identified_by_sha256(name: str) -> None:
    script = _script(SCRIPTS[name])
    targets = load_targets()
    digest = hashlib.sha256(script.read_bytes()).hexdigest()
    assert targets[name].sha256 == digest
    match, _ = identify(script, targets)
    assert match is not None and match.how == "sha256"
    # byte-identical scripts: the path decides
    assert match.target.name == name


@corpus
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_patched_script_passes_verify(name: str, tmp_path: Path) -> None:
    script = _script(SCRIPTS[name])
    keep = tmp_path / "sandbox"
    code, report = _verify(str(script), "--keep", str(keep))
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["verdict"] == "PASS: all 8 checks passed"
    assert report["target"] == name
    assert report["identified_by"] == "sha256"
    assert report["health"] == []
    gold = SUFFIXES[name][1]
    output = keep / "output"
    for idx, split in enumerate(("valid", "test")):
        # rank 0 alone predicted every example of both files, in file order
        assert _lines(output / f"test_{idx}.gold") == _lines(keep / "data" / f"{split}.{gold}")
        assert (output / f"test_{idx}.output").read_text(encoding="utf-8").count("\n") == 8
    for checkpoint in ("checkpoint-last", "checkpoint-best-ppl"):
        assert (output / checkpoint / "pytorch_model.bin").stat().st_size > 0


@corpus
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_original_script_fails_at_the_adamw_import(name: str) -> None:
    script = _script(SCRIPTS[name])
    code, report = _verify(str(script), "--target", name, "--original")
    assert code == 1
    assert report["verdict"].startswith("FAIL: ranks joined: rank 0 failed at import: ")
    assert "cannot import name 'AdamW' from 'transformers'" in report["verdict"]
