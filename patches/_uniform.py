"""Whether a condition has the same value on every rank of a job, judged conservatively.

A rank-0 gate that also ends training (``if args.global_rank == 0 and global_step ==
args.train_steps: ... return``) can only be split into "every rank leaves, rank 0 saves first"
when the rest of its test is *rank-uniform*: every rank, reaching it at the same point of
training, computes the same value. That holds for step and epoch counters and for the command
line, and for nothing that a rank computes from its own data. :meth:`Uniformity.why_not` accepts

- literals (numbers, strings, ``True``/``False``/``None``);
- ``<name>.<attr>`` (``args.train_steps``) of the parsed command line (``args``, ``opt``, ...,
  or a name assigned a ``parse_args()`` result) whose attribute name says nothing of a rank,
  node or device and that no statement assigns a value to which is not itself uniform;
- a name of the function's own frame that only counts: bound from int literals, updated only
  by ``+= <int>``, or the loop variable of ``range(<uniform>)`` or the index of
  ``enumerate(...)``; and every one of its bindings runs on every rank (no rank test, and no
  test that is not itself uniform, around it; no ``while`` whose test is not uniform);
- comparisons, arithmetic, ``and``/``or``/``not`` and ``int()``/``float()``/``round()``/
  ``abs()``/``min()``/``max()``/``bool()`` of those.

Everything else is not uniform: calls (a loss, a metric, ``time.time()``, ``random``, a file's
existence), subscripts, parameters, names bound from anything else, and rank names. The reason
is returned, so the rule can say why it did not split a gate.
"""

from __future__ import annotations

import libcst as cst

from patches._names import BINDERS, bound_names, walk
from patches._ranks import OTHER, RANK0, RankModel
from patches._syntax import callee_name, int_literal

#: Words in an attribute or name that make its value a per-process one.
_PER_PROCESS = ("rank", "node", "device", "gpu", "cuda", "host", "pid", "process")
#: Names that hold the parsed command line by convention, and the calls that parse it.
_COMMAND_LINE = frozenset({"args", "opt", "opts", "hparams", "cfg", "flags", "FLAGS"})
_PARSERS = frozenset({"parse_args", "parse_known_args", "parse_args_into_dataclasses"})
#: Builtins whose value depends on their arguments only.
_PURE = frozenset({"int", "float", "round", "abs", "min", "max", "bool"})
_LITERALS = (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)


