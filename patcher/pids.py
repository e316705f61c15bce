"""Processes: whether one still runs, its descendants, killing a tree, a free port.

Used by the temp-file cleanup (is the writer still alive?), ``ddpfix launch`` and verify (no
rank may outlive the run: torchrun starts each worker in a session of its own, so killing the
launcher's process group is not enough). The process tree comes from psutil when it is
installed (the verify extra brings it; it also works on macOS), else from Linux's ``/proc``:
``ddpfix launch`` needs only the core install.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Iterable


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


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read().decode(errors="replace")
        except OSError:
            continue
        # the command may contain spaces and parentheses: ppid follows the last ')'
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), now."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            return [child.pid for child in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    tree = _children_map()
    found, pending = [], [pid]
    while pending:
        for child in tree.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def kill(pids: Iterable[int]) -> None:
    """SIGKILL each of ``pids`` that still exists (never this process)."""
    for pid in set(pids) - {os.getpid()}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    """A TCP port nobody listens on now, so parallel launches do not collide."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
