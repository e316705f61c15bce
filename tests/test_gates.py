"""Which processes pass a gate: the three-valued reading the rules rely on."""

from __future__ import annotations

import libcst as cst
import pytest

from patches._gates import OTHER, RANK0, SINGLE, truth

T, F, U = True, False, None


@pytest.mark.parametrize(
    ("test", "single", "rank0", "other"),
    [
        ("args.local_rank == -1", T, F, F),
        ("-1 == args.local_rank", T, F, F),
        ("args.local_rank in [-1, 0]", T, T, F),
        ("args.local_rank not in [-1, 0]", F, F, T),
        ("args.local_rank != -1", F, T, T),
        ("args.local_rank == 0", F, T, F),
        ("args.local_rank == 1", F, F, U),
        ("args.local_rank == -1 and args.evaluate_during_training", U, F, F),
        ("args.local_rank == -1 or args.no_cuda", T, U, U),
        ("args.do_eval and (args.local_rank == -1 or torch.distributed.get_rank() == 0)", U, U, F),
        ("not args.local_rank in [-1, 0]", F, F, T),
        ("args.save_steps > 0", U, U, U),
        ("self.args.local_rank in (-1, 0) and step % 10 == 0", U, U, F),
        ("dist.get_rank() != 0", U, F, T),
    ],
)
def test_truth(test: str, single, rank0, other) -> None:
    node = cst.parse_expression(test)
    assert (truth(node, SINGLE), truth(node, RANK0), truth(node, OTHER)) == (single, rank0, other)
