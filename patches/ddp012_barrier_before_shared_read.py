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
from patcher.tree import Around
from patches._ranks import model, shared_reads


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
        seen: set[int] = set()
        for read, _write, word in shared_reads(model(tree)):
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
                    f"{word!r} is written by rank 0 only and read here by every rank: put a "
                    "barrier before this read by hand",
                )
                continue
            ctx.fix(
                read,
                f"{word!r} is written by rank 0 only and read here by every rank: wait at a "
                "barrier first (FileNotFoundError or a half-written file otherwise)",
                {line: Around(before=(_barrier(),))},
                imports=("torch",),
            )
