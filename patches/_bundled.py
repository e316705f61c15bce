"""A library the project ships a copy of: the script imports that copy, not the installed one.

Research repositories of 2019-2020 often vendor the exact ``transformers`` they were written
against (SLK-NER ships 2.4.1 next to ``run_ner.py``, CLUE 2.1.1): ``python run_ner.py`` puts the
script's directory first on ``sys.path``, so ``from transformers.modeling_bert import ...``
finds the copy. The porting rules for today's transformers would rewrite those imports to paths
the copy does not have (``transformers.models.bert.modeling_bert``: ModuleNotFoundError) and
report names as removed that the copy still has; they leave such files alone.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

#: How far above the file to look: a module of a package (a directory with ``__init__.py``)
#: imported by a script one or two directories up resolves ``transformers`` from that script's
#: directory; a script runs with its own directory first on ``sys.path``, not its parent's.
_LEVELS_UP = 2


def bundled(path: Path | None, package: str) -> Path | None:
    """The copy of ``package`` (a directory ``package`` with an ``__init__.py``) next to
    ``path``, or up to two directories above it through the packages ``path`` is in, or the copy
    ``path`` is a file of; None when there is none."""
    if path is None:
        return None
    return _bundled(str(path.resolve().parent), package)


@lru_cache(maxsize=256)
def _bundled(directory: str, package: str) -> Path | None:
    here = Path(directory)
    for _ in range(_LEVELS_UP + 1):
        candidate = here / package / "__init__.py"
        if candidate.is_file():
            return candidate.parent
        if here.name == package and (here / "__init__.py").is_file():
            return here
        if not (here / "__init__.py").is_file() or here.parent == here:
            break  # a script's own directory: python looks no higher (``examples/run.py``)
        here = here.parent
    return None
