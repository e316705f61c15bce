"""DDP006 eval-results-always-bound: never read evaluation results that were not computed.

The template evaluates under a gate and reads the results after it::

    if args.local_rank in [-1, 0] and args.evaluate_during_training:
        results = evaluate(args, model, tokenizer)
    if results['eval_f1'] > best_f1:
        ...save checkpoint-best-f1...

Whenever the gate is false (no ``--evaluate_during_training``, or any rank but 0) the read raises
UnboundLocalError, after a full epoch of training and before any checkpoint exists. The rule moves
the statements that follow the gate in the same block, up to the last one that reads the results,
into the gate's body, so they run exactly when the results exist. Comments and blank lines move
with them. It applies only when the gate's body is the sole place the name is bound in its scope;
a read elsewhere (an outer block, an earlier loop iteration), or statements to move that would
change control flow (``return``, a ``break`` of the enclosing loop), is reported without a fix.

The name may be bound under several gates, each rank-0 only (an evaluation before training and
one in the epoch loop): each gate then takes the reads that follow it in its block, up to the
next statement that binds the name again, so rank 1 never reads it and rank 0 reads the results
of the evaluation just run. (A single process that skipped the latest evaluation used to compare
the previous results once more; it now skips that comparison too.) A name also bound outside any
gate is always bound and left alone.

A gate that tests no rank (``if args.evaluate_during_training:`` alone) fails alike on every
process, which is a configuration error rather than a rank problem: moving the reads under it
would turn the loud UnboundLocalError into a run that silently never saves its best checkpoint,
so it is reported without a fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Replacement, Tree, children
from patches._names import SCOPES, frame_uses, names_bound_in, walk
from patches._ranks import OTHER, model
from patches._syntax import callee_name, is_eval_call, one_line


def _evaluated_names(if_node: cst.If) -> list[str]:
    """Names bound directly in the gate's body from an evaluate-like call."""
    names: list[str] = []
    if type(if_node.body) is not cst.IndentedBlock:
        return names
    for statement in if_node.body.body:
        if type(statement) is not cst.SimpleStatementLine:
            continue
        for small in statement.body:
            if (
                type(small) is cst.Assign
                and type(small.value) is cst.Call
                and is_eval_call(small.value)
            ):
                for target in small.targets:
                    node = target.target
                    elements = node.elements if isinstance(node, (cst.Tuple, cst.List)) else ()
                    for candidate in [node, *(e.value for e in elements)]:
                        if type(candidate) is cst.Name:
                            names.append(candidate.value)
    return names


def _leaves_block(statements: Sequence[cst.CSTNode]) -> bool:
    """Whether moving ``statements`` would change where control goes: a ``return``, or a
    ``break``/``continue`` of the loop around them."""
    stack: list[tuple[cst.CSTNode, int]] = [(statement, 0) for statement in statements]
    while stack:
        node, loops = stack.pop()
        if isinstance(node, (cst.Return, cst.Yield)):
            return True
        if isinstance(node, (cst.Break, cst.Continue)) and loops == 0:
            return True
        if isinstance(node, SCOPES):
            continue
        inner = loops + isinstance(node, (cst.For, cst.While))
        stack.extend((child, inner) for child in children(node))
    return False


def _binding_gate(tree: Tree, binding: cst.CSTNode, scope: cst.CSTNode) -> cst.If | None:
    """The innermost ``if`` whose body holds ``binding``, within ``scope``."""
    child = binding
    for ancestor in tree.ancestors(binding):
        if ancestor is scope:
            return None
        if type(ancestor) is cst.If and child is ancestor.body:
            return ancestor
        child = ancestor
    return None


def _window(tree: Tree, gate: cst.If, bindings: Sequence[cst.CSTNode]) -> list[cst.BaseStatement]:
    """The statements after ``gate`` in its block, up to the next one that binds the name
    again: what can only see the value this gate bound (or none)."""
    block = tree.parent(gate)
    if not isinstance(block, (cst.IndentedBlock, cst.Module)):
        return []  # an elif: nothing follows it in a block of its own
    siblings = list(block.body)
    if not any(s is gate for s in siblings):
        return []
    window = []
    for statement in siblings[next(i for i, s in enumerate(siblings) if s is gate) + 1 :]:
        if any(tree.contains(statement, b) for b in bindings):
            break
        window.append(statement)
    return window


