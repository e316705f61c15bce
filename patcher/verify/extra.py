"""Is the ``verify`` extra installed? Asked before anything else, so that a ``pip install -e .``
(enough for apply/check) gets one line saying what to install, not a traceback."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

#: What verify itself imports (the launched script may need more; that is reported per run).
MODULES = ("torch", "accelerate", "transformers", "tokenizers")

INSTALL = "verify needs the verify extra: pip install 'ddpfix[verify]'"


def missing() -> str | None:
    """The first of :data:`MODULES` that is not installed or does not import, else None."""
    for name in MODULES:
        try:
            version(name)
            # torch is imported by verify anyway; the others are checked by metadata only,
            # importing transformers here would cost seconds.
            if name == "torch":
                importlib.import_module(name)
        except (PackageNotFoundError, ImportError):
            return name
    return None
