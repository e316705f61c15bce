"""What the default training-health checks add to a tiny verify (target: <= 10 %).

    python bench/health_overhead.py [SCRIPT]   # default: examples/clone_detection/run.py

Runs `ddpfix verify` with and without `--no-health` alternately (warm model cache) and reports
the medians.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 4


def _time(script: Path, *flags: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "patcher", "verify", str(script), "--format", "json", *flags],
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    script = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples/clone_detection/run.py"
    _time(script)  # warm the model cache
    with_health, without = [], []
    for _ in range(REPEATS):
        with_health.append(_time(script))
        without.append(_time(script, "--no-health"))
    on, off = statistics.median(with_health), statistics.median(without)
    print(f"script: {script}")
    print(f"verify with health checks:  {on:6.2f} s median of {REPEATS}")
    print(f"verify with --no-health:    {off:6.2f} s median of {REPEATS}")
    print(f"health overhead: {100 * (on - off) / off:+.1f} % (target <= 10 %)")


if __name__ == "__main__":
    main()
