"""Finding a task's results file among what the script really wrote.

A target names the results file the upstream script writes (``predictions.txt``,
``test_best-bleu.output``). A fork renames it (``predictions_.txt``, ``test_predictions.txt``),
writes it one directory down, or numbers it (``test_0.output``). So the name is a description,
not a fixed path: a name with ``*`` is a pattern, and a name the run did not write is looked for
among the files it did write under the output directory, with the same suffix and a similar stem,
preferring the one that lists the test examples.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: How alike two stems must be (difflib ratio, after lower-casing and dropping punctuation).
SIMILAR = 0.75


@dataclass(frozen=True)
class Found:
    path: Path | None
    note: str = ""  # how it was found, when not under the target's own name


def _stem(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", Path(name).stem.lower())


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def similarity(declared: str, written: str) -> float:
    """How alike two file names are: 0 for another suffix; 1 when one stem contains the other."""
    if _suffix(declared) != _suffix(written):
        return 0.0
    mine, theirs = _stem(declared), _stem(written)
    if not mine or not theirs:
        return 0.0
    if mine in theirs or theirs in mine:
        return 1.0 - abs(len(mine) - len(theirs)) / (10 * max(len(mine), len(theirs)))
    return difflib.SequenceMatcher(None, mine, theirs).ratio()


def written_files(output_dir: Path) -> list[Path]:
    """Every file under the output directory, in a stable order."""
    return sorted(p for p in output_dir.rglob("*") if p.is_file())


def find(
    output_dir: Path,
    declared: str,
    lists_examples: Callable[[Path], bool] = lambda path: True,
    taken: Sequence[str] = (),
) -> Found:
    """The file the run wrote for the results file ``declared`` (relative to ``output_dir``).

    ``lists_examples(path)`` tells whether a candidate lists the test examples (its keys are
    the expected ones); among similar names that one wins. ``taken`` are the other declared
    results files, never taken for this one."""
    if any(c in declared for c in "*?["):
        matches = sorted(p for p in output_dir.glob(declared) if p.is_file())
        if not matches:
            return Found(None)
        best = next((p for p in matches if lists_examples(p)), matches[0])
        return Found(best, f"{best.relative_to(output_dir)} (matches {declared})")
    exact = output_dir / declared
    if exact.is_file():
        return Found(exact)
    reserved = {(output_dir / name).resolve() for name in taken}
    scored = []
    for path in written_files(output_dir):
        if path.resolve() in reserved:
            continue
        score = similarity(declared, path.name)
        if score >= SIMILAR:
            scored.append((lists_examples(path), score, path))
    if not scored:
        return Found(None)
    _, _, best = max(scored, key=lambda item: (item[0], item[1], -len(str(item[2]))))
    relative = best.relative_to(output_dir)
    return Found(best, f"{relative} (the script's name for {declared})")