def _plan(tree: Tree, gate: cst.If, name: str) -> tuple[list[cst.BaseStatement], str] | None:
    """The later siblings to move into ``gate``, or ([], why not); None: nothing to do.

    The name may be bound under several gates (an evaluation before training and one in the
    epoch loop): each gate takes the reads that follow it, up to the next binding."""
    scope = tree.scope(gate)
    bindings, reads = frame_uses(tree, scope, name)
    holders = [_binding_gate(tree, b, scope) for b in bindings]
    if any(h is None for h in holders):
        return None  # bound unconditionally (or unknowable): always bound where it is read
    gates = list({id(h): h for h in holders if h is not None}.values())
    ranks = model(tree)
    if len(gates) > 1:
        if any(ranks.runs(g.body, OTHER) is not False for g in gates):
            return None  # several gates, some on a flag alone: which binding holds is data
    elif ranks.runs(gate.body, OTHER) is not False:
        if not any(not tree.contains(gate.body, r) for r in reads):
            return None
        return [], (
            "the gate tests no rank, so every process skips the evaluation alike when it is "
            "false; moving the reads under it would silently skip them, a checkpoint save "
            "among them, where today they fail"
        )
    outside = [r for r in reads if not any(tree.contains(g.body, r) for g in gates)]
    if not outside:
        return None
    windows = {id(g): _window(tree, g, bindings) for g in gates}
    mine = windows[id(gate)]
    holders_mine = [i for i, s in enumerate(mine) if any(tree.contains(s, r) for r in outside)]
    covered = sum(
        1 for r in outside if any(tree.contains(s, r) for w in windows.values() for s in w)
    )
    if covered != len(outside):
        if gate is min(gates, key=tree.order):  # one report, from the first gate
            return [], "it is also read outside the statements that follow the gate"
        return None
    if not holders_mine:
        return None
    moved = mine[: holders_mine[-1] + 1]
    if _leaves_block(moved):
        return [], "moving the reads would change control flow (return/break/continue)"
    return _readers_only(moved, name) or moved, ""


def _read_names(statement: cst.CSTNode) -> set[str]:
    """Every name ``statement`` spells (attribute names too: more is safer here)."""
    return {n.value for n in walk(statement, into_scopes=False) if type(n) is cst.Name}


#: Calls a statement left behind may make: logging, whose order next to the moved reads
#: nobody depends on (``tb_writer.add_scalar``, ``logger.info``, ``print``), and the getters
#: and conversions its values are built with (``scheduler.get_lr()[0]``, ``loss.item()``).
_QUIET_CALLS = frozenset(
    {"info", "warning", "debug", "error", "print", "add_scalar", "add_scalars", "log", "flush"}
    | {"get_lr", "get_last_lr", "item", "format", "len", "str", "float", "int", "round", "join"}
)


def _quiet(statement: cst.CSTNode) -> bool:
    """A simple line whose only calls log (``logging_loss = tr_loss`` has none)."""
    if type(statement) is not cst.SimpleStatementLine:
        return False
    return all(
        callee_name(c) in _QUIET_CALLS
        for c in walk(statement, into_scopes=False)
        if type(c) is cst.Call
    )


def _readers_only(run: list[cst.BaseStatement], name: str) -> list[cst.BaseStatement]:
    """The statements of ``run`` that read ``name`` or what those bind, when they can move
    ahead of the others unchanged: every statement left behind only logs or assigns (no file
    written, nothing called: a save the reader copies afterwards must stay first), no reader
    reads what a statement left behind before it binds, and no statement left behind reads
    what a later reader binds (it would see the new value). ``logging_loss = tr_loss`` and the
    loss and learning-rate lines logged next to the results then stay where they are and still
    run when the evaluation does not. Empty when they cannot."""
    held = {name}
    reading: list[bool] = []
    for statement in run:
        reads = _read_names(statement)
        reading.append(bool(reads & held))
        if reading[-1]:
            held |= names_bound_in(statement)
    if all(reading):
        return []
    for i, statement in enumerate(run):
        if reading[i]:
            continue
        if not _quiet(statement):
            return []  # a write or a call: its order next to the reads may matter
        bound = names_bound_in(statement)
        later = set().union(
            *(names_bound_in(r) for r, rd in zip(run[i + 1 :], reading[i + 1 :]) if rd)
        )
        if _read_names(statement) & later:
            return []  # it would see what a reader moved ahead of it binds
        if any(_read_names(r) & bound for r, rd in zip(run[i + 1 :], reading[i + 1 :]) if rd):
            return []  # a reader after it reads what it binds
    return [r for r, rd in zip(run, reading) if rd]


