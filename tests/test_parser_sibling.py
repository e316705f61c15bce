"""DDP001 and a parse in another module of the project (issue 9, unseen10 Q1): when that module
is a file next to the one being fixed and already reads LOCAL_RANK, there is nothing to ask."""

from __future__ import annotations

from pathlib import Path

from patcher.engine import fix_text, process_file
from patcher.registry import every_rule, select_rules

RULES = select_rules(every_rule(), ["DDP001"])
TRAIN = """\
import argparse
from configs import add_args, set_dist

parser = argparse.ArgumentParser()
args = add_args(parser)
set_dist(args)
print(args.local_rank)
"""
CONFIGS = """\
import os


def add_args(parser):
    parser.add_argument("--local_rank", type=int, default=-1)
    args = parser.parse_args()
    {env}
    return args
"""
READS_ENV = """if os.environ.get("LOCAL_RANK") is not None:
        args.local_rank = int(os.environ["LOCAL_RANK"])"""
REPORT = (
    "DDP001",
    5,
    "`--local_rank` is parsed in configs.add_args (configs.py): run ddpfix on that file too, "
    "or read LOCAL_RANK there",
)


def _findings(tmp_path: Path, configs: str | None) -> list[tuple[str, int, str]]:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    if configs is not None:
        (tmp_path / "configs.py").write_text(configs)
    result = process_file(script, RULES, write=False, named=True)
    assert result.error is None and not result.changed
    return [(f.code, f.line, f.message) for f in result.findings]


def test_sibling_that_reads_local_rank_is_not_reported(tmp_path: Path) -> None:
    assert _findings(tmp_path, CONFIGS.format(env=READS_ENV)) == []


def test_sibling_that_does_not_is_reported(tmp_path: Path) -> None:
    assert _findings(tmp_path, CONFIGS.format(env="pass")) == [REPORT]


def test_without_the_sibling_or_the_path_it_is_reported(tmp_path: Path) -> None:
    assert _findings(tmp_path, None) == [REPORT]
    _, findings = fix_text(TRAIN, RULES)  # text without a path: the sibling cannot be seen
    assert [(f.code, f.line, f.message) for f in findings] == [REPORT]


def test_a_device_index_read_from_local_rank_is_not_the_rank(tmp_path: Path) -> None:
    device_only = CONFIGS.format(env='device = int(os.environ.get("LOCAL_RANK", 0))')
    assert _findings(tmp_path, device_only) == [REPORT]


DECLARES = """\
import argparse
import os


def get_argparse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--local_rank", type=int, default={default})
    return parser
"""
NER = """\
from finetuning_argparse import get_argparse

args = get_argparse().parse_args()
print(args.local_rank)
"""


def test_a_parser_declared_next_door_is_reported_unless_it_reads_local_rank(
    tmp_path: Path,
) -> None:
    """``get_argparse()`` (BERT-NER-Pytorch) declares ``--local_rank``: reported while its
    default is a literal, not once the sibling takes it from LOCAL_RANK."""
    script = tmp_path / "run_ner.py"
    script.write_text(NER)
    helper = tmp_path / "finetuning_argparse.py"
    found = []
    for default in ("-1", 'int(os.environ.get("LOCAL_RANK", -1))'):
        helper.write_text(DECLARES.format(default=default))
        result = process_file(script, RULES, write=False, named=True)
        assert result.error is None and not result.changed
        found.append([(f.code, f.line, f.fixed) for f in result.findings])
    assert found == [[("DDP001", 3, False)], []]
