"""How fast is `ddpfix check`, next to a bare LibCST parse + render of the same files?

    python bench/apply_speed.py                 # the test fixtures
    DDPFIX_CORPUS=/path/to/CodeXGLUE python bench/apply_speed.py

Reports, in one run: the medians over repeats, taken in turns, of (a) the rule engine over
every *.py file of the directory that some rule's prefilter lets through (read, parse, all rules,
the rank model's post-conditions, render; nothing written) and (b) a bare
``libcst.parse_module(text).code`` of the same files; the median of their ratio per turn; and
the wall time of a cold ``ddpfix check one_file.py`` process. Targets: ratio <= 2, cold start
<= 0.6 s.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import libcst as cst  # noqa: E402

from patcher.discover import discover  # noqa: E402
from patcher.engine import process_file  # noqa: E402
from patcher.registry import all_rules  # noqa: E402
from patcher.source import SourceError, read_source  # noqa: E402

REPEATS = 5


def _interleaved(first, second) -> tuple[float, float, float]:
    """Medians of ``first`` and ``second`` timed in turns, and the median of their ratio per
    turn: on a shared machine the load moves between two runs of a few seconds, so timing all of
    one side and then all of the other would put a load change into the ratio."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(REPEATS):
        for fn, times in ((first, a), (second, b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    ratios = [x / y for x, y in zip(a, b)]
    return statistics.median(a), statistics.median(b), statistics.median(ratios)


def main() -> None:
    corpus = os.environ.get("DDPFIX_CORPUS")
    roots = [Path(p) for p in corpus.split(os.pathsep)] if corpus else [ROOT / "tests" / "fixtures"]
    rules = all_rules()
    files, texts = [], []
    for path in discover(roots).files:
        with contextlib.suppress(SourceError):
            text = read_source(path).text
            # files the rules look at: the prefilter skips the rest before parsing, which would
            # flatter the ratio
            if any(rule.may_apply(text) for rule in rules):
                files.append(path)
                texts.append(text)

    def engine() -> None:
        for path in files:
            process_file(path, rules, write=False)

    def bare() -> None:
        for path in files:
            with contextlib.suppress(SourceError, cst.ParserSyntaxError):
                cst.parse_module(read_source(path).text).code  # noqa: B018

    engine()  # warm caches and imports once
    ddpfix_s, bare_s, ratio = _interleaved(engine, bare)
    lines = sum(t.count("\n") for t in texts)
    print(f"files: {len(files)} ({lines} lines) under {', '.join(map(str, roots))}")
    print(f"ddpfix check (in-process): {ddpfix_s * 1000:8.1f} ms")
    print(f"bare LibCST parse+render:  {bare_s * 1000:8.1f} ms")
    print(f"ratio: {ratio:.2f}x (median of {REPEATS} turns; target <= 2x)")

    one = ROOT / "examples" / "defect_detection" / "run.py"
    cold = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "patcher", "check", str(one)], capture_output=True, check=False
        )
        cold.append(time.perf_counter() - start)
    print(
        f"cold start `ddpfix check {one.relative_to(ROOT)}`: "
        f"{statistics.median(cold):.3f} s median of {REPEATS} (target <= 0.6 s)"
    )


if __name__ == "__main__":
    main()