class Uniformity:
    """Judges expressions in one module version (build one per rule run: it caches)."""

    def __init__(self, m: RankModel) -> None:
        self.m = m
        self.tree = m.tree
        self._attributes: dict[str, list[cst.BaseExpression | None]] | None = None
        self._parsed: frozenset[str] | None = None
        self._pending: set[tuple[str, ...]] = set()  # judged further up the stack: assumed

    def why_not(self, node: cst.BaseExpression) -> str | None:
        """None when ``node`` is rank-uniform; otherwise what is not, in a few words."""
        if isinstance(node, _LITERALS):
            return None
        if isinstance(node, cst.Name):
            if node.value in ("True", "False", "None"):
                return None
            return self._counter(node)
        if isinstance(node, cst.Attribute):
            return self._attribute(node)
        if isinstance(node, cst.UnaryOperation):
            return self.why_not(node.expression)
        if isinstance(node, (cst.BinaryOperation, cst.BooleanOperation)):
            return self.why_not(node.left) or self.why_not(node.right)
        if isinstance(node, cst.Comparison):
            parts = [node.left, *(c.comparator for c in node.comparisons)]
            return next((why for why in map(self.why_not, parts) if why), None)
        if isinstance(node, cst.Call) and _pure(node):
            return next((why for why in (self.why_not(a.value) for a in node.args) if why), None)
        code = " ".join(self.tree.module.code_for_node(node).split())
        if isinstance(node, cst.Call):
            return f"{code} is computed by each rank"
        return f"{code} may differ between ranks"

    def uniform(self, node: cst.BaseExpression) -> bool:
        return self.why_not(node) is None

    # --- command-line attributes -------------------------------------------------------------

    def _attribute(self, node: cst.Attribute) -> str | None:
        code = " ".join(self.tree.module.code_for_node(node).split())
        if not isinstance(node.value, cst.Name):
            return f"{code} may differ between ranks"
        if node.value.value not in self._command_lines():
            return f"{code} is not read from the command line"
        attr = node.attr.value
        if any(word in attr.lower() for word in _PER_PROCESS):
            return f"{code} is a per-process value"
        key = ("attr", attr)
        if key in self._pending:
            return None
        self._pending.add(key)
        try:
            for value in self._assigned(attr):
                if value is None:
                    return f"{code} is assigned where its value cannot be followed"
                why = self.why_not(value)
                if why:
                    return f"{code} is assigned a value that may differ ({why})"
        finally:
            self._pending.discard(key)
        return None

    def _command_lines(self) -> frozenset[str]:
        """Names that hold the parsed command line: the usual ones (``args``, ``opt``, ...)
        and any name assigned the result of a ``parse_args()``-like call."""
        if self._parsed is None:
            names = set(_COMMAND_LINE)
            for assign in self.tree.nodes(cst.Assign):
                parsed = any(
                    isinstance(n, cst.Call) and callee_name(n) in _PARSERS
                    for n in walk(assign.value, into_scopes=False)
                )
                if parsed:
                    for target in assign.targets:
                        names.update(
                            p.value for p in _flattened(target.target) if isinstance(p, cst.Name)
                        )
            self._parsed = frozenset(names)
        return self._parsed

    def _assigned(self, attr: str) -> list[cst.BaseExpression | None]:
        """The values assigned to ``<anything>.<attr>`` anywhere in the module; None for one
        that cannot be judged on its own (``+=``, a ``setattr``, a tuple unpacked)."""
        if self._attributes is None:
            found: dict[str, list[cst.BaseExpression | None]] = {}
            for node in self.tree.nodes(cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Call):
                if isinstance(node, cst.Call):
                    if callee_name(node) == "setattr" and len(node.args) > 1:
                        name = node.args[1].value
                        if isinstance(name, cst.SimpleString):
                            found.setdefault(str(name.evaluated_value), []).append(None)
                    continue
                if isinstance(node, cst.Assign):
                    targets = [t.target for t in node.targets]
                    assigned: cst.BaseExpression | None = node.value
                else:
                    assert isinstance(node, (cst.AugAssign, cst.AnnAssign))
                    targets = [node.target]
                    assigned = node.value if isinstance(node, cst.AnnAssign) else None
                for target in targets:
                    whole = isinstance(target, cst.Attribute)
                    for part in _flattened(target):
                        if isinstance(part, cst.Attribute):
                            value = assigned if whole else None
                            found.setdefault(part.attr.value, []).append(value)
            self._attributes = found
        return self._attributes.get(attr, [])

    # --- counters ----------------------------------------------------------------------------

    def _counter(self, name: cst.Name) -> str | None:
        m = self.m
        if any(word in name.value.lower() for word in _PER_PROCESS):
            return f"{name.value} is a per-process value"
        scope = m.scope(name)
        key = ("name", str(id(scope)), name.value)
        if key in self._pending:
            return None
        bindings = [
            node
            for node in walk(scope, into_scopes=False)
            if isinstance(node, (*BINDERS, cst.Global, cst.Nonlocal, cst.Del))
            and _binds(node, name.value)
        ]
        if isinstance(scope, cst.FunctionDef):
            bindings += [
                b for b in walk(scope.params, into_scopes=False) if isinstance(b, cst.Param)
            ]
            bindings = [b for b in bindings if _binds(b, name.value)]
        if not bindings:
            return f"{name.value} is not bound in this function"
        self._pending.add(key)
        try:
            for binding in bindings:
                why = self._counting(binding, name.value)
                if why:
                    return why
        finally:
            self._pending.discard(key)
        return None

    def _counting(self, binding: cst.CSTNode, name: str) -> str | None:
        """Why this binding of ``name`` is not a counter's (None when it is)."""
        tree, m = self.tree, self.m
        if isinstance(binding, cst.Param):
            return f"{name} is a parameter (its value comes from the caller)"
        if isinstance(binding, (cst.Global, cst.Nonlocal, cst.Del, cst.AsName, cst.NamedExpr)):
            return f"{name} is bound by something other than a count"
        if isinstance(binding, cst.AugAssign):
            if (
                not isinstance(binding.operator, cst.AddAssign)
                or int_literal(binding.value) is None
            ):
                return f"{name} is updated with something other than += <int>"
        elif isinstance(binding, cst.AssignTarget):
            statement = tree.parent(binding)
            assert isinstance(statement, cst.Assign)
            if _element_for(binding.target, statement.value, name) is None:
                return f"{name} is assigned something other than an int literal"
        elif isinstance(binding, cst.AnnAssign):
            if binding.value is None or int_literal(binding.value) is None:
                return f"{name} is assigned something other than an int literal"
        elif isinstance(binding, cst.For):
            why = self._loop_index(binding, name)
            if why:
                return why
        else:
            return f"{name} is bound by something other than a count"
        if m.runs(binding, OTHER) is False or m.runs(binding, RANK0) is False:
            return f"{name} is updated on some ranks only"
        for test, _ in m.conditions(binding):
            why = self.why_not(test)
            if why:
                return f"{name} is updated under a test that may differ between ranks ({why})"
        for loop in tree.ancestors(binding):
            if loop is m.scope(binding):
                break
            if isinstance(loop, cst.While):
                why = self.why_not(loop.test)
                if why:
                    return f"{name} is updated in a loop whose test may differ ({why})"
        return None

    def _loop_index(self, loop: cst.For, name: str) -> str | None:
        iterator = loop.iter
        what = callee_name(iterator) if isinstance(iterator, cst.Call) else None
        if what == "range" and isinstance(iterator, cst.Call):
            for arg in iterator.args:
                why = self.why_not(arg.value)
                if why:
                    return f"{name} counts over a range that may differ ({why})"
            return None if isinstance(loop.target, cst.Name) else f"{name} is unpacked from a range"
        if what == "enumerate" and isinstance(loop.target, (cst.Tuple, cst.List)):
            elements = loop.target.elements
            first = elements[0].value if elements else None
            if isinstance(first, cst.Name) and first.value == name:
                return None
        return f"{name} is a loop variable over data"


