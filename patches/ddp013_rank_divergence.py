"""DDP013 rank-divergence: what still goes wrong once every rank really has its rank (report).

Reading ``LOCAL_RANK`` (DDP001) turns on every rank test of a script: code that never ran apart
under a launcher (every process was rank -1) now runs on some ranks and not others. The other
rules fix the shapes they know; this one judges the patched result with the rank model
(``patches/_ranks.py``) and reports, without a fix, what is left:

- a name that a rank reads but never binds: ``tb_writer = SummaryWriter()`` under ``if
  args.local_rank in [-1, 0]:`` and ``tb_writer.add_scalar(...)`` in code every rank runs raises
  ``UnboundLocalError`` on rank 1;
- a ``return`` or ``break`` that only rank 0 takes out of code that synchronises (an early stop
  decided from rank 0's evaluation): the other ranks wait for it in their next collective.

It runs once, on the final output, so it never reports what another rule fixed. Collectives
reached by rank 0 alone are DDP003's to report (barrier pairs are such halves on purpose).
"""

from __future__ import annotations

from patcher.rule import Example, Rule, RuleContext
from patches._ranks import violations


class RankDivergence(Rule):
    code = "DDP013"
    name = "rank-divergence"
    summary = "Report: a name a rank reads but never binds, or an exit only rank 0 takes."
    rationale = __doc__
    judges_output = True
    triggers = ("local_rank", "LOCAL_RANK")
    examples = (
        Example(
            before="""
                def main(args, model, loader):
                    if args.local_rank in [-1, 0]:
                        tb_writer = SummaryWriter()
                    for step, batch in enumerate(loader):
                        loss = model(batch)
                        tb_writer.add_scalar('loss', loss.item(), step)
            """,
            reports=1,
            messages=(
                "'tb_writer' is read on the other ranks, which never binds it (UnboundLocalError)",
            ),
        ),
        Example(
            before="""
                def main(args, model, loader):
                    tb_writer = None
                    if args.local_rank in [-1, 0]:
                        tb_writer = SummaryWriter()
                    for step, batch in enumerate(loader):
                        if tb_writer is not None:
                            tb_writer.add_scalar('loss', model(batch).item(), step)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        reported: set[tuple[str, ...]] = set()
        for key, violation in violations(ctx.tree, ("binding", "exit")).items():
            if violation.node is None or key[0] not in ("binding", "exit"):
                continue
            if key[0] == "binding" and "UnboundLocalError" not in violation.message:
                continue  # out-of-step state is the fixing rules' post-condition
            first = key[:3]  # one report per name (or exit) and function
            if first in reported:
                continue
            reported.add(first)
            ctx.report(violation.node, violation.message)
