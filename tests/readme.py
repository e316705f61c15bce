"""The README's sample outputs, and how a real run is compared with them."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"

#: What changes from run to run (timings, the free port, the model cache path, which rank waited
#: longest and where): both the sample and the real output are masked the same way.
MASKS = (
    (re.compile(r"\d+\.\d+ s\b"), "<t> s"),
    (re.compile(r"--main_process_port \d+"), "--main_process_port <port>"),
    (re.compile(r"--model_name_or_path=\S+"), "--model_name_or_path=<tiny model>"),
    (re.compile(r"longest wait in a collective: .*? \(the"), "longest wait: <where> (the"),
)


def mask(line: str) -> str:
    for pattern, replacement in MASKS:
        line = pattern.sub(replacement, line)
    return line.rstrip()


def block_after(marker: str) -> list[str]:
    """The lines of the first fenced block after the README line containing ``marker``."""
    text = README.read_text(encoding="utf-8")
    start = text.index("```", text.index(marker))
    body = text[text.index("\n", start) + 1 : text.index("\n```", start)]
    return body.split("\n")


def mismatch(sample: list[str], real: list[str]) -> str | None:
    """Why ``real`` does not show what ``sample`` says, or None.

    A sample line ``...`` stands for any number of lines; a line ending in `` ...`` is a prefix;
    a line starting with ``$ `` is the command and not output. Other lines match exactly and in
    order, after :func:`mask`."""
    real = [mask(line) for line in real]
    at, skipping = 0, False
    for wanted in sample:
        if wanted.startswith("$ "):
            continue
        if wanted == "...":
            skipping = True
            continue
        want = mask(wanted)
        prefix = want.endswith(" ...")

        def fits(line: str, want: str = want, prefix: bool = prefix) -> bool:
            return line.startswith(want[:-4]) if prefix else line == want

        if skipping:
            found = next((i for i in range(at, len(real)) if fits(real[i])), None)
        else:
            found = at if at < len(real) and fits(real[at]) else None
        if found is None:
            shown = real[at] if at < len(real) else "<end of output>"
            return f"README line {wanted!r} not in the output (at {shown!r})"
        at, skipping = found + 1, False
    if not skipping and at != len(real):
        return f"output goes on after the README sample ends: {real[at]!r}"
    return None
