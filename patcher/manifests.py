"""Where the manifests of ``upstream/`` are: in a wheel, or in the source checkout.

The repository keeps them at its top (``upstream/``), next to the code that reads them; a wheel
carries the same files as ``patcher/_upstream`` (see ``pyproject.toml``), so an installed ddpfix
still recognises the scripts it targets.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def manifest_dir() -> Path:
    """The installed copy when there is one, else the checkout's ``upstream/``."""
    installed = _PACKAGE / "_upstream"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / "upstream"
