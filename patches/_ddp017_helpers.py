"""The module-level helpers DDP017 adds to a script, as source text (parsed once, on demand).

They are defined in the script itself so the patched file keeps running without ddpfix. Each
does nothing new without a process group: a single process runs exactly as before.
"""

from __future__ import annotations

from functools import lru_cache

import libcst as cst

SHARD = "_ddpfix_eval_shard"
GATHER = "_ddpfix_gather_rows"
SUM = "_ddpfix_sum_over_ranks"

_SOURCE = '''

def _ddpfix_eval_shard(dataset):
    """ddpfix DDP017: this process's share of an evaluation set (every world_size-th example from
    its rank on, no padding); the whole set in order without a process group, as before."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return torch.utils.data.SequentialSampler(dataset)
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    return list(range(rank, len(dataset), world))


def _ddpfix_gather_rows(shard, *columns):
    """ddpfix DDP017: every process's per-batch arrays, gathered with their example indices and
    put back in dataset order, on every rank; unchanged without a process group."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return columns
    local = [np.concatenate(column, 0) if len(column) else None for column in columns]
    shards = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(shards, (list(shard), local))
    indices = np.concatenate([np.asarray(i, dtype=np.int64) for i, _ in shards])
    order = np.argsort(indices, kind="stable")
    gathered = []
    for k in range(len(columns)):
        rows = np.concatenate([c[k] for _, c in shards if c[k] is not None], 0)
        if len(rows) != len(order):
            raise RuntimeError("ddpfix: evaluation outputs and examples do not match one to one")
        gathered.append([rows[order]])
    return gathered
'''

_SUM_SOURCE = '''

def _ddpfix_sum_over_ranks(*values):
    """ddpfix DDP017: running sums of an evaluation loop (a loss, a batch count) added up over
    every process; unchanged without a process group."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    shards = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(shards, list(values))
    return [sum(s[k] for s in shards) for k in range(len(values))]
'''


@lru_cache(maxsize=2)
def _parsed(with_sum: bool) -> tuple[cst.BaseStatement, ...]:
    text = _SOURCE + (_SUM_SOURCE if with_sum else "")
    return tuple(cst.parse_module(text.lstrip("\n")).body)


def helpers(with_sum: bool) -> list[cst.BaseStatement]:
    """The helper definitions, each preceded by two blank lines (PEP 8 between functions)."""
    blank = [cst.EmptyLine(), cst.EmptyLine()]
    return [s.with_changes(leading_lines=blank) for s in _parsed(with_sum)]
