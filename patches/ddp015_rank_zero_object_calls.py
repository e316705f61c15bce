"""DDP015 rank-zero-object-calls: an object only rank 0 creates is only used on rank 0.

Scripts create their loggers on the main process only and then use them in code every rank
runs (CodeT5's ``run_gen.py``/``run_clone.py``)::

    if args.local_rank in [-1, 0] and args.data_num == -1:
        tb_writer = SummaryWriter(summary_fn)
    ...
    if args.data_num == -1:
        tb_writer.add_scalar('dev_ppl', eval_ppl, cur_epoch)   # UnboundLocalError on rank 1

As shipped, under a launcher, every process is rank -1 and creates its own writer; once the
rank is read (DDP001), rank 1 raises ``UnboundLocalError`` at its first evaluation. Where the
rank model finds such a read, and the read is a statement that only calls a method of the object
and throws the result away (``tb_writer.add_scalar(...)``, ``tb_writer.flush()``), the statement
is put behind the test that guarded the object's creation::

    if args.data_num == -1:
        if args.local_rank in [-1, 0] and args.data_num == -1:
            tb_writer.add_scalar('dev_ppl', eval_ppl, cur_epoch)

so it runs exactly where the object exists; a single process runs it as before. A read whose
value is used (``loss = tracker.update(...)``, an argument, a test), or an object created under
more than one rank test, is left to DDP013, which reports it.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._names import BINDERS, bound_names
from patches._ranks import OTHER, RankModel, model, truth, violations


def _method_call_statement(tree: Tree, name: cst.Name) -> cst.SimpleStatementLine | None:
    """The line ``name.method(...)`` when that is all it does (its value is discarded)."""
    attribute = tree.parent(name)
    call = tree.parent(attribute) if type(attribute) is cst.Attribute else None
    expr = tree.parent(call) if type(call) is cst.Call else None
    line = tree.parent(expr) if type(expr) is cst.Expr else None
    if not (
        type(attribute) is cst.Attribute
        and attribute.value is name
        and type(call) is cst.Call
        and call.func is attribute
        and type(line) is cst.SimpleStatementLine
        and len(line.body) == 1
    ):
        return None
    return line


def _creation_gate(m: RankModel, scope: cst.CSTNode, name: str) -> cst.BaseExpression | None:
    """The one ``if`` test that keeps the other ranks from every binding of ``name``."""
    gates = set()
    tests: dict[int, cst.BaseExpression] = {}
    for node in m.tree.nodes(*BINDERS):
        if type(node) is cst.Param or m.scope(node) is not scope:
            continue
        if name not in {n.value for n in bound_names(node)}:
            continue
        excluding = [
            test for test, wanted in m.conditions(node) if wanted and truth(test, OTHER) is False
        ]
        if len(excluding) != 1:
            return None
        gates.add(id(excluding[0]))
        tests[id(excluding[0])] = excluding[0]
    return tests[gates.pop()] if len(gates) == 1 else None


class RankZeroObjectCalls(Rule):
    code = "DDP015"
    name = "rank-zero-object-calls"
    summary = "Calls on an object only rank 0 creates run behind the test that created it."
    rationale = __doc__
    settles = False  # the copied gate is a rank gate DDP008 makes global, like the original
    triggers = ("local_rank", "LOCAL_RANK", "get_rank", "RANK")
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
            after="""
                def main(args, model, loader):
                    if args.local_rank in [-1, 0]:
                        tb_writer = SummaryWriter()
                    for step, batch in enumerate(loader):
                        loss = model(batch)
                        if args.local_rank in [-1, 0]:
                            tb_writer.add_scalar('loss', loss.item(), step)
            """,
            messages=(
                "'tb_writer' exists only where `args.local_rank in [-1, 0]` held: call it there "
                "alone (UnboundLocalError on the other ranks)",
            ),
        ),
        Example(  # the value is used: DDP013 reports it
            before="""
                def main(args, model, loader):
                    if args.local_rank in [-1, 0]:
                        tracker = Tracker()
                    for step, batch in enumerate(loader):
                        loss = tracker.smooth(model(batch))
                        loss.backward()
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        m = model(tree)
        done: set[int] = set()
        for key, violation in violations(tree, ("binding",)).items():
            read = violation.node
            if key[0] != "binding" or "UnboundLocalError" not in violation.message:
                continue
            if type(read) is not cst.Name:
                continue
            line = _method_call_statement(tree, read)
            if line is None or id(line) in done:
                continue
            gate = _creation_gate(m, m.scope(read), read.value)
            if gate is None:
                continue
            done.add(id(line))
            code = tree.module.code_for_node(gate)
            guarded = cst.If(
                test=gate.deep_clone(),
                body=cst.IndentedBlock([line.with_changes(leading_lines=())]),
                leading_lines=line.leading_lines,
            )
            ctx.fix(
                read,
                f"{read.value!r} exists only where `{code}` held: call it there alone "
                "(UnboundLocalError on the other ranks)",
                {line: guarded},
            )
