"""Whether a condition has the same value on every rank of a job, judged conservatively.

A rank-0 gate that also ends training (``if args.global_rank == 0 and global_step ==
args.train_steps: ... return``) can only be split into "every rank leaves, rank 0 saves first"
when the rest of its test is *rank-uniform*: every rank, reaching it at the same point of
training, computes the same value. That holds for step and epoch counters and for the command
line, and for nothing that a rank computes from its own data.

"The same point of training" rests on one premise, the one DDP training itself rests on. A
*training loop* is a loop whose every iteration reaches a synchronising call before anything
can leave the iteration (a ``backward()``, whose DDP gradient all-reduce every rank joins, or a
collective): its k-th iteration on one rank meets the k-th on every other rank. In a module
that shards its data with a ``DistributedSampler`` (which pads every rank's share to the same
length), every run of a training loop, and every iteration of a loop around one, also has the
same number of training iterations on every rank. A module that calls ``no_sync`` or
``join`` (uneven inputs) has no training loop in this sense.

:meth:`Uniformity.why_not` accepts

- literals (numbers, strings, ``True``/``False``/``None``) and ``__name__``;
- ``<name>.<attr>`` of the parsed command line, whose attribute name says nothing of a rank,
  node or device. ``<name>`` holds the command line when each of its bindings is the result of
  a ``parse_args()``-like call (or of a call handed the ``ArgumentParser``), or a parameter
  that every call in the module passes such a name (a conventional name, ``args``, ``opt``,
  ..., with no call in the module is the entry point's and trusted). Every assignment to the
  attribute must assign a uniform value at a uniform place (below); a ``setattr`` with a
  computed name, ``vars(args).update`` or a write through ``args.__dict__`` makes every
  attribute of that name unfollowable;
- a name of the function's own frame that only counts: bound from int literals, updated only
  by ``+= <int>``, or the loop variable of ``range(<uniform>)`` or the index of
  ``enumerate(<training loop's data>, <uniform start>)``; no nested function rebinds it
  (``nonlocal``/``global``);
- comparisons, arithmetic, ``and``/``or``/``not`` and ``int()``/``float()``/``round()``/
  ``abs()``/``min()``/``max()``/``bool()`` of those.

A binding (and the gate itself) is at a uniform place when it runs on every rank, every test
around it is uniform, no ``try`` body, ``except`` clause or ``else`` of a ``try`` holds it (an
exception a rank raises from its own data decides whether those run; a ``finally`` always runs),
and every loop around it runs in step: inside a training loop, any loop
runs in step up to it (its iterations meet one by one); below it, only ``range(<uniform>)``
or ``while <uniform>:``; around it, a loop that holds a training loop runs in step only in a
module with a ``DistributedSampler``. No ``continue`` before it, and no ``break``, ``return``,
``raise`` or ``sys.exit()`` anywhere in those loops, may be decided by a test that is not
uniform (the exit being split is judged by its own rest). A loop over a rank's own data
(``for example in batch:``) is not in step.

Everything else is not uniform: calls (a loss, a metric, ``time.time()``, ``random``, a file's
existence), subscripts, parameters, names bound from anything else, and rank names. The reason
is returned, so the rule can say why it did not split a gate.
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from patcher.tree import Tree
from patches._names import BINDERS, bindings_of, bound_names, parameters, walk
from patches._ranks import OTHER, RANK0, RankModel, innermost_loop, synchronises
from patches._syntax import callee_name, dotted_name, int_literal, one_line

# Concrete node types tested by ``type(node)`` in hot loops (``isinstance`` on a LibCST class
# goes through ``ABCMeta``).
_BINDER_TYPES = frozenset(BINDERS)
_UNKNOWABLE = frozenset({cst.Global, cst.Nonlocal, cst.Del})

#: Words in an attribute or name that make its value a per-process one.
_PER_PROCESS = ("rank", "node", "device", "gpu", "cuda", "host", "pid", "process")
#: Names that hold the parsed command line by convention, and the calls that parse it.
_COMMAND_LINE = frozenset({"args", "opt", "opts", "hparams", "cfg", "flags", "FLAGS"})
_PARSERS = frozenset({"parse_args", "parse_known_args", "parse_args_into_dataclasses"})
#: Builtins whose value depends on their arguments only.
_PURE = frozenset({"int", "float", "round", "abs", "min", "max", "bool"})
_LITERALS = (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)
#: Calls that end the process where they run.
PROCESS_EXITS = frozenset({"sys.exit", "exit", "quit", "os._exit"})
#: Calls after which ranks may run uneven training loops (DDP's ``no_sync``, ``join``).
_UNEVEN = frozenset({"no_sync", "join", "Join"})
_LOOPS = (cst.For, cst.While)


class Uniformity:
    """Judges expressions in one module version (build one per rule run: it caches)."""

    def __init__(self, m: RankModel, synced: frozenset[str] = frozenset()) -> None:
        self.m = m
        #: names of the function judged that a broadcast from rank 0 makes the same on every
        #: rank wherever they are read (``patches/_divergence.py`` plans that broadcast)
        self.synced = synced
        self.tree = m.tree
        self._attributes: dict[str, list[tuple[cst.CSTNode, cst.BaseExpression | None]]] = {}
        self._attributes_done = False
        self._pending: set[tuple[str, ...]] = set()  # judged further up the stack: assumed
        self._training: dict[int, bool] = {}
        self._leaving: cst.CSTNode | None = None
        self._sharded: bool | None = None
        self._uneven: bool | None = None

    def why_not(
        self, node: cst.BaseExpression, *, leaving: cst.CSTNode | None = None
    ) -> str | None:
        """None when ``node`` is rank-uniform; otherwise what is not, in a few words.
        ``leaving`` is the exit being split: judged by its own rest, it holds nothing back."""
        self._leaving = leaving
        return self._why(node)

    def uniform(self, node: cst.BaseExpression) -> bool:
        return self.why_not(node) is None

    def placed(
        self, node: cst.CSTNode, what: str, *, leaving: cst.CSTNode | None = None
    ) -> str | None:
        """Why ``node`` may run a different number of times on each rank at the same point of
        training (None when it runs at a uniform place)."""
        self._leaving = leaving
        return self._placed(node, what)

    def _why(self, node: cst.BaseExpression) -> str | None:
        if isinstance(node, _LITERALS):
            return None
        if type(node) is cst.Name:
            if node.value in ("True", "False", "None", "__name__") or node.value in self.synced:
                return None
            return self._counter(node)
        if type(node) is cst.Subscript and self._synced_root(node):
            return self._synced_item(node)
        if type(node) is cst.Attribute:
            return self._attribute(node)
        if type(node) is cst.UnaryOperation:
            return self._why(node.expression)
        if isinstance(node, (cst.BinaryOperation, cst.BooleanOperation)):
            return self._why(node.left) or self._why(node.right)
        if type(node) is cst.Comparison:
            parts = [node.left, *(c.comparator for c in node.comparisons)]
            return next((why for why in map(self._why, parts) if why), None)
        if type(node) is cst.Call and _pure(node):
            return next((why for why in (self._why(a.value) for a in node.args) if why), None)
        code = self._code(node)
        if type(node) is cst.Call:
            return f"{code} is computed by each rank"
        return f"{code} may differ between ranks"

    def _synced_root(self, node: cst.Subscript) -> bool:
        value: cst.BaseExpression = node
        while type(value) is cst.Subscript:
            value = value.value
        return type(value) is cst.Name and value.value in self.synced

    def _synced_item(self, node: cst.Subscript) -> str | None:
        """Why ``state[key]`` of a synced name may differ: by its key (None when every key is
        uniform)."""
        value: cst.BaseExpression = node
        while type(value) is cst.Subscript:
            for element in value.slice:
                index = element.slice
                if type(index) is not cst.Index:
                    return f"{self._code(node)} may differ between ranks"
                why = self._why(index.value)
                if why:
                    return f"{self._code(node)} is read at a key that may differ ({why})"
            value = value.value
        return None

    def _code(self, node: cst.CSTNode) -> str:
        return one_line(self.tree, node)

    # --- command-line attributes -------------------------------------------------------------

    def _attribute(self, node: cst.Attribute) -> str | None:
        code = self._code(node)
        if type(node.value) is not cst.Name:
            return f"{code} may differ between ranks"
        holder = node.value.value
        why = self._command_line(node.value)
        if why:
            return f"{code} is not read from the command line ({why})"
        attr = node.attr.value
        if any(word in attr.lower() for word in _PER_PROCESS):
            return f"{code} is a per-process value"
        key = ("attr", attr)
        if key in self._pending:
            return None
        self._pending.add(key)
        try:
            for where, value in self._assigned(attr, holder):
                if value is None:
                    return f"{code} is assigned where its value cannot be followed"
                why = self._why(value)
                if why:
                    return f"{code} is assigned a value that may differ ({why})"
                why = self._everywhere(where, code) or self._placed(where, code)
                if why:
                    return why
        finally:
            self._pending.discard(key)
        return None

    def command_line(self, name: cst.Name) -> str | None:
        """Why ``name`` may not hold the parsed command line (None when it does)."""
        return self._command_line(name)

    def _command_line(self, name: cst.Name, depth: int = 0) -> str | None:
        """Why ``name`` may not hold the parsed command line (None when it does)."""
        m = self.m
        if depth > 4:
            return f"{name.value} is passed along too far to follow"
        scope = m.scope(name)
        bindings = _frame_bindings(scope, name.value)
        if not bindings and type(scope) is cst.FunctionDef:
            scope = self.tree.module
            bindings = _frame_bindings(scope, name.value)
        if not bindings:
            return f"{name.value} is not bound in this module"
        for binding in bindings:
            if type(binding) is cst.Param:
                why = self._passed_command_line(binding, depth)
            elif type(binding) is cst.AssignTarget:
                statement = self.tree.parent(binding)
                assert type(statement) is cst.Assign
                parsed = self._parses(statement.value)
                why = None if parsed else f"{name.value} is assigned something else"
            else:
                why = f"{name.value} is bound by something other than a parse_args() result"
            if why:
                return why
        return None

    def _parses(self, value: cst.BaseExpression) -> bool:
        """``parser.parse_args()``, or ``add_args(parser)``: a call handed the parser."""
        if type(value) is not cst.Call:
            return False
        if callee_name(value) in _PARSERS:
            return True
        return any(type(arg.value) is cst.Name and self._is_parser(arg.value) for arg in value.args)

    def _is_parser(self, name: cst.Name) -> bool:
        scope = self.m.scope(name)
        bindings = _frame_bindings(scope, name.value)
        if not bindings:
            return False
        for binding in bindings:
            statement = self.tree.parent(binding)
            if not (
                type(binding) is cst.AssignTarget
                and type(statement) is cst.Assign
                and type(statement.value) is cst.Call
                and callee_name(statement.value) == "ArgumentParser"
            ):
                return False
        return True

    def _passed_command_line(self, param: cst.Param, depth: int) -> str | None:
        """A parameter holds the command line when every call in the module passes one; with
        no call in the module (an entry point), a conventional name (``args``) is trusted."""
        m = self.m
        function = next((a for a in self.tree.ancestors(param) if type(a) is cst.FunctionDef), None)
        name = param.name.value
        if function is None:
            return f"{name} is a parameter of a lambda"
        calls = [
            c
            for c in m.module_calls()
            if type(c.func) is cst.Name and c.func.value == function.name.value
        ]
        if not calls:
            if name in _COMMAND_LINE:
                return None
            return f"{name} is a parameter (its value comes from the caller)"
        names = [p.name.value for p in parameters(function)]
        index = names.index(name) if name in names else -1
        for call in calls:
            passed = _argument(call, index, name)
            if passed is not None and self._parses(passed):
                continue  # main(parser.parse_args())
            if type(passed) is not cst.Name:
                return f"{name} is a parameter that a caller passes something else"
            why = self._command_line(passed, depth + 1)
            if why:
                return why
        return None

    def _assigned(
        self, attr: str, holder: str
    ) -> list[tuple[cst.CSTNode, cst.BaseExpression | None]]:
        """Where ``<anything>.<attr>`` is assigned anywhere in the module, and the value; None
        for one that cannot be judged on its own (``+=``, a tuple unpacked, a ``setattr``, or
        a write whose attribute name is computed: ``setattr(args, k, v)``, ``vars(args)``)."""
        if not self._attributes_done:
            found = self._attributes
            for node in self.tree.nodes(cst.Assign, cst.AugAssign, cst.AnnAssign):
                if isinstance(node, cst.Assign):
                    targets = [t.target for t in node.targets]
                    assigned: cst.BaseExpression | None = node.value
                else:
                    targets = [node.target]
                    assigned = node.value if type(node) is cst.AnnAssign else None
                for target in targets:
                    whole = type(target) is cst.Attribute
                    for part in _flattened(target):
                        if type(part) is cst.Attribute:
                            value = assigned if whole else None
                            found.setdefault(part.attr.value, []).append((node, value))
            self._attributes_done = True
        found = list(self._attributes.get(attr, []))
        for node, written in self._dynamic_writes():
            if written in (attr, "*", f"*{holder}"):
                found.append((node, None))
        return found

    def _dynamic_writes(self) -> Iterator[tuple[cst.CSTNode, str]]:
        """Writes of attributes by name: ``setattr(x, "a", v)`` gives ``"a"``, one whose name
        is computed gives ``"*x"``; ``vars(x).update(...)`` and ``x.__dict__`` writes too."""
        for call in self.tree.nodes(cst.Call):
            name = callee_name(call)
            if name == "setattr" and type(call.func) is cst.Name and len(call.args) > 1:
                key = call.args[1].value
                if type(key) is cst.SimpleString:
                    yield call, str(key.evaluated_value)
                else:
                    yield call, f"*{_holder(call.args[0].value)}"
            elif name in ("update", "setdefault", "__setitem__") and isinstance(
                call.func, cst.Attribute
            ):
                target = call.func.value
                holder = _namespace_of(target)
                if holder is not None:
                    yield call, f"*{holder}"
        for subscript in self.tree.nodes(cst.Subscript):
            holder = _namespace_of(subscript.value)
            if holder is not None and isinstance(self.tree.parent(subscript), cst.AssignTarget):
                yield subscript, f"*{holder}"

    # --- counters ----------------------------------------------------------------------------

    def _counter(self, name: cst.Name) -> str | None:
        m = self.m
        if any(word in name.value.lower() for word in _PER_PROCESS):
            return f"{name.value} is a per-process value"
        scope = m.scope(name)
        key = ("name", str(id(scope)), name.value)
        if key in self._pending:
            return None
        bindings = _frame_bindings(scope, name.value)
        if not bindings:
            return f"{name.value} is not bound in this function"
        for node in walk(scope, into_scopes=True):
            if isinstance(node, (cst.Global, cst.Nonlocal)) and m.scope(node) is not scope:
                if any(item.name.value == name.value for item in node.names):
                    return f"{name.value} is rebound in a nested function"
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
        tree = self.tree
        if type(binding) is cst.Param:
            return f"{name} is a parameter (its value comes from the caller)"
        if isinstance(binding, (cst.Global, cst.Nonlocal, cst.Del, cst.AsName, cst.NamedExpr)):
            return f"{name} is bound by something other than a count"
        if type(binding) is cst.AugAssign:
            if type(binding.operator) is not cst.AddAssign or int_literal(binding.value) is None:
                return f"{name} is updated with something other than += <int>"
        elif type(binding) is cst.AssignTarget:
            statement = tree.parent(binding)
            assert type(statement) is cst.Assign
            if _element_for(binding.target, statement.value, name) is None:
                return f"{name} is assigned something other than an int literal"
        elif type(binding) is cst.AnnAssign:
            if binding.value is None or int_literal(binding.value) is None:
                return f"{name} is assigned something other than an int literal"
        elif type(binding) is cst.For:
            why = self._loop_index(binding, name)
            if why:
                return why
        else:
            return f"{name} is bound by something other than a count"
        return self._everywhere(binding, name) or self._placed(binding, name)

    def _everywhere(self, node: cst.CSTNode, what: str) -> str | None:
        """Why ``node`` may run on some ranks and not others (its ``if`` tests, a ``try``)."""
        m = self.m
        if m.runs(node, OTHER) is False or m.runs(node, RANK0) is False:
            return f"{what} is updated on some ranks only"
        clause = _try_clause(self.tree, node, m.scope(node))
        if clause:
            return (
                f"{what} is updated in {clause}: whether it runs is decided by an exception, "
                "which a rank raises from its own data"
            )
        for test, _ in m.conditions(node):
            why = self._why(test)
            if why:
                return f"{what} is updated under a test that may differ between ranks ({why})"
        return None

    def _loop_index(self, loop: cst.For, name: str) -> str | None:
        iterator = loop.iter
        what = callee_name(iterator) if type(iterator) is cst.Call else None
        if what == "range" and type(iterator) is cst.Call:
            for arg in iterator.args:
                why = self._why(arg.value)
                if why:
                    return f"{name} counts over a range that may differ ({why})"
            return None if type(loop.target) is cst.Name else f"{name} is unpacked from a range"
        if what == "enumerate" and type(iterator) is cst.Call:
            target = loop.target
            elements = target.elements if isinstance(target, (cst.Tuple, cst.List)) else ()
            first = elements[0].value if elements else None
            if not (type(first) is cst.Name and first.value == name):
                return f"{name} is a loop variable over data"
            start = _argument(iterator, 1, "start")
            if start is not None and (why := self._why(start)):
                return f"{name} counts from a start that may differ ({why})"
            if not self._trains(loop):
                return (
                    f"{name} counts a loop over data that may run a different number of times "
                    "on each rank (no backward or collective in every iteration)"
                )
            return None
        return f"{name} is a loop variable over data"

    # --- where a binding runs ----------------------------------------------------------------

    def _placed(self, node: cst.CSTNode, what: str) -> str | None:
        tree, m = self.tree, self.m
        scope = m.scope(node)
        trained = False
        between: cst.CSTNode | None = None  # a loop around a training loop, outside it
        for loop in tree.ancestors(node):
            if loop is scope:
                break
            if not isinstance(loop, _LOOPS):
                continue
            why = self._exits(loop, node, what)
            if why:
                return why
            if trained:
                continue  # counted by the training loop's iterations, which meet one by one
            if self._trains(loop):
                trained = True
                continue
            holds = any(
                isinstance(inner, _LOOPS) and self._trains(inner)
                for inner in walk(loop.body, into_scopes=False)
            )
            if isinstance(loop, cst.While):
                why = self._why(loop.test)
                if why:
                    return f"{what} runs in a loop whose test may differ ({why})"
            elif isinstance(loop.iter, cst.Call) and callee_name(loop.iter) == "range":
                for arg in loop.iter.args:
                    why = self._why(arg.value)
                    if why:
                        return f"{what} runs in a range that may differ ({why})"
            elif not holds:
                return (
                    f"{what} runs in a loop over {self._code(loop.iter)}, which may run a "
                    "different number of times on each rank"
                )
            if holds:
                between = loop
        if between is not None and not self._shards_evenly():
            return (
                f"{what} runs between runs of a training loop, which only a DistributedSampler "
                "makes equally long on every rank"
            )
        return None

    def _exits(self, loop: cst.For | cst.While, node: cst.CSTNode, what: str) -> str | None:
        """Why an exit that is not uniform may end ``loop`` early on some ranks, or a
        ``continue`` skip ``node`` there (None when none does)."""
        tree = self.tree
        for inner in walk(loop.body, into_scopes=False):
            if inner is self._leaving:
                continue
            if isinstance(inner, (cst.Break, cst.Continue)):
                if innermost_loop(tree, inner) is not loop:
                    continue
                if type(inner) is cst.Continue and not tree.after(node, inner):
                    continue
            elif type(inner) is cst.Call:
                if dotted_name(inner.func) not in PROCESS_EXITS or inner is self._leaving:
                    continue
            elif not isinstance(inner, (cst.Return, cst.Raise)):
                continue
            whys = (self._why(test) for test, _ in self.m.conditions(inner))
            if _handler_between(tree, inner, loop):
                whys = iter(["it runs in an except clause, on an exception a rank raises"])
            for why in whys:
                if why:
                    kind = "skip" if type(inner) is cst.Continue else "leave the loop around"
                    return (
                        f"ranks may {kind} {what} at different times "
                        f"(`{self._code(tree.statement(inner))}` under a test that may "
                        f"differ: {why})"
                    )
        return None

    def _trains(self, loop: cst.For | cst.While) -> bool:
        """Whether every iteration of ``loop`` synchronises before anything can leave it."""
        key = id(loop)
        if key not in self._training:
            self._training[key] = not self._runs_uneven() and self._surely(
                list(loop.body.body) if type(loop.body) is cst.IndentedBlock else []
            )
        return self._training[key]

    def _surely(self, statements: list[cst.BaseStatement]) -> bool:
        """Whether ``statements`` reach a synchronising call before any exit."""
        for statement in statements:
            if type(statement) is cst.SimpleStatementLine:
                if any(
                    isinstance(s, (cst.Return, cst.Raise, cst.Break, cst.Continue))
                    for s in statement.body
                ):
                    return False
                if synchronises(self.m, statement):
                    return True
                continue
            if type(statement) is cst.With and type(statement.body) is cst.IndentedBlock:
                if self._surely(list(statement.body.body)):
                    return True
            elif type(statement) is cst.If and self._both(statement):
                return True
            if _may_leave(self.tree, statement):
                return False
        return False

    def _both(self, branch: cst.If) -> bool:
        if type(branch.body) is not cst.IndentedBlock or branch.orelse is None:
            return False
        if not self._surely(list(branch.body.body)):
            return False
        other = branch.orelse
        if type(other) is cst.If:
            return self._both(other)
        return type(other.body) is cst.IndentedBlock and self._surely(list(other.body.body))

    def _runs_uneven(self) -> bool:
        """``model.no_sync()``, ``with model.join():``, ``Join([...])``: ranks may then run
        training loops of different lengths, or iterations that do not all-reduce."""
        if self._uneven is None:
            self._uneven = any(
                callee_name(call) in _UNEVEN
                and (
                    callee_name(call) != "join" or isinstance(self.tree.parent(call), cst.WithItem)
                )
                for call in self.tree.nodes(cst.Call)
            )
        return self._uneven

    def _shards_evenly(self) -> bool:
        if self._sharded is None:
            self._sharded = any(
                callee_name(call) == "DistributedSampler" for call in self.tree.nodes(cst.Call)
            )
        return self._sharded


def _handler_between(tree: Tree, node: cst.CSTNode, top: cst.CSTNode) -> bool:
    """Whether an ``except`` clause inside ``top`` holds ``node``: what runs there is decided
    by an exception, which a rank raises from its own data (``StopIteration``)."""
    for ancestor in tree.ancestors(node):
        if ancestor is top:
            return False
        if type(ancestor) is cst.ExceptHandler:
            return True
    return False


def _try_clause(tree: Tree, node: cst.CSTNode, top: cst.CSTNode) -> str | None:
    """The part of a ``try`` inside ``top`` holding ``node`` whose running an exception decides:
    its body (cut short by a raise), an ``except`` clause or its ``else``; a ``finally`` always
    runs (None then, and when no ``try`` holds it)."""
    child = node
    for ancestor in tree.ancestors(node):
        if ancestor is top:
            return None
        if isinstance(ancestor, (cst.Try, cst.TryStar)) and child is not ancestor.finalbody:
            if isinstance(child, (cst.ExceptHandler, cst.ExceptStarHandler)):
                return "an except clause"
            return "a try body" if child is ancestor.body else "the else of a try"
        child = ancestor
    return None


def _may_leave(tree: Tree, statement: cst.CSTNode) -> bool:
    """Whether an exit inside ``statement`` may leave the iteration it is in."""
    for node in walk(statement, into_scopes=False):
        if isinstance(node, (cst.Return, cst.Raise)):
            return True
        if type(node) is cst.Call and dotted_name(node.func) in PROCESS_EXITS:
            return True
        if isinstance(node, (cst.Break, cst.Continue)):
            inner_loop = False
            for ancestor in tree.ancestors(node):
                if ancestor is statement:
                    break
                if isinstance(ancestor, _LOOPS):
                    inner_loop = True
                    break
            if not inner_loop:
                return True
    return False


def _frame_bindings(scope: cst.FunctionDef | cst.Module, name: str) -> list[cst.CSTNode]:
    """Where ``name`` is bound in ``scope``'s own frame (``_names.bindings_of``, which a
    module frame walks alike), and the ``global``/``nonlocal``/``del`` statements naming it."""
    if type(scope) is cst.FunctionDef:
        found = bindings_of(scope, name)
    else:
        found = [
            node
            for node in walk(scope, into_scopes=False)
            if type(node) in _BINDER_TYPES and _binds(node, name)  # concrete: no ABCMeta
        ]
    body = scope.body if type(scope) is cst.FunctionDef else scope
    return found + [
        node
        for node in walk(body, into_scopes=False)
        if type(node) in _UNKNOWABLE and _binds(node, name)
    ]


def _argument(call: cst.Call, index: int, keyword: str) -> cst.BaseExpression | None:
    """The value passed at position ``index`` or as ``keyword=`` (None when not passed or
    when a ``*``/``**`` argument hides it)."""
    position = 0
    for arg in call.args:
        if arg.star:
            return None
        if arg.keyword is not None:
            if arg.keyword.value == keyword:
                return arg.value
            continue
        if position == index:
            return arg.value
        position += 1
    return None


def _holder(node: cst.BaseExpression) -> str:
    return node.value if type(node) is cst.Name else ""


def _namespace_of(node: cst.BaseExpression) -> str | None:
    """``x`` for ``vars(x)`` and ``x.__dict__``: a namespace whose attributes are written."""
    if type(node) is cst.Call and callee_name(node) == "vars" and node.args:
        return _holder(node.args[0].value)
    if type(node) is cst.Attribute and node.attr.value == "__dict__":
        return _holder(node.value)
    return None


def _pure(call: cst.Call) -> bool:
    """``int(...)``, ``max(...)``: a builtin whose value depends on its arguments only."""
    return (
        type(call.func) is cst.Name
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
    if type(node) is cst.Del:
        return any(type(n) is cst.Name and n.value == name for n in walk(node, into_scopes=False))
    return any(n.value == name for n in bound_names(node))


def _element_for(
    target: cst.BaseExpression, value: cst.BaseExpression, name: str
) -> cst.BaseExpression | None:
    """The part of ``value`` that ``name`` in ``target`` receives (``a, b = 0, 0``), when the
    shapes match and that part is an int literal; None otherwise."""
    if type(target) is cst.Name:
        return value if target.value == name and int_literal(value) is not None else None
    if isinstance(target, (cst.Tuple, cst.List)) and isinstance(value, (cst.Tuple, cst.List)):
        if len(target.elements) != len(value.elements):
            return None
        for t, v in zip(target.elements, value.elements):
            if type(t) is cst.StarredElement or type(v) is cst.StarredElement:
                return None
            found = _element_for(t.value, v.value, name)
            if found is not None:
                return found
    return None
