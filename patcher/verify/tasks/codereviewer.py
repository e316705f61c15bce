"""Synthetic code-review data in microsoft/CodeBERT CodeReviewer's formats (``utils.py``).

CodeReviewer fine-tunes on three tasks, each a JSON-lines file of diff hunks:

* quality estimation (``run_finetune_cls.py``): ``{"oldf", "patch", "msg", "y"}`` in
  ``cls-train-chunk-*.jsonl`` files under the ``--train_filename`` directory, and
  ``cls-valid.jsonl``; ``y`` is 1 (needs a review comment, ``msg`` non-empty) or 0;
* comment generation (``run_finetune_msg.py``): ``{"oldf", "patch", "msg"}``; with
  ``--raw_input`` (upstream's launcher) only ``patch`` and ``msg`` are read;
* code refinement (``run_finetune_ref.py``): ``{"old", "new", "comment"}``, the hunk before and
  after the reviewer's comment, every line led by a diff marker the reader strips.

``patch`` is a unified-diff hunk whose header ``@@ -start,len +start,len @@`` places it in
``oldf`` (``ReviewExample.align_and_clean`` cuts the context before and after it from there). The
files are the synthetic Java functions one statement a line; a change swaps one operator.

None of the three scripts writes a per-example results file (evaluation is an accuracy or a BLEU
in the checkpoint's directory name; refinement writes its predictions into the model directory),
so the keys returned are the ids of the dev rows, for completeness only.

Sizes: 16 training rows (2 chunks of 8 for quality estimation) and 8 dev rows.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import jsonl
from patcher.verify.synthetic import Function, docstring, functions

TRAIN, DEV = 16, 8
#: Where quality estimation's training chunks go (the launcher's ``--train_filename`` directory).
CLS_DIR = "Diff_Quality_Estimation"

# (correct, changed) operator swaps; the first one a line contains is its change.
_SWAPS = ((" < ", " <= "), (" > ", " >= "), ("++", "--"), (" += ", " -= "), (" != ", " == "))
_COMMENTS = (
    "check the loop bound here",
    "this comparison looks inverted",
    "the counter moves the wrong way",
    "please keep the original operator",
)


def _file_lines(function: Function) -> list[str]:
    """The function one statement a line, as a source file is: a line ends after ``{``, ``}``
    or ``;`` outside parentheses (a ``for (...;...;...)`` header stays one line)."""
    lines, current, depth = [], "", 0
    for char in function.code:
        current += char
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char in "{};" and depth == 0:
            lines.append(current.strip())
            current = ""
    return [line for line in [*lines, current.strip()] if line]


def _changed_line(lines: list[str]) -> tuple[int, str]:
    """The first line (after the signature) an operator swap applies to, and the swapped line."""
    for index in range(1, len(lines) - 1):
        for good, bad in _SWAPS:
            if good in lines[index]:
                return index, lines[index].replace(good, bad, 1)
    return 1, lines[1] + " // changed"


def _hunk(lines: list[str], index: int, changed: str) -> str:
    """A unified-diff hunk replacing ``lines[index]`` by ``changed``, one line of context each
    side (1-based ``start``; three old lines, three new)."""
    start = index  # lines[index - 1] is the first context line: 1-based number ``index``
    return "\n".join(
        [
            f"@@ -{start},3 +{start},3 @@",
            f" {lines[index - 1]}",
            f"-{lines[index]}",
            f"+{changed}",
            f" {lines[index + 1]}",
        ]
    )


def _review_row(function: Function, number: int) -> dict:
    lines = _file_lines(function)
    index, changed = _changed_line(lines)
    needs_comment = number % 2 == 0
    comment = f"{_COMMENTS[number % len(_COMMENTS)]} in {function.name}"
    return {
        "oldf": "\n".join(lines),
        "patch": _hunk(lines, index, changed),
        "msg": comment if needs_comment else "",
        "y": int(needs_comment),
        "id": number,
    }


def quality_estimation(out: Path) -> list[str]:
    """``Diff_Quality_Estimation/cls-train-chunk-{0,1}.jsonl`` and ``cls-valid.jsonl``: every
    other row needs a comment (``y`` 1), so the dev accuracy of any constant guess is 0.5."""
    rows = [_review_row(f, i) for i, f in enumerate(functions(TRAIN + DEV, seed=41))]
    directory = out / CLS_DIR
    directory.mkdir()
    half = TRAIN // 2
    jsonl(directory / "cls-train-chunk-0.jsonl", rows[:half])
    jsonl(directory / "cls-train-chunk-1.jsonl", rows[half:TRAIN])
    jsonl(directory / "cls-valid.jsonl", rows[TRAIN:])
    return [str(row["id"]) for row in rows[TRAIN:]]


def comment_generation(out: Path) -> list[str]:
    """``gen-train.jsonl`` / ``gen-valid.jsonl``: every row carries a review comment."""
    rows = [_review_row(f, 2 * i) for i, f in enumerate(functions(TRAIN + DEV, seed=43))]
    jsonl(out / "gen-train.jsonl", rows[:TRAIN])
    jsonl(out / "gen-valid.jsonl", rows[TRAIN:])
    return [str(row["id"]) for row in rows[TRAIN:]]


def _refine_row(function: Function, number: int) -> dict:
    """The changed hunk (``old``), the reviewer's comment, and the hunk put right (``new``)."""
    lines = _file_lines(function)
    index, changed = _changed_line(lines)
    before, after = lines[index - 1], lines[index + 1]
    return {
        "old": "\n".join([f" {before}", f"+{changed}", f" {after}"]),
        "new": "\n".join([f" {before}", f"+{lines[index]}", f" {after}"]),
        "comment": f"{_COMMENTS[number % len(_COMMENTS)]}: {docstring(function)}",
        "id": number,
    }


def code_refinement(out: Path) -> list[str]:
    """``ref-train.jsonl`` / ``ref-valid.jsonl`` (``old``, ``new``, ``comment``, ``id``)."""
    rows = [_refine_row(f, i) for i, f in enumerate(functions(TRAIN + DEV, seed=47))]
    jsonl(out / "ref-train.jsonl", rows[:TRAIN])
    jsonl(out / "ref-valid.jsonl", rows[TRAIN:])
    return [str(row["id"]) for row in rows[TRAIN:]]


GENERATORS: dict[str, Callable[[Path], list[str]]] = {
    "codereviewer-cls": quality_estimation,
    "codereviewer-msg": comment_generation,
    "codereviewer-ref": code_refinement,
}
