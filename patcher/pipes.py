"""Ending quietly when the reader of our output goes away (``ddpfix ... | head``).

As ``cat`` or ``git log`` do: a command whose output is no longer read stops there, with no
message and the status of a process killed by SIGPIPE (141 in a shell).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
from typing import IO, NoReturn

#: The status a shell reports for a process killed by SIGPIPE.
BROKEN_PIPE_STATUS = 128 + 13


def die_on_broken_pipe() -> None:
    """A write to a pipe nobody reads ends the process at once, silently (the Unix default;
    Python ignores SIGPIPE and raises BrokenPipeError, which click turns into exit 1)."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def raise_on_broken_pipe() -> None:
    """Python's default, for verify: its launched processes must be killed before it ends."""
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)


def reader_gone(stream: IO[str]) -> bool:
    """True when ``stream`` is a pipe whose reading end is closed (``head`` has exited)."""
    if not hasattr(select, "poll"):
        return False
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test's StringIO)
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(event & select.POLLERR for _, event in poller.poll(0))


def end_quietly() -> NoReturn:
    """Stop now, saying nothing: stdout and stderr go to /dev/null so that the interpreter's
    last flush of what is still buffered cannot complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            os.dup2(devnull, stream.fileno())
    raise SystemExit(BROKEN_PIPE_STATUS)
