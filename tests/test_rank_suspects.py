"""What a post-condition names as the likely culprit: the engine withdraws that fix first."""

from __future__ import annotations

import textwrap
from typing import cast

import libcst as cst

from patcher.rule import Reason
from patcher.tree import Tree
from patches._ranks import postcondition, suspected

DORMANT = """\
import argparse
import torch

parser = argparse.ArgumentParser()
parser.add_argument("--local_rank", type=int, default=-1)
args = parser.parse_args()
if args.local_rank not in [-1, 0]:
    torch.distributed.barrier()
"""
WOKEN = DORMANT.replace(
    "args = parser.parse_args()\n",
    "args = parser.parse_args()\n"
    "if 'LOCAL_RANK' in os.environ and args.local_rank == -1:\n"
    "    args.local_rank = int(os.environ['LOCAL_RANK'])\n",
)


def _tree(source: str) -> Tree:
    source = textwrap.dedent(source)
    return Tree(cst.parse_module(source), source)


def test_what_a_woken_rank_breaks_names_the_local_rank_read() -> None:
    found = postcondition(_tree(WOKEN))
    # the barrier only ranks other than 0 reach, woken by the LOCAL_RANK read
    assert [cast("tuple[str, ...]", key)[0] for key in found] == ["collective"]
    reason = next(iter(found.values()))
    assert isinstance(reason, Reason)
    assert reason.suspects == ("DDP001",)


def test_a_dormant_version_breaks_nothing_and_names_nobody() -> None:
    assert postcondition(_tree(DORMANT)) == {}
    found = suspected(_tree(DORMANT), {"key": "why"})
    assert found == {"key": "why"}
    assert not isinstance(found["key"], Reason)


def test_a_launcher_aware_script_names_nobody() -> None:
    aware = WOKEN.replace("import torch\n", "import torch\nfrom accelerate import Accelerator\n")
    found = suspected(_tree(aware), {"key": "why"})
    assert not isinstance(found["key"], Reason)
