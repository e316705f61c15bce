"""Whether a process is still running, for code that owns files named by a pid."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie has finished and counts as gone (Linux ``/proc``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().split(b") ")[-1][:1] != b"Z"
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we know
