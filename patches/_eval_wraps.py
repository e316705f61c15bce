"""DDP wraps that an evaluation function makes of its own model, and that it can do without.

CodeXGLUE's token-level completion script builds, in ``eval_acc()``, ``if args.local_rank != -1:
model = DistributedDataParallel(model, ...)`` around the model it is handed, then only runs it
forward under ``torch.no_grad()``. A wrap there synchronises nothing an evaluation needs (it has
no gradients), but it is a collective: building it broadcasts rank 0's parameters, and each
forward broadcasts buffers. So it decides who may run the function: every rank, or nobody.

:func:`evaluation_wraps` finds such wraps, when leaving them out cannot change what the function
computes or hands on: the wrap rebinds the name it wraps (``m = DDP(m, ...)``), alone or alone in
an ``if`` without calls in its test, at the top level of a module function that trains nothing
(no ``backward``/``step``/``zero_grad``, itself or in the module functions it calls), and after
it the name is only called (``m(x)``) or asked for an attribute other than ``module``
(``m.eval()``): never returned, stored, passed on or unwrapped. DDP011 removes such a wrap when
it gates the ``do_eval`` block that alone calls the function (it does not count it as a
collective that keeps the block on every rank); DDP004 removes one from a function that already
runs on rank 0 alone.

:func:`evaluations` says which module functions are evaluations of the model they are handed,
by what they do rather than by name (GAN-CodeBERT's ``valid_acc(args, model, ...)``): the same
"trains nothing" test, and a parameter the function calls (``model(x, x_mask)``: a forward).
A caller that runs one on rank 0 alone must hand it the unwrapped model (DDP004); when every
other use of that parameter only calls it or asks it for attributes other than ``module`` (or
hands it to ``DataParallel``, which wraps either alike), the unwrapped model computes the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from patcher.tree import Tree
from patches._names import is_read, parameters, walk
from patches._ranks import TRAINING_CALLS
from patches._syntax import callee_name, calls_in, dotted_name, module_functions

WRAPPER = "DistributedDataParallel"
#: Wrapping in these keeps what a forward computes whether it is handed a model or its DDP wrapper.
_REWRAPS = frozenset({"DataParallel"})


@dataclass(frozen=True)
class Evaluation:
    """A module function that evaluates the model it is handed."""

    function: cst.FunctionDef
    forwards: frozenset[str]  # the parameters it calls (a forward)
    unwrappable: frozenset[str]  # those of them it only uses as a model: safe to hand unwrapped


@dataclass(frozen=True)
class EvalWrap:
    """A wrap an evaluation function can do without."""

    call: cst.Call  # the wrapper's construction
    statement: cst.BaseStatement  # what goes: the wrap's line, or the ``if`` holding it alone
    function: cst.FunctionDef  # the module function making it
    name: str  # the name it rebinds


def wrapper_aliases(tree: Tree) -> set[str]:
    """Local names bound to DistributedDataParallel (``from ... import X as DDP``)."""
    names = {WRAPPER}
    for node in tree.nodes(cst.ImportFrom):
        if not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                if dotted_name(alias.name) == WRAPPER and alias.asname is not None:
                    asname = alias.asname.name
                    if type(asname) is cst.Name:
                        names.add(asname.value)
    return names


def evaluation_wraps(tree: Tree) -> dict[int, EvalWrap]:
    """The wraps evaluation functions can do without, by ``id`` of the wrapper call."""
    return tree.memo(evaluation_wraps, lambda: _find(tree))


def evaluations(tree: Tree) -> dict[str, Evaluation]:
    """Module functions that train nothing and call one of their parameters, by name."""
    return tree.memo(evaluations, lambda: _evaluations(tree))


def _evaluations(tree: Tree) -> dict[str, Evaluation]:
    functions = module_functions(tree.module)
    found: dict[str, Evaluation] = {}
    for name, function in functions.items():
        params = {p.name.value for p in parameters(function)}
        forwards = frozenset(
            call.func.value
            for call in calls_in(function)
            if type(call.func) is cst.Name and call.func.value in params
        )
        if not forwards or _trains(function, functions):
            continue
        unwrappable = frozenset(p for p in forwards if _only_used_as_model(tree, function, None, p))
        found[name] = Evaluation(function, forwards, unwrappable)
    return found


def _find(tree: Tree) -> dict[int, EvalWrap]:
    functions = module_functions(tree.module)
    aliases = wrapper_aliases(tree)
    found: dict[int, EvalWrap] = {}
    for function in functions.values():
        if _trains(function, functions):
            continue
        body = function.body.body if type(function.body) is cst.IndentedBlock else ()
        for statement in body:
            wrap = _wrap_in(statement, aliases)
            if wrap is None:
                continue
            call, name = wrap
            if _only_used_as_model(tree, function, statement, name):
                found[id(call)] = EvalWrap(call, statement, function, name)
    return found


def _wrap_in(statement: cst.BaseStatement, aliases: set[str]) -> tuple[cst.Call, str] | None:
    """``m = DDP(m, ...)`` as the statement, or as the only statement of an ``if`` with no
    ``else`` and no call in its test (``if args.local_rank != -1:``)."""
    if type(statement) is cst.If:
        if statement.orelse is not None or any(True for _ in calls_in(statement.test)):
            return None
        inner = statement.body
        if type(inner) is not cst.IndentedBlock or len(inner.body) != 1:
            return None
        statement = inner.body[0]
    if type(statement) is not cst.SimpleStatementLine or len(statement.body) != 1:
        return None
    assign = statement.body[0]
    if type(assign) is not cst.Assign or len(assign.targets) != 1:
        return None
    target, value = assign.targets[0].target, assign.value
    if not (type(target) is cst.Name and type(value) is cst.Call):
        return None
    if callee_name(value) not in aliases or not value.args or value.args[0].keyword is not None:
        return None
    first = value.args[0]
    if first.star or not (type(first.value) is cst.Name and first.value.value == target.value):
        return None
    return value, target.value


def _trains(function: cst.FunctionDef, functions: dict[str, cst.FunctionDef]) -> bool:
    """Whether ``function`` or a module function it calls (transitively) updates a model."""
    return trains(function, functions)


def trains(node: cst.CSTNode, functions: dict[str, cst.FunctionDef]) -> bool:
    """Whether code in ``node`` (outside the functions defined there), or a module function it
    calls (transitively), updates a model."""
    pending: list[cst.CSTNode] = [node]
    seen = {node.name.value} if type(node) is cst.FunctionDef else set()
    while pending:
        for call in calls_in(pending.pop()):
            name = callee_name(call)
            if name in TRAINING_CALLS:
                return True
            if type(call.func) is cst.Name and name in functions and name not in seen:
                seen.add(name)
                pending.append(functions[name])
    return False


def _only_used_as_model(
    tree: Tree, function: cst.FunctionDef, wrap: cst.BaseStatement | None, name: str
) -> bool:
    """Whether every read of ``name`` after ``wrap`` (everywhere, without one) in
    ``function``, and every read in a function nested in it (a closure defined before the wrap
    may run after it), calls it, takes an attribute of it other than ``module``, or hands it
    to ``DataParallel``; and nothing declares it ``global``/``nonlocal``."""
    for node in walk(function.body, into_scopes=True):
        if isinstance(node, (cst.Global, cst.Nonlocal)) and any(
            n.name.value == name for n in node.names
        ):
            return False
        if not (type(node) is cst.Name and node.value == name):
            continue
        if wrap is not None and tree.contains(wrap, node):
            continue
        before = (
            wrap is not None
            and tree.order(node) < tree.order(wrap)
            and tree.scope(node) is function
        )
        if before or not is_read(tree, node):
            continue
        if not _as_model(tree, node):
            return False
    return True


def _as_model(tree: Tree, node: cst.Name) -> bool:
    """``m(x)``, ``m.eval()`` (not ``m.module``), or ``DataParallel(m)``."""
    parent = tree.parent(node)
    if type(parent) is cst.Call and parent.func is node:
        return True
    if type(parent) is cst.Attribute and parent.value is node:
        return parent.attr.value != "module"
    if type(parent) is cst.Arg and parent.keyword is None and not parent.star:
        call = tree.parent(parent)
        return type(call) is cst.Call and call.args[0] is parent and callee_name(call) in _REWRAPS
    return False
