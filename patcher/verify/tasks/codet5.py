"""Synthetic data in salesforce/CodeT5's layout: ``{data_dir}/{task}/{sub_task}/...``.

CodeT5's ``run_gen.py`` and ``run_clone.py`` read the CodeXGLUE formats, but from fixed paths
under ``--data_dir`` (``utils.get_filenames``) rather than from ``--train_filename`` flags. So
these generators write the CodeXGLUE files of :mod:`patcher.verify.datasets` one or two
directories down, where the scripts look for them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import bigclonebench, code_to_text

#: The summarize sub-task the target runs (``--sub_task``): one CodeSearchNet language.
SUMMARIZE_SUB_TASK = "python"


def summarize(out: Path) -> list[str]:
    """``summarize/python/{train,valid,test}.jsonl`` with ``code_tokens``/``docstring_tokens``.

    ``read_summarize_examples`` numbers examples by line, not by a ``idx`` field, and
    ``eval_bleu_epoch`` writes that number first on each ``test_*.output`` line: the keys are
    the line numbers of ``test.jsonl``. 16 training rows are 4 batches of 2 per rank on 2 ranks.
    """
    directory = out / "summarize" / SUMMARIZE_SUB_TASK
    directory.mkdir(parents=True)
    return code_to_text(directory)


def clone(out: Path) -> list[str]:
    """``clone/data.jsonl`` and ``clone/{train,valid,test}.txt`` pair files (BigCloneBench).

    ``read_clone_examples`` finds ``data.jsonl`` beside the pair file, and ``predictions.txt``
    starts each line with the pair's two ids: the keys are ``id1<TAB>id2`` in test-file order.
    ``run_clone.py`` evaluates a random 10% of the valid pairs, which are all clones here, so
    any positive prediction gives f1 > 0 and a ``checkpoint-best-f1`` for ``--do_test``.
    """
    directory = out / "clone"
    directory.mkdir(parents=True)
    return bigclonebench(directory)


GENERATORS: dict[str, Callable[[Path], list[str]]] = {
    "codet5-summarize": summarize,
    "codet5-clone": clone,
}
