"""Synthetic data in salesforce/CodeT5's layout: ``{data_dir}/{task}/{sub_task}/...``.

CodeT5's ``run_gen.py``, ``run_clone.py``, ``run_defect.py`` and ``run_multi_gen.py`` read the
CodeXGLUE formats, but from fixed paths under ``--data_dir`` (``utils.get_filenames``) rather
than from ``--train_filename`` flags. So these generators write the CodeXGLUE files of
:mod:`patcher.verify.datasets` (and of the task modules beside this one) one or two directories
down, where the scripts look for them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from patcher.verify.datasets import bigclonebench, code_to_text, defect
from patcher.verify.tasks.concode import concode
from patcher.verify.tasks.seq2seq_pairs import code_refinement, code_to_code_trans

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


def defect_detection(out: Path) -> list[str]:
    """``defect/{train,valid,test}.jsonl`` (Devign: ``func``, ``target``, int ``idx``).

    ``predictions.txt`` starts each line with the example's ``idx``, in test-file order. The
    valid targets alternate 0/1, so a constant prediction still scores accuracy 0.5 > 0, which
    is what makes the script write the ``checkpoint-best-acc`` that ``--do_test`` reloads.
    """
    directory = out / "defect"
    directory.mkdir(parents=True)
    return defect(directory)


#: run_multi_gen.py's sub-tasks of summarize and refine (``load_and_cache_multi_gen_data``).
SUMMARIZE_LANGUAGES = ("ruby", "javascript", "go", "python", "java", "php")
REFINE_SIZES = ("small", "medium")


def multi_task(out: Path) -> list[str]:
    """Every task ``run_multi_gen.py`` trains on at once, each in its own layout: summarize for
    six languages, translate, refine small and medium, concode and defect. It has no results
    file to check (see its target), so the keys are summarize/python's."""
    keys: list[str] = []
    for language in SUMMARIZE_LANGUAGES:
        directory = out / "summarize" / language
        directory.mkdir(parents=True)
        found = code_to_text(directory)
        keys = found if language == SUMMARIZE_SUB_TASK else keys
    (out / "translate").mkdir()
    code_to_code_trans(out / "translate")
    for size in REFINE_SIZES:
        (out / "refine" / size).mkdir(parents=True)
        code_refinement(out / "refine" / size)
    (out / "concode").mkdir()
    concode(out / "concode")
    defect_detection(out)
    return keys


GENERATORS: dict[str, Callable[[Path], list[str]]] = {
    "codet5-summarize": summarize,
    "codet5-clone": clone,
    "codet5-defect": defect_detection,
    "codet5-multi-task": multi_task,
}