def _pure(call: cst.Call) -> bool:
    """``int(...)``, ``max(...)``: a builtin whose value depends on its arguments only."""
    return (
        isinstance(call.func, cst.Name)
        and call.func.value in _PURE
        and all(not arg.star and arg.keyword is None for arg in call.args)
    )


def _flattened(target: cst.BaseExpression) -> list[cst.BaseExpression]:
    if isinstance(target, (cst.Tuple, cst.List)):
        return [part for e in target.elements for part in _flattened(e.value)]
    return [target]


def _binds(node: cst.CSTNode, name: str) -> bool:
    if isinstance(node, (cst.Global, cst.Nonlocal)):
        return any(item.name.value == name for item in node.names)
    if isinstance(node, cst.Del):
        return any(
            isinstance(n, cst.Name) and n.value == name for n in walk(node, into_scopes=False)
        )
    return any(n.value == name for n in bound_names(node))


def _element_for(
    target: cst.BaseExpression, value: cst.BaseExpression, name: str
) -> cst.BaseExpression | None:
    """The part of ``value`` that ``name`` in ``target`` receives (``a, b = 0, 0``), when the
    shapes match and that part is an int literal; None otherwise."""
    if isinstance(target, cst.Name):
        return value if target.value == name and int_literal(value) is not None else None
    if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)):
        if len(target.elements) != len(value.elements):
            return None
        for t, v in zip(target.elements, value.elements):
            if isinstance(t, cst.StarredElement) or isinstance(v, cst.StarredElement):
                return None
            found = _element_for(t.value, v.value, name)
            if found is not None:
                return found
    return None
