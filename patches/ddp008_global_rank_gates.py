"""DDP008 global-rank-gates: one writer per job, not one per node.

``args.local_rank in [-1, 0]`` is true on local rank 0 of *every* node. On one machine that is
rank 0; in a multi-node job every node's first process evaluates, saves the checkpoint and writes
the predictions, and on a shared filesystem they overwrite each other (or interleave). The rule
rewrites such gates, where the body evaluates or saves (the same test as DDP003), to the global
rank: ``int(os.environ.get("RANK", args.local_rank)) in [-1, 0]``. Every launcher sets ``RANK``;
without one the expression falls back to the local rank, so single-process and single-node runs
behave exactly as before.

The barrier pairs around downloading and caching (``if args.local_rank not in [-1, 0]:
barrier()`` … ``if args.local_rank == 0: barrier()``) are per node by nature when each node has its
own cache, and stay. If the cache directory is shared between nodes, set ``shared_cache = true``
in ``[tool.ddpfix.rules.DDP008]``: those pairs then gate on the global rank too, so one process in
the whole job downloads first.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._gates import conjuncts, rank_comparison
from patches._syntax import (
    callee_name,
    calls_in,
    global_rank,
    import_fix,
    is_eval_call,
    is_save_call,
    preferred_quote,
)

RANK_ZERO = (frozenset({-1, 0}), frozenset({0}))


def _global(term: cst.Comparison, quote: str) -> cst.BaseExpression:
    """``int(os.environ.get("RANK", x.local_rank)) <the same comparison>``."""
    found = rank_comparison(term)
    assert found is not None
    if found[0] is term.left:
        return term.with_changes(left=global_rank(found[0], quote))
    # -1 == x.local_rank: the rank goes left, as the rule writes it
    operator = term.comparisons[0].with_changes(comparator=term.left)
    return term.with_changes(left=global_rank(found[0], quote), comparisons=[operator])


def _barrier_only(body: cst.BaseSuite) -> bool:
    calls = list(calls_in(body))
    return bool(calls) and all(callee_name(c) == "barrier" for c in calls)


class GlobalRankGates(Rule):
    code = "DDP008"
    name = "global-rank-gates"
    summary = "Saves and evaluation gated on local rank 0 run on global rank 0 (RANK) only."
    rationale = __doc__
    settles = True
    triggers = ("local_rank",)
    examples = (
        Example(
            before=(
                "import os\n"
                "if args.local_rank in [-1, 0] and args.save_steps > 0:\n"
                "    torch.save(model.state_dict(), path)\n"
            ),
            after=(
                "import os\n"
                'if int(os.environ.get("RANK", args.local_rank)) in [-1, 0] '
                "and args.save_steps > 0:\n"
                "    torch.save(model.state_dict(), path)\n"
            ),
        ),
        Example(
            before=(
                "if args.local_rank not in [-1, 0]:\n"
                "    torch.distributed.barrier()  # one process per node downloads first\n"
                "model = Model.from_pretrained(name)\n"
                "if args.local_rank == 0:\n"
                "    torch.distributed.barrier()\n"
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        module = tree.module
        shared_cache = bool(ctx.options.get("shared_cache", False))
        quote = preferred_quote(tree.code)
        needs_os = import_fix(module, "os")
        for gate in tree.nodes(cst.If):
            terms = []
            for term in conjuncts(gate.test):
                found = rank_comparison(term)
                if found is None:
                    continue
                _, values, positive = found
                rank_zero = positive and values in RANK_ZERO
                barrier_gate = shared_cache and not positive and values == frozenset({-1, 0})
                if rank_zero or barrier_gate:
                    terms.append(term)
            if not terms:
                continue
            calls = list(calls_in(gate.body))
            writes = any(is_eval_call(c) or is_save_call(c) for c in calls)
            barrier = shared_cache and _barrier_only(gate.body)
            if not (writes or barrier) or (gate.orelse is not None and not barrier):
                continue
            assert all(isinstance(t, cst.Comparison) for t in terms)
            what = "the shared cache" if barrier and not writes else "saves and evaluation"
            ctx.fix(
                gate,
                f"local rank 0 exists on every node: gate {what} on the global rank (RANK)",
                {t: _global(t, quote) for t in terms} | needs_os,  # type: ignore[arg-type]
            )
