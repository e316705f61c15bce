"""``verify --compare-single`` (patcher/verify/compare.py) on stand-in scripts: the arguments of
the single-process test phase, and the comparison of the results files."""

from __future__ import annotations

from pathlib import Path

from patcher.verify.compare import compare, single_args

# Writes predictions.txt from the "checkpoint" the ranks left, as a test phase would; with
# --do_train it would overwrite the checkpoint (the single process must not train).
TEST_PHASE = """\
import argparse, os
p = argparse.ArgumentParser()
p.add_argument("--output_dir")
p.add_argument("--do_train", action="store_true")
p.add_argument("--do_test", action="store_true")
a = p.parse_args()
assert "RANK" not in os.environ and "WORLD_SIZE" not in os.environ
if a.do_train:
    open(os.path.join(a.output_dir, "model.bin"), "w").write("retrained\\n")
if a.do_test:
    weights = open(os.path.join(a.output_dir, "model.bin")).read().strip()
    with open(os.path.join(a.output_dir, "predictions.txt"), "w") as f:
        for i in range(3):
            f.write("%d\\t%s\\n" % (i, weights))
"""


def test_single_args_keep_the_test_phase_only(tmp_path: Path) -> None:
    out, single = tmp_path / "output", tmp_path / "output-single"
    args = ["--do_train", f"--output_dir={out}", "--do_eval", "--do_test", "--x", "1"]
    args += ["--evaluate_during_training"]
    assert single_args(args, out, single) == [f"--output_dir={single}", "--do_test", "--x", "1"]
    assert single_args(["--do_train", "--output_dir", str(out)], out, single) is None


def _run(tmp_path: Path, written: str, args: list[str] | None = None):
    script = tmp_path / "run.py"
    script.write_text(TEST_PHASE)
    output = tmp_path / "output"
    output.mkdir()
    (output / "model.bin").write_text("w1\n")
    (output / "predictions.txt").write_text(written)
    args = args if args is not None else ["--do_train", "--do_test", "--output_dir", str(output)]
    return compare(script, args, output, ["predictions.txt"], cwd=tmp_path, timeout=60)


def test_identical_results_pass(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("RANK", "0")  # a launcher's variables do not reach the single process
    row = _run(tmp_path, "0\tw1\n1\tw1\n2\tw1\n")
    assert row.ok, row.evidence
    assert "predictions.txt (3 lines)" in row.evidence
    assert (tmp_path / "output" / "model.bin").read_text() == "w1\n"  # the run's, untouched


def test_a_different_line_fails_and_is_shown(tmp_path: Path) -> None:
    row = _run(tmp_path, "0\tw1\n2\tw1\n1\tw1\n")
    assert not row.ok
    assert "line 2: '2\\tw1' (N ranks) vs '1\\tw1' (one process)" in row.evidence


def test_a_missing_line_fails(tmp_path: Path) -> None:
    row = _run(tmp_path, "0\tw1\n1\tw1\n")
    assert not row.ok and "2 lines (N ranks) vs 3 (one process)" in row.evidence


def test_without_a_test_phase_it_is_skipped(tmp_path: Path) -> None:
    output = tmp_path / "output"
    row = _run(tmp_path, "", ["--do_train", "--output_dir", str(output)])
    assert row.ok and row.evidence.startswith("skipped")


def test_without_results_files_it_is_skipped(tmp_path: Path) -> None:
    output = tmp_path / "output"
    output.mkdir()
    args = ["--do_test", "--output_dir", str(output)]
    row = compare(tmp_path / "run.py", args, output, [], cwd=tmp_path, timeout=60)
    assert row.ok and row.evidence == "skipped: the target has no results file to compare"