def _moved_into(gate: cst.If, moved: list[cst.BaseStatement]) -> cst.If:
    """``gate`` with ``moved`` appended to its body; the body's trailing comments stay first."""
    assert type(gate.body) is cst.IndentedBlock
    lead = moved[0]
    assert isinstance(lead, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
    first = lead.with_changes(leading_lines=[*gate.body.footer, *lead.leading_lines])
    body = gate.body.with_changes(body=[*gate.body.body, first, *moved[1:]], footer=[])
    return gate.with_changes(body=body)


class EvalResultsAlwaysBound(Rule):
    code = "DDP006"
    name = "eval-results-always-bound"
    summary = "Reads of gated evaluation results move inside the gate (no UnboundLocalError)."
    rationale = __doc__
    triggers = ("local_rank", "evaluat", "eval(", "test(")
    examples = (
        Example(
            before="""
                def train(args, model):
                    for step in range(10):
                        if args.local_rank in [-1, 0] and args.evaluate_during_training:
                            results = evaluate(args, model)
                            # Save model checkpoint

                        if results['eval_f1'] > best_f1:
                            best_f1 = results['eval_f1']
                            save(model)
                        log(step)
            """,
            after="""
                def train(args, model):
                    for step in range(10):
                        if args.local_rank in [-1, 0] and args.evaluate_during_training:
                            results = evaluate(args, model)
                            # Save model checkpoint

                            if results['eval_f1'] > best_f1:
                                best_f1 = results['eval_f1']
                                save(model)
                        log(step)
            """,
            messages=(
                "'results' is only bound when this gate passes: the 1 statement(s) after it that "
                "read it now run inside it",
            ),
        ),
        Example(
            before="""
                def train(args, model):
                    for step in range(10):
                        if args.evaluate_during_training:
                            results = evaluate(args, model)
                        if results['eval_f1'] > best_f1:
                            save(model)
            """,
            reports=1,
            messages=(
                "'results' is read where the evaluation may not have run (the gate tests no "
                "rank, so every process skips the evaluation alike when it is false; moving the "
                "reads under it would silently skip them, a checkpoint save among them, where "
                "today they fail); guard that read by hand",
            ),
        ),
        Example(
            before="""
                def main(args, model):
                    results = {}
                    if args.do_eval:
                        results = evaluate(args, model)
                    return results
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        for gate in tree.nodes(cst.If):
            if type(gate.body) is not cst.IndentedBlock:
                continue
            for name in _evaluated_names(gate):
                plan = _plan(tree, gate, name)
                if plan is None:
                    continue
                moved, why = plan
                if not moved:
                    ctx.report(
                        gate,
                        f"{name!r} is read where the evaluation may not have run ({why}); "
                        "guard that read by hand",
                    )
                    break
                replacements: dict[cst.CSTNode, Replacement] = {gate: _moved_into(gate, moved)}
                replacements.update({statement: [] for statement in moved})
                readers = sum(1 for m in moved if name in _read_names(m))
                what = (
                    f"the {len(moved)} statement(s) after it that read it"
                    if readers == len(moved)
                    else f"the {len(moved)} statement(s) after it up to the last that reads it "
                    f"({readers} read it)"
                )
                where: cst.CSTNode = gate
                which = "this gate"
                if moved != _window(tree, gate, [])[: len(moved)]:
                    # statements left in between: name the statement that holds them all
                    holder = tree.parent(tree.parent(gate))
                    where = holder if holder is not None else gate
                    which = f"`if {one_line(tree, gate.test, 60)}:`"
                ctx.fix(
                    where,
                    f"{name!r} is only bound when {which} passes: {what} now run inside it",
                    replacements,
                )
                break
