"""The BENCHMARKS table: every training script of the given checkouts, `apply` + `verify --gpus 2`.

    DDPFIX_CORPUS=/src/CodeXGLUE:/src/CodeBERT:/src/CodeT5 python bench/verify_table.py > t.md

A training script is a ``*.py`` file with an ``if __name__ == "__main__"`` entry that steps an
optimizer (``.step()`` next to ``backward``) or declares ``--do_train``. For each: the fixes
``apply`` would make (on a temporary copy: nothing is written to the checkout), then, when verify
recognises the script as one of its targets, ``ddpfix verify --gpus 2`` on it (verify patches its
own sandbox copy), with the verdict, the failing check's evidence and the wall time. Scripts of a
task verify has no target for are listed as such.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from patcher.engine import process_file  # noqa: E402
from patcher.registry import all_rules  # noqa: E402
from patcher.verify.targets import identify, load_targets  # noqa: E402

_MAIN = re.compile(r"""if\s+__name__\s*==\s*['"]__main__['"]""")


def training_scripts(root: Path) -> list[Path]:
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        trains = ("backward(" in text and ".step(" in text) or "--do_train" in text
        if _MAIN.search(text) and trains:
            found.append(path)
    return found


def fixes(path: Path) -> str:
    result = process_file(path, all_rules(), write=False)
    if result.error:
        return f"error: {result.error}"
    fixed = sum(f.fixed for f in result.findings)
    reported = sum(not f.fixed for f in result.findings)
    return f"{fixed} fixes, {reported} reports"


def verify(path: Path, target: str) -> tuple[str, str, float]:
    start = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "patcher",
            "verify",
            str(path),
            "--target",
            target,
            "--gpus",
            "2",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    seconds = time.perf_counter() - start
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        said = (run.stderr.strip().splitlines() or ["no output"])[-1]
        return "setup error", said, seconds
    verdict = report["verdict"]
    return ("pass" if report["passed"] else "FAIL"), verdict.partition(": ")[2], seconds


def main() -> None:
    corpus = os.environ.get("DDPFIX_CORPUS", "")
    roots = [Path(p) for p in corpus.split(os.pathsep) if p]
    if not roots:
        sys.exit("set DDPFIX_CORPUS to checkouts of the target repositories")
    targets = load_targets()
    print("| script | apply | target | verify --gpus 2 | cause | wall |")
    print("| --- | --- | --- | --- | --- | --- |")
    for root in roots:
        for path in training_scripts(root):
            name = f"{root.name}/{path.relative_to(root)}"
            match, _ = identify(path, targets)
            if match is None:
                print(f"| {name} | {fixes(path)} | none | not run | no target for this task | |")
                continue
            outcome, cause, seconds = verify(path, match.target.name)
            cause = cause.replace("|", "\\|")[:160]
            how = f"{match.target.name} ({match.how})"
            print(f"| {name} | {fixes(path)} | {how} | {outcome} | {cause} | {seconds:.0f} s |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
