"""Exact global-batch arithmetic for ``ddpfix plan`` and ``ddpfix launch``.

The global batch of a data-parallel run is per-GPU batch x ranks x gradient-accumulation steps.
Legacy launchers round silently (3 GPUs x 16 x 1 = 48, reported as "64 (approx)"); here a split is
either exact or refused, with the nearest exact alternatives listed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    ranks: int
    per_gpu: int
    accumulation: int

    @property
    def global_batch(self) -> int:
        return self.per_gpu * self.ranks * self.accumulation


def exact_split(global_batch: int, ranks: int, per_gpu: int | None = None) -> Split | None:
    """The split with ``per_gpu`` (or the largest per-GPU batch, if not given) that multiplies
    out to ``global_batch`` exactly; None if there is none."""
    if global_batch <= 0 or ranks <= 0:
        raise ValueError("the global batch and the number of ranks must be positive")
    if per_gpu is not None:
        if per_gpu <= 0:
            raise ValueError("the per-GPU batch must be positive")
        step = per_gpu * ranks
        if global_batch % step:
            return None
        return Split(ranks, per_gpu, global_batch // step)
    if global_batch % ranks:
        return None
    return Split(ranks, global_batch // ranks, 1)


def nearest_exact(
    global_batch: int, ranks: int, per_gpu: int | None, count: int = 4
) -> list[Split]:
    """Exact splits close to the request: other per-GPU batches for the same global batch, and
    the nearest global batches reachable with the requested per-GPU batch."""
    options: list[Split] = []
    if global_batch % ranks == 0:
        per_rank = global_batch // ranks
        divisors = [d for d in range(1, per_rank + 1) if per_rank % d == 0]
        target = per_gpu or per_rank
        for size in sorted(divisors, key=lambda d: (abs(d - target), -d))[:2]:
            options.append(Split(ranks, size, per_rank // size))
    size = per_gpu or max(1, global_batch // ranks)
    step = size * ranks
    below = max(step, (global_batch // step) * step)
    for total in sorted({below, below + step}, key=lambda t: abs(t - global_batch)):
        options.append(Split(ranks, size, total // step))
    unique: list[Split] = []
    for option in options:
        if option not in unique:
            unique.append(option)
    return unique[:count]


def table(
    global_batch: int, per_gpu: int, max_ranks: int = 8
) -> list[tuple[int, int, int, int, bool]]:
    """Rows (ranks, per-GPU batch, accumulation, effective global batch, exact) for 1..max."""
    rows = []
    for ranks in range(1, max_ranks + 1):
        split = exact_split(global_batch, ranks, per_gpu)
        if split is not None:
            rows.append((ranks, per_gpu, split.accumulation, split.global_batch, True))
        else:
            accumulation = max(1, round(global_batch / (per_gpu * ranks)))
            rows.append((ranks, per_gpu, accumulation, per_gpu * ranks * accumulation, False))
    return rows
