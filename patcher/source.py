"""Reading and writing user scripts without ever damaging them.

A script is decoded exactly as Python would decode it (BOM, then the PEP 263 coding cookie, then
UTF-8), and encoded back the same way, so a file that ddpfix leaves alone round-trips byte for
byte. Writes go to a temporary file in the same directory followed by ``os.replace``, so a reader
(or a crash) only ever sees the old or the new file, never half of one.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import stat
import tempfile
import tokenize
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path

from patcher.pids import alive


class SourceError(Exception):
    """A file that cannot be processed; the message is one line, meant for the user."""


@dataclass(frozen=True)
class Source:
    """A decoded script and what is needed to write it back identically."""

    path: Path
    text: str
    encoding: str

    def encode(self, text: str) -> bytes:
        return text.encode(self.encoding)


def read_source(path: Path) -> Source:
    """Read and decode ``path``, refusing what is not a Python 3 text file."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if path.is_symlink():
            raise SourceError("broken symlink (its target does not exist)") from None
        raise SourceError("no such file") from None
    except IsADirectoryError:
        raise SourceError("is a directory") from None
    except PermissionError:
        raise SourceError("permission denied while reading") from None
    except OSError as exc:
        raise SourceError(f"cannot read: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise SourceError("binary file (contains NUL bytes), not Python source")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as exc:
        if "unknown encoding" in str(exc):
            raise SourceError(f"bad encoding declaration: {exc}") from None
        encoding = "utf-8"  # no usable declaration: Python reads it as UTF-8, and so do we
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    try:
        text = data.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        where = f" at byte {exc.start}" if isinstance(exc, UnicodeDecodeError) else ""
        raise SourceError(f"not valid {encoding} text{where}") from None
    return Source(path=path, text=text, encoding=encoding)


def check_writable(path: Path) -> None:
    """Refuse to rewrite a file the user marked read-only (root would otherwise succeed)."""
    real = path.resolve()
    mode = real.stat().st_mode
    if not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise SourceError("read-only file (no write permission bits); not modified")
    if not os.access(real.parent, os.W_OK | os.X_OK):
        raise SourceError(f"cannot write to directory {real.parent}")


def remove_leftovers(real: Path) -> None:
    """Temp files of this file left by a ddpfix process that was killed (its pid is dead)."""
    for leftover in real.parent.glob(f".{glob_escape(real.name)}.*.ddpfix.tmp"):
        pid = leftover.name[len(real.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not alive(int(pid)):
            with contextlib.suppress(OSError):
                leftover.unlink()


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, keeping its mode.

    A symlink is followed: the target file is replaced and the link stays a link. The temp file
    carries the writer's pid, so one left behind by a killed run is removed by the next.
    """
    real = path.resolve()
    check_writable(path)
    mode = stat.S_IMODE(real.stat().st_mode)
    remove_leftovers(real)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{real.name}.{os.getpid()}.", suffix=".ddpfix.tmp", dir=real.parent
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise SourceError(f"cannot write: {exc.strerror or exc}") from None
        raise
