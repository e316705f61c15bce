"""Turn the paths on the command line into the Python files to process.

Files named explicitly are processed (unless excluded with ``force_exclude``) and always
validated, even when no rule could apply to them; a symlink is
followed: its target is rewritten and the link stays a link. Directories are walked for
``*.py``, skipping hidden directories, virtualenvs, ``site-packages``, ``build`` and the
``exclude`` globs; symlinked directories are not entered and a file reached twice (through
links) is processed once.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SKIPPED_DIRS = frozenset(
    {"site-packages", "dist-packages", "node_modules", "__pycache__", "venv", "env", "build"}
)


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    empty_dirs: list[Path] = field(default_factory=list)
    #: The files named on the command line (always validated; walked ones may be prefiltered).
    named: set[Path] = field(default_factory=set)


def _excluded(path: Path, patterns: Sequence[str]) -> bool:
    text = path.as_posix()
    return any(
        fnmatch.fnmatch(text, pattern)
        or fnmatch.fnmatch(path.name, pattern)
        or fnmatch.fnmatch(text, f"*/{pattern}")
        or fnmatch.fnmatch(text, f"{pattern}/*")
        or fnmatch.fnmatch(text, f"*/{pattern}/*")
        for pattern in patterns
    )


def _is_venv(directory: Path) -> bool:
    return (directory / "pyvenv.cfg").is_file()


def _walk(root: Path, exclude: Sequence[str]) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in SKIPPED_DIRS
            and not (here / d).is_symlink()
            and not _is_venv(here / d)
            and not _excluded(here / d, exclude)
        )
        for name in sorted(filenames):
            candidate = here / name
            if name.endswith(".py") and not _excluded(candidate, exclude):
                yield candidate


def discover(
    paths: Sequence[Path], exclude: Sequence[str] = (), *, force_exclude: bool = False
) -> Discovery:
    found = Discovery()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.files.append(path)

    for path in paths:
        if path.is_dir():
            before = len(found.files)
            for candidate in _walk(path, exclude):
                add(candidate)
            if len(found.files) == before:
                found.empty_dirs.append(path)
        elif path.exists() or path.is_symlink():
            # Named explicitly: processed even if not *.py, and even if excluded unless
            # --force-exclude (what the pre-commit hooks pass, since they name every file).
            if not (force_exclude and _excluded(path, exclude)):
                add(path)
                found.named.add(path)
        else:
            found.missing.append(path)
    return found
