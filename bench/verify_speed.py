"""Wall time of `ddpfix verify` against a bare `accelerate launch` of the same patched script.

    python bench/verify_speed.py [SCRIPT]      # default: examples/clone_detection/run.py
    python bench/verify_speed.py CodeXGLUE/Code-Code/Clone-detection-BigCloneBench/code/run.py

Both run 2 ranks on the same machine with a warm model cache, on the same patched copy and the
same tiny inputs (verify's kept sandbox). Reports medians over repeats and the harness overhead.
Targets: overhead <= 25 %, verify <= 60 s on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 3


def _verify(script: Path, keep: Path | None = None) -> tuple[float, dict]:
    command = [sys.executable, "-m", "patcher", "verify", str(script), "--format", "json"]
    if keep is not None:
        command += ["--keep", str(keep)]
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    report = json.loads(run.stdout)
    if not report["passed"]:
        sys.exit(f"verify failed: {report['verdict']}")
    return seconds, report


def main() -> None:
    script = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples/clone_detection/run.py"
    keep = Path(tempfile.mkdtemp(prefix="ddpfix-bench-")) / "sandbox"
    _, report = _verify(script, keep)  # warms the model cache, keeps the patched sandbox
    verify_times = [_verify(script)[0] for _ in range(REPEATS)]

    command = report["command"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DDPFIX_")}
    env.update(ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    output = keep / "output"
    bare_times = []
    for _ in range(REPEATS):
        shutil.rmtree(output, ignore_errors=True)
        output.mkdir()
        start = time.perf_counter()
        subprocess.run(command, cwd=keep / "code", env=env, capture_output=True, check=True)
        bare_times.append(time.perf_counter() - start)
    shutil.rmtree(keep.parent, ignore_errors=True)

    verify_s, bare_s = statistics.median(verify_times), statistics.median(bare_times)
    ranks, device = report["ranks"], report["device"]
    print(f"script: {script} (target {report['target']}, {ranks} ranks, {device})")
    print(f"ddpfix verify (warm cache): {verify_s:6.2f} s median of {REPEATS}")
    print(f"bare accelerate launch:     {bare_s:6.2f} s median of {REPEATS}")
    print(f"harness overhead: {100 * (verify_s - bare_s) / bare_s:+.0f} % (target <= 25 %)")


if __name__ == "__main__":
    main()
