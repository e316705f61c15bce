"""DDP012 barrier-before-shared-read: every rank waits for rank 0's file before reading it.

Once saves run on rank 0 alone (DDP003, DDP008, DDP011, or the script's own ``local_rank in [-1,
0]`` gate), a file that every rank then reads back (``model.load_state_dict(torch.load(
"model_best.pt"))`` right after the training loop) is read by the other ranks before rank 0 has
written it, or while it is half written: ``FileNotFoundError`` on rank 1, or a
``PytorchStreamReader`` error. The rule puts a barrier before such a read::

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()

so a single process, where no process group exists, runs exactly as before. The file is matched
by the names its path is built from (``os.path.join(args.output_dir, "model_best.pt")``, through
the variables holding it, in the same function); the writer must be gated to a strict subset of the
ranks by the rank model and the reader must run on the others. A read that already follows a
collective every rank runs is left alone; a read that is not a statement of its own (inside an
``if`` test, a lambda) is reported.

A directory counts as the file: ``model.save_pretrained(args.output_dir)`` (or a tokenizer's)
writes files inside it and ``Model.from_pretrained(args.output_dir)`` reads them, matched by the
dotted names the directory is held in, through local names, lists of them and loops over those
(the fine-tuning template's ``checkpoints = [args.output_dir]``, ``for checkpoint in
checkpoints: model = model_class.from_pretrained(checkpoint)``).

The barrier must be reached by every rank equally often, so it goes before the innermost
statement around the read whose every test is rank-uniform (:mod:`patches._uniform`: the
command line, counters) and that no loop may repeat a different number of times on each rank:
before the loop over the checkpoints, not in it, and before ``if args.do_eval or
args.do_eval_dev and args.local_rank in [-1, 0]:`` (which only rank 0 enters with
``--do_eval_dev`` alone), not inside it. Where no such statement follows the write in the
reader's function, the read is reported.

The barrier only orders anything where a process group exists. In a script whose rank stays
dormant under the launcher (DDP001 withheld: every process keeps ``local_rank == -1`` and never
calls ``init_process_group``), a save gated on the launcher's ``RANK`` by DDP008 or DDP011 would
leave process RANK=1 reading a file it never wrote, past a barrier that never runs; the engine's
post-condition judges the barrier that way and withdraws such a gate (every process keeps
writing the file it reads back, as the original did).
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Tree
from patches._ranks import RankModel, model, shared_reads
from patches._uniform import Uniformity


def _barrier() -> cst.If:
    return cst.ensure_type(
        cst.parse_statement(
            "if torch.distributed.is_available() and torch.distributed.is_initialized():\n"
            "    torch.distributed.barrier()\n"
        ),
        cst.If,
    )


class BarrierBeforeSharedRead(Rule):
    code = "DDP012"
    name = "barrier-before-shared-read"
    summary = "A file rank 0 writes and every rank reads is read after a barrier."
    rationale = __doc__
    settles = False  # a new barrier is a collective the other rules' analyses see
    triggers = ("local_rank", "get_rank", "RANK")
    examples = (
        Example(
            before="""
                import os
                import torch
                def main(args, model):
                    path = os.path.join(args.output_dir, 'model_best.pt')
                    if args.local_rank in [-1, 0]:
                        torch.save(model.state_dict(), path)
                    model.load_state_dict(torch.load(path))
            """,
            after="""
                import os
                import torch
                def main(args, model):
                    path = os.path.join(args.output_dir, 'model_best.pt')
                    if args.local_rank in [-1, 0]:
                        torch.save(model.state_dict(), path)
                    if torch.distributed.is_available() and torch.distributed.is_initialized():
                        torch.distributed.barrier()
                    model.load_state_dict(torch.load(path))
            """,
            messages=(
                "'model_best.pt' is written by rank 0 only and read here by every rank: wait at "
                "a barrier first (FileNotFoundError or a half-written file otherwise)",
            ),
        ),
        Example(
            before="""
                import torch
                def main(args, model, model_class):
                    if args.local_rank == -1 or torch.distributed.get_rank() == 0:
                        model.save_pretrained(args.output_dir)
                    if args.do_eval or args.do_eval_dev and args.local_rank in [-1, 0]:
                        for checkpoint in [args.output_dir]:
                            model = model_class.from_pretrained(checkpoint)
            """,
            after="""
                import torch
                def main(args, model, model_class):
                    if args.local_rank == -1 or torch.distributed.get_rank() == 0:
                        model.save_pretrained(args.output_dir)
                    if torch.distributed.is_available() and torch.distributed.is_initialized():
                        torch.distributed.barrier()
                    if args.do_eval or args.do_eval_dev and args.local_rank in [-1, 0]:
                        for checkpoint in [args.output_dir]:
                            model = model_class.from_pretrained(checkpoint)
            """,
            messages=(
                "the directory args.output_dir is written by rank 0 only and read here by every "
                "rank: wait at a barrier first (FileNotFoundError or a half-written file "
                "otherwise)",
            ),
        ),
        Example(
            before="""
                import torch
                def main(args, model):
                    if args.local_rank in [-1, 0]:
                        torch.save(model.state_dict(), 'model_best.pt')
                    if args.local_rank in [-1, 0]:
                        model.load_state_dict(torch.load('model_best.pt'))
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        m = model(tree)
        uniformity = Uniformity(m)
        seen: set[int] = set()
        placed: list[cst.CSTNode] = []
        for read, write, word in shared_reads(m):
            statement = tree.statement(read)
            line = statement
            if isinstance(statement, cst.BaseSmallStatement):
                line = tree.parent(statement)
            if id(line) in seen:
                continue
            seen.add(id(line))
            holder = tree.parent(line) if line is not None else None
            if not (
                isinstance(line, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
                and isinstance(holder, (cst.IndentedBlock, cst.Module))
            ):
                ctx.report(
                    read,
                    f"{word} is written by rank 0 only and read here by every rank: put a "
                    "barrier before this read by hand",
                )
                continue
            place, why = _place(m, uniformity, line, write)
            if place is None:
                ctx.report(
                    read,
                    f"{word} is written by rank 0 only and read here by every rank, but no "
                    f"place before the read is reached equally by every rank ({why}): put a "
                    "barrier every rank reaches by hand",
                )
                continue
            if any(_covers(tree, earlier, place) for earlier in placed):
                continue  # an earlier read's barrier already orders this one
            placed.append(place)
            ctx.fix(
                read,
                f"{word} is written by rank 0 only and read here by every rank: wait at a "
                "barrier first (FileNotFoundError or a half-written file otherwise)",
                {place: Around(before=(_barrier(),))},
                imports=("torch",),
            )


def _place(
    m: RankModel, uniformity: Uniformity, line: cst.CSTNode, write: cst.CSTNode
) -> tuple[cst.CSTNode | None, str]:
    """The innermost statement, from the read's own line out to its function's body, that no
    rank can skip or repeat alone (every test around it is rank-uniform, no loop around it may
    run a different number of times): a barrier before it is reached by every rank equally.
    Never a statement holding the write (the barrier must follow it). (None, why) if none."""
    tree = m.tree
    scope = m.scope(line)
    why = ""
    candidate: cst.CSTNode | None = line
    while candidate is not None and candidate is not scope:
        holder = tree.parent(candidate)
        if isinstance(candidate, (cst.SimpleStatementLine, cst.BaseCompoundStatement)) and (
            isinstance(holder, (cst.IndentedBlock, cst.Module))
        ):
            if tree.contains(candidate, write):
                break
            why = _uneven(m, uniformity, candidate)
            if not why:
                return candidate, ""
        candidate = holder
    return None, why or "the write comes first in the same statement"


def _covers(tree: Tree, barrier: cst.CSTNode, place: cst.CSTNode) -> bool:
    """Whether a barrier put before ``barrier`` also runs before ``place``: the same statement,
    or an earlier one of a block holding ``place``."""
    block = tree.parent(barrier)
    return place is barrier or (
        block is not None and tree.contains(block, place) and tree.after(place, barrier)
    )


def _uneven(m: RankModel, uniformity: Uniformity, statement: cst.CSTNode) -> str:
    """Why some rank may reach ``statement`` a different number of times ('' when none may)."""
    for test, _wanted in m.conditions(statement):
        why = uniformity.why_not(test)
        if why:
            return why
    return uniformity.placed(statement, "the read") or ""
