"""Evaluations a training function hands to a helper that writes files: LongCoder's
``results = evaluate(args, model, tokenizer, "validation", output_file_prefix="dev")`` after each
epoch, whose ``evaluate`` writes dev.output and dev.gold, followed by the best-checkpoint block
that reads ``results``. DDP016 runs such a run of statements on global rank 0 alone, with the
unwrapped model, when that is certainly safe (this module says when), and reports it otherwise:
left on every rank, every process would write the helper's files."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from patcher.tree import Tree
from patches._names import is_read, names_bound_in, walk
from patches._ranks import model
from patches._syntax import callee_name, calls_in, module_functions
from patches._writes import is_write

#: Calls that update the model or the optimizer: never on rank 0 alone.
_TRAINING_CALLS = frozenset({"backward", "step", "zero_grad"})
#: Ways out of the run; one in a branch no process takes leaves nothing.
_EXITS = (cst.Break, cst.Continue, cst.Return, cst.Raise)
#: Statements that act wherever they stand, a dead branch too: a ``yield`` anywhere makes the
#: function a generator, ``global``/``nonlocal`` covers the whole function.
_SCOPE_CHANGES = (cst.Yield, cst.Global, cst.Nonlocal)


@dataclass(frozen=True)
class HelperEval:
    call: cst.Call  # the call of the helper that writes files
    run: tuple[cst.BaseStatement, ...]  # its statement and those reading what it decides


def writing_helpers(tree: Tree, training: set[str]) -> set[str]:
    """Module functions that write files themselves and train nothing."""
    return {
        name
        for name, function in module_functions(tree.module).items()
        if name not in training and any(is_write(c) for c in calls_in(function))
    }


def helper_evaluations(
    tree: Tree, function: cst.FunctionDef, helpers: set[str], training: set[str], models: set[str]
) -> tuple[list[HelperEval], cst.Call | None]:
    """The helper evaluations of ``function`` that can run on rank 0 alone, and the first call
    of a writing helper that cannot (None when there is none)."""
    found: list[HelperEval] = []
    functions = module_functions(tree.module)
    for call in calls_in(function):
        if callee_name(call) not in helpers or type(call.func) is not cst.Name:
            continue
        if any(tree.contains(s, call) for e in found for s in e.run):
            continue  # inside an evaluation gated whole already
        run = _run(tree, call)
        helper = functions[call.func.value]
        if (
            run is None
            or not _safe(tree, function, call, run, training, models)
            or not _forwards_unwrapped(helper, call, models)
        ):
            return found, call
        found.append(HelperEval(call, run))
    return found, None


def _run(tree: Tree, call: cst.Call) -> tuple[cst.BaseStatement, ...] | None:
    """The statement making ``call`` (a line of its own in a block) and the statements after it
    in that block that read a name it, or one of them, binds."""
    statement = next((a for a in tree.ancestors(call) if type(a) is cst.SimpleStatementLine), None)
    block = tree.parent(statement) if statement is not None else None
    if statement is None or type(block) is not cst.IndentedBlock:
        return None
    statements = list(block.body)
    index = next(i for i, s in enumerate(statements) if s is statement)
    run: list[cst.BaseStatement] = [statement]
    bound = names_bound_in(statement)
    for later in statements[index + 1 :]:
        if not any(_reads(tree, later, name) for name in bound):
            break
        run.append(later)
        bound |= names_bound_in(later)
    return tuple(run)


def _reads(tree: Tree, node: cst.CSTNode, name: str) -> bool:
    return any(
        type(n) is cst.Name and n.value == name and is_read(tree, n)
        for n in walk(node, into_scopes=False)
    )


def _safe(
    tree: Tree,
    function: cst.FunctionDef,
    call: cst.Call,
    run: tuple[cst.BaseStatement, ...],
    training: set[str],
    models: set[str],
) -> bool:
    """Rank 0 may run ``run`` alone: it leaves no loop or function early (the ranks must stay
    together), trains nothing, binds nothing read outside it (training state stays on every
    rank), and reaches the model only through the helper's arguments (then unwrapped: no DDP
    forward, a collective, on one rank) or to pick its inner module."""
    nodes = [n for s in run for n in walk(s, into_scopes=False)]
    ranks = model(tree)
    if any(isinstance(n, _SCOPE_CHANGES) for n in nodes):
        return False  # these hold even in a dead branch: a generator, a name's scope
    if any(isinstance(n, _EXITS) and not ranks.dead(n) for n in nodes):
        return False  # an exit no process can take (``if patience == -1: break``) is none
    for other in (n for n in nodes if type(n) is cst.Call):
        name = callee_name(other)
        if name in _TRAINING_CALLS or name in training:
            return False
    bound = set().union(*(names_bound_in(s) for s in run))
    inside = {id(n) for n in nodes}
    for node in walk(function.body, into_scopes=True):
        if type(node) is cst.Name and node.value in bound and id(node) not in inside:
            if is_read(tree, node):
                return False
    helper_args = {id(arg.value) for arg in call.args}
    for node in nodes:
        if not (type(node) is cst.Name and node.value in models and is_read(tree, node)):
            continue
        if id(node) in helper_args or _picks_module(tree, node):
            continue
        return False
    return True


def _picks_module(tree: Tree, name: cst.Name) -> bool:
    """``model.module``, ``hasattr(model, "module")`` or the ``else model`` of that choice."""
    parent = tree.parent(name)
    if type(parent) is cst.Attribute and parent.attr.value == "module":
        return True
    if type(parent) is cst.Arg:
        grand = tree.parent(parent)
        return type(grand) is cst.Call and callee_name(grand) == "hasattr"
    return (
        type(parent) is cst.IfExp
        and parent.orelse is name
        and type(parent.body) is cst.Attribute
        and parent.body.attr.value == "module"
    )


def _forwards_unwrapped(helper: cst.FunctionDef, call: cst.Call, models: set[str]) -> bool:
    """Every parameter the helper calls (``model(source_ids)``: a forward) receives one of the
    model's names, which the rewrite unwraps: a forward through the DDP wrapper on rank 0 alone
    would wait for the other ranks in its buffer broadcast."""
    params = [p.name.value for p in helper.params.params]
    given: dict[str, cst.BaseExpression] = {}
    for position, arg in enumerate(call.args):
        if arg.star:
            return False
        name = arg.keyword.value if arg.keyword is not None else None
        if name is None and position < len(params):
            name = params[position]
        if name is not None:
            given[name] = arg.value
    for inner in calls_in(helper):
        if type(inner.func) is cst.Name and inner.func.value in params:
            value = given.get(inner.func.value)
            if not (type(value) is cst.Name and value.value in models):
                return False
    return True
