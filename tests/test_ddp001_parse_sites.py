"""DDP001's reports name what to do: the fixtures check where they are, these check what they say.

A report is only useful if it names the module that parses (``configs.add_args (configs.py)``),
and the class-6 report must say why no LOCAL_RANK read was added.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from patcher.engine import fix_text
from patcher.registry import all_rules, select_rules
from patches.ddp001_local_rank_from_env import NO_PROCESS_GROUP, TRAINER_BEHIND_GATE

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "DDP001"
DDP001 = select_rules(all_rules(), ["DDP001"])


def reports(source: str) -> list[str]:
    _, findings = fix_text(source, DDP001)
    return [f.message for f in findings if not f.fixed]


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("dataparallel_dormant_world_size", NO_PROCESS_GROUP),
        (
            "parsed_in_imported_helper",
            "`--local_rank` is parsed in configs.add_args (configs.py): run ddpfix on that file "
            "too, or read LOCAL_RANK there",
        ),
        (
            "parser_from_imported_helper",
            "`--local_rank` is declared in utils.options.get_parser (utils/options.py), so its "
            "default is not visible here: read LOCAL_RANK after this parse by hand",
        ),
        (
            "hydra_config",
            "`cfg.trainer.local_rank` comes from the Hydra config of main(), whose default lives "
            "in a YAML file ddpfix does not read: set it from LOCAL_RANK at the start of the "
            "function",
        ),
        ("hf_trainer_evaluate_gated", TRAINER_BEHIND_GATE),
    ],
)
def test_report_names_what_to_do(fixture: str, message: str) -> None:
    assert reports((FIXTURES / f"{fixture}.in.py").read_text()) == [message]


@pytest.mark.parametrize(
    ("imports", "call", "where"),
    [
        ("from . import configs", "configs.add_args(p)", ".configs.add_args (configs.py)"),
        ("import utils.configs as c", "c.get_args()", "utils.configs.get_args (utils/configs.py)"),
        ("from ..opts import parse_args", "parse_args()", "..opts.parse_args (../opts.py)"),
    ],
)
def test_helper_module_spellings(imports: str, call: str, where: str) -> None:
    source = f"{imports}\nargs = {call}\nprint(args.local_rank)\n"
    assert [m.split(":")[0] for m in reports(source)] == [f"`--local_rank` is parsed in {where}"]


@pytest.mark.parametrize(
    ("lines", "where"),
    [
        ("args = get_argparse().parse_args()", "tools.args.get_argparse (tools/args.py)"),
        ("args = build_config().parse_args()", "tools.args.build_config (tools/args.py)"),
        ("p = make_args()\nargs = p.parse_args()", "tools.args.make_args (tools/args.py)"),
        ("p = make_args()\nargs, _ = p.parse_known_args()", "tools.args.make_args (tools/args.py)"),
    ],
)
def test_a_parser_is_known_by_its_parse_not_its_helper_name(lines: str, where: str) -> None:
    """BERT-NER-Pytorch's ``get_argparse()`` (no final r) makes the parser that declares
    ``--local_rank``: it is a parser because the file parses with it."""
    helper = lines.split("(")[0].split()[-1]
    source = f"from tools.args import {helper}\n{lines}\nprint(args.local_rank)\n"
    assert [m.split(", so")[0] for m in reports(source)] == [
        f"`--local_rank` is declared in {where}"
    ]


@pytest.mark.parametrize(
    "source",
    [
        # a library's parser is not where this project declares its options
        "from jsonargparse import ArgumentParser\nargs = ArgumentParser().parse_args()\n"
        "print(args.local_rank)\n",
        # a project helper's result that is never parsed is not a parser
        "import argparse\nfrom tools.args import get_argparse\nextra = get_argparse()\n"
        "args = argparse.ArgumentParser().parse_args()\nprint(args.local_rank)\n",
        # a library's helper is not where this project parses
        "from transformers import get_args\nargs = get_args()\nprint(args.local_rank)\n",
        # the file reads LOCAL_RANK itself
        "import os\nfrom configs import add_args\nargs = add_args(p)\n"
        "args.local_rank = int(os.environ.get('LOCAL_RANK', -1))\n",
        # nothing reads the rank
        "from configs import add_args\nargs = add_args(p)\nprint(args.lr)\n",
    ],
)
def test_nothing_to_report(source: str) -> None:
    assert reports(source) == []


def test_distributed_looking_methods_are_not_torch_distributed() -> None:
    """``self.distances.reduce()`` is not a collective: the script is fixed, not reported."""
    source = (
        "import argparse\n"
        "parser = argparse.ArgumentParser()\n"
        "parser.add_argument('--local_rank', type=int, default=-1)\n"
        "args = parser.parse_args()\n"
        "total = self.distances.reduce(sum) if args.local_rank != -1 else 0\n"
    )
    output, findings = fix_text(source, DDP001)
    assert [f.fixed for f in findings] == [True] and "LOCAL_RANK" in output
