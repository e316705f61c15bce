"""DDP017 distributed-evaluation: every rank scores its share, every prediction counted once.

Opt-in (``--select DDP017``, ``--select ALL``, or ``select = [..., "DDP017"]`` in
``[tool.ddpfix]``): the default rules make evaluation correct by running it on rank 0 alone
(DDP003/DDP004/DDP005/DDP011), and the other N-1 ranks wait. This rule turns such an evaluation
into a distributed one, exactly: the same predictions file, byte for byte, and the same metrics.

It rewrites an evaluation function of the CodeXGLUE shape: a ``SequentialSampler`` (or the
``SequentialSampler(d) if local_rank == -1 else DistributedSampler(d)`` choice) feeding a
``DataLoader``, one loop over it that appends per-batch arrays (``logits.append(x.cpu().numpy())``)
to lists that are only read through ``np.concatenate`` after the loop, then metrics computed on
the complete arrays (an F1 threshold sweep, accuracy, a MAP/MRR over the full score matrix of
gathered vectors) and optional prediction writes:

- the sampler becomes ``_ddpfix_eval_shard(dataset)``: every ``world_size``-th index from the
  process's rank on (no padding, so no duplicates to drop; a rank may get no example at all);
- right after the loop, ``_ddpfix_gather_rows(sampler, *lists)`` gathers every rank's arrays
  with their dataset indices (``all_gather_object``) and puts them back in dataset order, on
  every rank, so the rest of the function computes the same complete metrics everywhere (the
  metrics every rank needs for its best-checkpoint decision come with it: no broadcast);
- running sums of the loop (``eval_loss += ...``, ``nb_eval_steps += 1``) are added up over the
  ranks (``_ddpfix_sum_over_ranks``): the loss is then the mean of every rank's batch losses,
  which is not bit-equal to one process's batches (the predictions and metrics from them are);
- the function's file writes run on global rank 0 only.

Without a process group every helper returns its input unchanged: a single process runs exactly
as before. The helpers are defined in the script (after the last rewritten function). A script
with neither ``init_process_group`` nor a local rank (DataParallel only, until DDP016 converts it)
is left alone: there is nothing to share the evaluation with.

Each call site must then run on every rank: the rank-0 terms of the ``if`` tests around it are
removed (``if RANK in [-1, 0] and args.do_eval:`` → ``if args.do_eval:``; a test that was only a
rank test goes, its body stays), the writes those gates protected (a best-checkpoint save, a
``makedirs``) stay on global rank 0 under their own test, and a model the caller may hold
wrapped in DDP (a parameter of the caller, or a name bound from a wrapper) is passed as
``model.module if hasattr(model, "module") else model``: the DDP forward is a collective (its
buffer broadcast), and the shards may have different batch counts. Call sites already on every
rank (an epoch-0 score before training) are kept and unwrapped alike. The rule reports instead of
rewriting when it cannot move every call site (a gate with an ``else``, an ``or``, a caller that
runs on rank 0 alone at some of its own call sites, the function passed around by name, a file
written by the statement that calls it, a gated statement that calls another evaluation), or
when the function's shape is not one it can transform with certainty (lists of Python scalars,
a ``break``/``return`` in the loop, a value from the loop read afterwards, no
``np.concatenate``). The rank model's post-conditions check the result like any other fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Tree
from patches._ddp017_helpers import GATHER, SHARD, SUM, helpers
from patches._gates import conjuncts, local_names, rank_zero_functions
from patches._names import BINDERS, bound_names, is_read, walk
from patches._ranks import LAUNCHED, OTHER, SINGLE, truth
from patches._syntax import (
    callee_name,
    calls_in,
    global_rank_zero,
    is_eval_call,
    module_binds,
    module_functions,
    preferred_quote,
    unwrapped,
)
from patches._writes import is_write

KINDS = (SINGLE, *LAUNCHED)
_WRAPPERS = frozenset({"DistributedDataParallel", "DDP", "DataParallel"})


class Refused(Exception):
    """A shape the rule cannot transform with certainty; the message says why."""


def _excludes_others(test: cst.BaseExpression) -> bool:
    return truth(test, OTHER) is False


def _has_rank_term(test: cst.BaseExpression) -> bool:
    return any(_excludes_others(t) for t in conjuncts(test))


def _mentions_rank(test: cst.BaseExpression) -> bool:
    return any(truth(t, kind) is not None for t in conjuncts(test) for kind in KINDS)


def _read_first(tree: Tree, statements: Sequence[cst.CSTNode], name: str) -> bool:
    """Whether the first occurrence of ``name`` in ``statements`` reads it (a value from before
    them flows in), rather than binding it anew."""
    for statement in statements:
        for node in walk(statement, into_scopes=False):
            if type(node) is cst.Name and node.value == name:
                if not is_read(tree, node):
                    assign = next(
                        (a for a in tree.ancestors(node) if isinstance(a, cst.BaseStatement)),
                        None,
                    )
                    if type(assign) is cst.SimpleStatementLine:
                        small = assign.body[0]
                        if type(small) is cst.Assign:
                            return any(
                                type(n) is cst.Name and n.value == name
                                for n in walk(small.value, into_scopes=False)
                            )
                    return False
                return True
    return False


def _binds(node: cst.CSTNode) -> set[str]:
    return {
        n.value
        for b in walk(node, into_scopes=False)
        if isinstance(b, BINDERS)
        for n in bound_names(b)
    }


def _body(node: cst.CSTNode) -> list[cst.BaseStatement]:
    body = getattr(node, "body", None)
    return list(body.body) if type(body) is cst.IndentedBlock else []


def _single(statement: cst.CSTNode) -> cst.BaseSmallStatement | None:
    if type(statement) is cst.SimpleStatementLine and len(statement.body) == 1:
        return statement.body[0]
    return None


def _assigned(statement: cst.CSTNode) -> tuple[list[str], cst.BaseExpression] | None:
    """``a = v`` → (["a"], v); ``a, b = v`` → (["a", "b"], v)."""
    small = _single(statement)
    if type(small) is not cst.Assign or len(small.targets) != 1:
        return None
    target = small.targets[0].target
    if type(target) is cst.Name:
        return [target.value], small.value
    if type(target) is cst.Tuple and all(type(e.value) is cst.Name for e in target.elements):
        return [e.value.value for e in target.elements], small.value  # type: ignore[attr-defined]
    return None


def _empty_lists(names: list[str], value: cst.BaseExpression) -> list[str]:
    values = value.elements if type(value) is cst.Tuple and len(names) > 1 else [value]
    if len(names) > 1 and len(values) != len(names):
        return []
    out = []
    for name, element in zip(names, values):
        v = element.value if type(element) is cst.Element else element
        if type(v) is cst.List and not v.elements:
            out.append(name)
    return out


def _numbers(names: list[str], value: cst.BaseExpression) -> list[str]:
    values = value.elements if type(value) is cst.Tuple and len(names) > 1 else [value]
    if len(names) > 1 and len(values) != len(names):
        return []
    out = []
    for name, element in zip(names, values):
        v = element.value if type(element) is cst.Element else element
        if isinstance(v, (cst.Integer, cst.Float)):
            out.append(name)
    return out


def _tuple_target(names: Sequence[str]) -> cst.BaseAssignTargetExpression:
    if len(names) == 1:
        return cst.Name(names[0])
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    elements = [cst.Element(cst.Name(n), comma=comma) for n in names[:-1]]
    return cst.Tuple([*elements, cst.Element(cst.Name(names[-1]))], lpar=[], rpar=[])


def _call_line(names: Sequence[str], helper: str, first: Sequence[str]) -> cst.SimpleStatementLine:
    """``a, b = helper(first..., a, b)`` (``a = helper(first..., a)[0]`` for one name)."""
    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    args = [cst.Name(n) for n in [*first, *names]]
    call: cst.BaseExpression = cst.Call(
        cst.Name(helper),
        [cst.Arg(a, comma=comma) for a in args[:-1]] + [cst.Arg(args[-1])],
    )
    if len(names) == 1:
        call = cst.Subscript(call, [cst.SubscriptElement(cst.Index(cst.Integer("0")))])
    return cst.SimpleStatementLine([cst.Assign([cst.AssignTarget(_tuple_target(names))], call)])


class _Evaluation:
    """One evaluation function and the rewrite of its body."""

    def __init__(self, tree: Tree, function: cst.FunctionDef) -> None:
        self.tree = tree
        self.function = function
        self.replacements: dict[cst.CSTNode, object] = {}
        self.sums: list[str] = []
        self.needs_args = False
        self._analyse()

    def _analyse(self) -> None:
        statements = _body(self.function)
        sampler_at = loader_at = loop_at = None
        sampler = loader = dataset = None
        for index, statement in enumerate(statements):
            found = _assigned(statement)
            if found and len(found[0]) == 1 and sampler_at is None:
                calls = {callee_name(c) for c in calls_in(found[1])}
                if "SequentialSampler" in calls:
                    sampler_at, sampler = index, found[0][0]
                    continue
            if found and len(found[0]) == 1 and sampler is not None and loader is None:
                value = found[1]
                if type(value) is cst.Call and callee_name(value) == "DataLoader":
                    keywords = {a.keyword.value: a.value for a in value.args if a.keyword}
                    given = keywords.get("sampler")
                    if type(given) is cst.Name and given.value == sampler and value.args:
                        first = value.args[0].value
                        if type(first) is cst.Name and value.args[0].keyword is None:
                            loader_at, loader, dataset = index, found[0][0], first.value
                            continue
            if type(statement) is cst.For and loader is not None and loop_at is None:
                if self._over(statement.iter, loader):
                    loop_at = index
        if sampler_at is None:
            raise Refused("no SequentialSampler assignment at the top of the function")
        if loader_at is None or dataset is None:
            raise Refused(f"no DataLoader(dataset, sampler={sampler}) at the top of the function")
        if loop_at is None:
            raise Refused(f"no loop over {loader} at the top of the function")
        self.sampler, self.loader = sampler, loader
        loop = statements[loop_at]
        assert type(loop) is cst.For
        if loop.orelse is not None:
            raise Refused("the evaluation loop has an else branch")
        self.lists, self.sums = self._accumulators(statements[:loop_at], loop)
        self._check_after(statements[loop_at + 1 :], loop)
        value = cst.parse_expression(f"{SHARD}({dataset})")
        small = _single(statements[sampler_at])
        assert type(small) is cst.Assign
        self.replacements[statements[sampler_at]] = statements[sampler_at].with_changes(
            body=[small.with_changes(value=value)]
        )
        assert sampler is not None  # bound with sampler_at, checked above
        after = [_call_line(self.lists, GATHER, [sampler])]
        if self.sums:
            after.append(_call_line(self.sums, SUM, []))
        self.replacements[loop] = Around(after=tuple(after))
        self._gate_writes(statements, loop_at)

    @staticmethod
    def _over(iterable: cst.BaseExpression, loader: str) -> bool:
        if type(iterable) is cst.Name:
            return iterable.value == loader
        if type(iterable) is cst.Call and iterable.args:  # tqdm(loader, ...), enumerate
            return _Evaluation._over(iterable.args[0].value, loader)
        return False

    def _accumulators(
        self, before: list[cst.BaseStatement], loop: cst.For
    ) -> tuple[list[str], list[str]]:
        empty: set[str] = set()
        numbers: set[str] = set()
        for statement in before:
            found = _assigned(statement)
            if found:
                empty |= set(_empty_lists(*found))
                numbers |= set(_numbers(*found))
        lists: list[str] = []
        sums: list[str] = []
        for node in walk(loop.body, into_scopes=False):
            if isinstance(node, (cst.Break, cst.Return, cst.Yield)):
                raise Refused("the evaluation loop leaves early (break/return)")
            if type(node) is cst.Call and type(node.func) is cst.Attribute:
                receiver = node.func.value
                method = node.func.attr.value
                if type(receiver) is cst.Name and receiver.value in empty:
                    if method != "append" or len(node.args) != 1:
                        raise Refused(f"{receiver.value}.{method}(...) in the evaluation loop")
                    appended = node.args[0].value
                    if not (type(appended) is cst.Call and callee_name(appended) == "numpy"):
                        raise Refused(
                            f"{receiver.value} collects something other than per-batch arrays "
                            "(.numpy()): its rows cannot be matched to examples"
                        )
                    if receiver.value not in lists:
                        lists.append(receiver.value)
            if type(node) is cst.AugAssign and type(node.target) is cst.Name:
                name = node.target.value
                if name in numbers and type(node.operator) is cst.AddAssign:
                    if name not in sums:
                        sums.append(name)
        if not lists:
            raise Refused("the evaluation loop collects no per-batch arrays")
        return lists, sums

    def _check_after(self, after: list[cst.BaseStatement], loop: cst.For) -> None:
        bound_in_loop = _binds(loop)
        allowed = set(self.lists) | set(self.sums)
        for name in sorted(bound_in_loop - allowed):
            if _read_first(self.tree, after, name):
                raise Refused(f"{name!r} from the evaluation loop is read after it")
        concatenated = {
            id(c.args[0].value)
            for statement in after
            for c in calls_in(statement)
            if callee_name(c) == "concatenate" and c.args
        }
        self.lists = [
            name for name in self.lists if any(_read_first(self.tree, after, name) for _ in [0])
        ]
        if not self.lists:
            raise Refused("no per-batch arrays of the loop are read after it")
        for name in self.lists:
            uses = [
                n
                for statement in after
                for n in walk(statement, into_scopes=False)
                if type(n) is cst.Name and n.value == name and is_read(self.tree, n)
            ]
            first = next(iter(uses), None)
            if first is None or id(first) not in concatenated:
                raise Refused(f"{name!r} is not first read through np.concatenate after the loop")

    def _gate_writes(self, statements: list[cst.BaseStatement], loop_at: int) -> None:
        """Statements of the function (outside the loop) that write files run on rank 0."""
        for index, statement in enumerate(statements):
            if index == loop_at or not any(is_write(c) for c in calls_in(statement)):
                continue
            if type(statement) is cst.If and _excludes_others(statement.test):
                continue  # already behind a rank test
            if any(type(n) is cst.Return for n in walk(statement, into_scopes=False)):
                raise Refused("a write and a return in the same statement")
            rest = statements[index + 1 :]
            if any(_read_first(self.tree, rest, name) for name in _binds(statement)):
                raise Refused("a statement that writes also binds names read after it")
            self.replacements[statement] = "gate"
            self.needs_args = True


def _gate(statement: cst.BaseStatement, rank: cst.BaseExpression) -> cst.If:
    assert isinstance(statement, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
    return cst.If(
        test=rank.deep_clone(),
        body=cst.IndentedBlock([statement.with_changes(leading_lines=())]),
        leading_lines=statement.leading_lines,
    )


class _CallSites:
    """Every call of the rewritten functions, moved onto every rank."""

    def __init__(self, tree: Tree, names: dict[str, _Evaluation], quote: str) -> None:
        self.tree = tree
        self.names = names
        self.quote = quote
        self.replacements: dict[cst.CSTNode, object] = {}
        self.rank_gates: set[int] = set()
        self.calls: list[cst.Call] = []
        self.args_name: str | None = None

    def collect(self) -> None:
        tree = self.tree
        only, sometimes = rank_zero_functions(tree)
        shadowed = local_names(tree)
        for name in tree.nodes(cst.Name):
            if name.value not in self.names:
                continue
            parent = tree.parent(name)
            if type(parent) is cst.FunctionDef and parent.name is name:
                continue
            if type(parent) is cst.Call and parent.func is name:
                self.calls.append(parent)
                continue
            scope = tree.scope(name)
            if name.value in shadowed.get(id(scope), ()):
                continue  # a parameter or local of the same name
            if type(parent) is cst.Arg and parent.keyword is name:
                continue  # load_and_cache_examples(..., evaluate=True)
            if type(parent) is cst.Attribute and parent.attr is name:
                continue  # x.evaluate
            if type(parent) is cst.Param:
                continue
            raise Refused(f"{name.value} is used other than by a call (a caller cannot be moved)")
        if not self.calls:
            raise Refused("the evaluation is never called")
        for call in self.calls:
            scope = tree.scope(call)
            if type(scope) is cst.FunctionDef:
                if scope.name.value in self.names:
                    raise Refused("an evaluation calls another one")
                if scope.name.value in only | sometimes:
                    raise Refused(f"{scope.name.value}() runs on rank 0 alone and calls it")
            elif scope is not None and type(scope) is not cst.Module:
                raise Refused("called inside a class or lambda")
            self._gates_of(call)
            self._model_argument(call, scope)

    def _gates_of(self, call: cst.Call) -> None:
        child: cst.CSTNode = call
        for ancestor in self.tree.ancestors(call):
            if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                break
            if type(ancestor) is cst.If:
                if child is ancestor.orelse:
                    if _mentions_rank(ancestor.test):
                        raise Refused("called in the else branch of a rank test")
                elif _excludes_others(ancestor.test):
                    if ancestor.orelse is not None:
                        raise Refused("called behind a rank test that has an else branch")
                    if not _has_rank_term(ancestor.test):
                        raise Refused("called behind a rank test that is not an `and` of terms")
                    self.rank_gates.add(id(ancestor))
            child = ancestor

    def _model_argument(self, call: cst.Call, scope: cst.CSTNode) -> None:
        assert type(call.func) is cst.Name
        function = self.names[call.func.value].function
        params = [p.name.value for p in function.params.params]
        args_value = _argument(call, params, "args")
        if type(args_value) is cst.Name:
            self.args_name = self.args_name or args_value.value
        if "model" not in params:
            return
        value = _argument(call, params, "model")
        if type(value) is not cst.Name:
            return
        assigned = [
            node
            for node in walk(scope, into_scopes=False)
            if type(node) is cst.Assign
            and any(
                type(t.target) is cst.Name and t.target.value == value.value for t in node.targets
            )
        ]
        own = scope.params.params if type(scope) is cst.FunctionDef else ()
        parameter = value.value in [p.name.value for p in own]
        # a model the caller may hold wrapped (DDP's forward is a collective per batch, and the
        # shards may have different batch counts): a parameter, or bound from a wrapper
        wrapped = (
            parameter
            or not assigned
            or any(
                type(node.value) is cst.Call and callee_name(node.value) in _WRAPPERS
                for node in assigned
            )
        )
        if wrapped:
            self.replacements[value] = unwrapped(value.value, self.quote)


def _argument(call: cst.Call, params: list[str], name: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    if name in params:
        position = params.index(name)
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if position < len(positional):
            return positional[position].value
    return None


class _Mover(cst.CSTTransformer):
    """Rebuild the outermost rank gate of a call path: rank terms out of the gates on the path,
    writes the gates protected back behind a global rank-0 test, the model unwrapped."""

    def __init__(self, sites: _CallSites, rank: cst.BaseExpression, tree: Tree) -> None:
        super().__init__()
        self.sites = sites
        self.rank = rank
        self.tree = tree
        self.on_path = {id(a) for call in sites.calls for a in [call, *tree.ancestors(call)]}

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        new = self.sites.replacements.get(original)
        return new if isinstance(new, cst.BaseExpression) else updated

    def leave_If(
        self, original: cst.If, updated: cst.If
    ) -> cst.BaseStatement | cst.FlattenSentinel[cst.BaseStatement]:
        if id(original) not in self.sites.rank_gates:
            return updated
        kept = [t for t in conjuncts(original.test) if not _excludes_others(t)]
        if not kept:
            suite = updated.body
            body: list[cst.BaseStatement]
            if type(suite) is cst.IndentedBlock:
                body = list(suite.body)
            elif type(suite) is cst.SimpleStatementSuite:  # ``if gate: call()``
                body = [cst.SimpleStatementLine(body=suite.body)]
            else:
                return updated
            if body:
                body[0] = body[0].with_changes(leading_lines=updated.leading_lines)
            return cst.FlattenSentinel(body)
        test = kept[0]
        for term in kept[1:]:
            test = cst.BooleanOperation(
                left=test,
                operator=cst.And(
                    whitespace_before=cst.SimpleWhitespace(" "),
                    whitespace_after=cst.SimpleWhitespace(" "),
                ),
                right=term,
            )
        return updated.with_changes(test=test)

    def on_leave(  # type: ignore[override]  # a statement may come back guarded
        self, original: cst.CSTNode, updated: cst.CSTNode
    ) -> cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNode]:
        result = super().on_leave(original, updated)
        if (
            isinstance(original, cst.BaseStatement)
            and id(original) not in self.on_path
            and self._under_moved_gate(original)
            and isinstance(result, cst.BaseStatement)
        ):
            return self._guard(original, result)
        return result

    def _under_moved_gate(self, statement: cst.CSTNode) -> bool:
        """The nearest enclosing statement is on a call path: the statement ran on rank 0
        alone before (it is inside the outermost rank gate) and on every rank now."""
        for ancestor in self.tree.ancestors(statement):
            if isinstance(ancestor, cst.BaseCompoundStatement):
                return id(ancestor) in self.on_path
        return False

    def _guard(self, original: cst.BaseStatement, result: cst.BaseStatement) -> cst.BaseStatement:
        if type(original) is cst.If and _excludes_others(original.test):
            return result
        calls = list(calls_in(original))
        functions = module_functions(self.tree.module)
        for call in calls:
            name = callee_name(call)
            if type(call.func) is cst.Name and name in functions and name not in self.sites.names:
                callee = functions[name]
                if is_eval_call(call) or any(is_write(c) for c in calls_in(callee)):
                    raise Refused(
                        f"the gate also runs {name}(), which would then run on every rank"
                    )
        if any(is_write(c) for c in calls):
            return _gate(result, self.rank)
        return result


def _check_writes_move(tree: Tree, sites: _CallSites, root: cst.If) -> None:
    """Every write under the rank gate that goes either lies in a statement off the call paths
    (which then runs behind its own rank-0 test) or stays behind another rank test; a write on
    the path itself (``json.dump(evaluate(...), f)``, ``with open(...) as f:`` around the call)
    would run on every rank."""
    on_path = {id(a) for call in sites.calls for a in [call, *tree.ancestors(call)]}
    for call in calls_in(root):
        if not is_write(call):
            continue
        statements = []
        for ancestor in tree.ancestors(call):
            if isinstance(ancestor, cst.BaseStatement):
                statements.append(ancestor)
            if ancestor is root:
                break
        if all(id(s) in on_path for s in statements):
            raise Refused(
                "a file written in the statement that calls it would be written by every rank"
            )


def _mover_root(tree: Tree, sites: _CallSites, call: cst.Call) -> cst.If | None:
    root = None
    for ancestor in tree.ancestors(call):
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            break
        if type(ancestor) is cst.If and id(ancestor) in sites.rank_gates:
            root = ancestor
    return root


class DistributedEvaluation(Rule):
    code = "DDP017"
    name = "distributed-evaluation"
    summary = (
        "opt-in: a rank-0 evaluation becomes a distributed one: each rank scores its shard, "
        "predictions are gathered in dataset order, metrics and files are exact."
    )
    rationale = __doc__
    default = False
    triggers = ("SequentialSampler",)
    examples = (
        Example(
            before=(
                "import numpy as np\n"
                "import os\n"
                "import torch\n"
                "from torch.utils.data import DataLoader, SequentialSampler\n"
                "\n"
                "\n"
                "def evaluate(args, model, dataset):\n"
                "    sampler = SequentialSampler(dataset)\n"
                "    loader = DataLoader(dataset, sampler=sampler, batch_size=8)\n"
                "    probs = []\n"
                "    for batch in loader:\n"
                "        probs.append(model(batch).cpu().numpy())\n"
                "    probs = np.concatenate(probs, 0)\n"
                "    return {'acc': float((probs > 0.5).mean())}\n"
                "\n"
                "\n"
                "def main(args, model, dataset):\n"
                "    if args.do_eval and int(os.environ.get('RANK', args.local_rank)) in [-1, 0]:\n"
                "        print(evaluate(args, model, dataset))\n"
            ),
            after=(
                "import numpy as np\n"
                "import os\n"
                "import torch\n"
                "from torch.utils.data import DataLoader, SequentialSampler\n"
                "\n"
                "\n"
                "def evaluate(args, model, dataset):\n"
                "    sampler = _ddpfix_eval_shard(dataset)\n"
                "    loader = DataLoader(dataset, sampler=sampler, batch_size=8)\n"
                "    probs = []\n"
                "    for batch in loader:\n"
                "        probs.append(model(batch).cpu().numpy())\n"
                "    probs = _ddpfix_gather_rows(sampler, probs)[0]\n"
                "    probs = np.concatenate(probs, 0)\n"
                "    return {'acc': float((probs > 0.5).mean())}\n"
                "\n"
                "\n"
                "def _ddpfix_eval_shard(dataset):\n"
                '    """ddpfix DDP017: this process\'s share of an evaluation set (every world_size-th example from\n'  # noqa: E501
                '    its rank on, no padding); the whole set in order without a process group, as before."""\n'  # noqa: E501
                "    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):\n"  # noqa: E501
                "        return torch.utils.data.SequentialSampler(dataset)\n"
                "    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()\n"  # noqa: E501
                "    return list(range(rank, len(dataset), world))\n"
                "\n"
                "\n"
                "def _ddpfix_gather_rows(shard, *columns):\n"
                '    """ddpfix DDP017: every process\'s per-batch arrays, gathered with their example indices and\n'  # noqa: E501
                '    put back in dataset order, on every rank; unchanged without a process group."""\n'  # noqa: E501
                "    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):\n"  # noqa: E501
                "        return columns\n"
                "    local = [np.concatenate(column, 0) if len(column) else None for column in columns]\n"  # noqa: E501
                "    shards = [None] * torch.distributed.get_world_size()\n"
                "    torch.distributed.all_gather_object(shards, (list(shard), local))\n"
                "    indices = np.concatenate([np.asarray(i, dtype=np.int64) for i, _ in shards])\n"
                '    order = np.argsort(indices, kind="stable")\n'
                "    gathered = []\n"
                "    for k in range(len(columns)):\n"
                "        rows = np.concatenate([c[k] for _, c in shards if c[k] is not None], 0)\n"
                "        if len(rows) != len(order):\n"
                '            raise RuntimeError("ddpfix: evaluation outputs and examples do not match one to one")\n'  # noqa: E501
                "        gathered.append([rows[order]])\n"
                "    return gathered\n"
                "\n"
                "\n"
                "def main(args, model, dataset):\n"
                "    if args.do_eval:\n"
                "        print(evaluate(args, model.module if hasattr(model, 'module') else model, dataset))\n"  # noqa: E501
            ),
            messages=(
                "evaluate(): every rank evaluates its shard; predictions are gathered in dataset "
                "order, metrics computed on the complete set, files written by rank 0",
                "the evaluation runs on every rank; writes stay on rank 0",
            ),
        ),
        Example(
            before=(
                "import numpy as np\n"
                "from torch.utils.data import DataLoader, DistributedSampler, SequentialSampler\n"
                "\n"
                "\n"
                "def evaluate(args, model, dataset):\n"
                "    sampler = (\n"
                "        SequentialSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset)\n"  # noqa: E501
                "    )\n"
                "    loader = DataLoader(dataset, sampler=sampler, batch_size=8)\n"
                "    losses = []\n"
                "    for batch in loader:\n"
                "        losses.append(model(batch).item())\n"
                "    return {'loss': float(np.mean(losses))}\n"
            ),
            reports=1,
            messages=(
                "evaluate(): evaluation not distributed: losses collects something other than per-"
                "batch arrays (.numpy()): its rows cannot be matched to examples",
            ),
        ),
        Example(
            before=(
                "def train(args, model, loader):\n"
                "    for batch in loader:\n"
                "        model(batch).backward()\n"
            ),
            messages=(),
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        functions = module_functions(tree.module)
        candidates = [
            f
            for f in functions.values()
            if any(callee_name(c) == "SequentialSampler" for c in calls_in(f))
        ]
        if not candidates or SHARD in functions:
            return
        if "init_process_group" not in tree.code and "local_rank" not in tree.code:
            return  # DataParallel only: no process group (until DDP016 converts the script)
        evaluations: dict[str, _Evaluation] = {}
        for function in candidates:
            try:
                evaluations[function.name.value] = _Evaluation(tree, function)
            except Refused as why:
                ctx.report(function, f"{function.name.value}(): evaluation not distributed: {why}")
                return
        try:
            self._fix(ctx, evaluations)
        except Refused as why:
            first = next(iter(evaluations.values())).function
            ctx.report(first, f"{first.name.value}(): evaluation not distributed: {why}")

    def _fix(self, ctx: RuleContext, evaluations: dict[str, _Evaluation]) -> None:
        tree = ctx.tree
        quote = preferred_quote(tree.code)
        if not module_binds(tree, "np", imports_only=True) or not module_binds(
            tree, "torch", imports_only=True
        ):
            raise Refused("the script does not import numpy as np and torch")
        sites = _CallSites(tree, evaluations, quote)
        sites.collect()
        args_name = sites.args_name
        needs_args = any(e.needs_args for e in evaluations.values())
        if (sites.rank_gates or needs_args) and "local_rank" not in tree.code:
            raise Refused("no args.local_rank to build the rank-0 test of its writes from")
        if sites.rank_gates and args_name is None:
            raise Refused("no `args` passed at the call sites to build the rank-0 test from")
        replacements: dict[cst.CSTNode, object] = {}
        for evaluation in evaluations.values():
            params = [p.name.value for p in evaluation.function.params.params]
            if needs_args and evaluation.needs_args and "args" not in params:
                raise Refused("it writes files and has no `args` parameter for the rank-0 test")
            rank_inner = global_rank_zero(cst.Name("args"), quote)
            for node, new in evaluation.replacements.items():
                replacements[node] = _gate(node, rank_inner) if new == "gate" else new  # type: ignore[arg-type]
        rank = global_rank_zero(cst.Name(args_name or "args"), quote)
        roots: dict[int, cst.If] = {}
        for call in sites.calls:
            root = _mover_root(tree, sites, call)
            if root is not None:
                roots[id(root)] = root
        for root in roots.values():
            _check_writes_move(tree, sites, root)
            mover = _Mover(sites, rank, tree)
            new = root.visit(mover)
            replacements[root] = list(new.nodes) if type(new) is cst.FlattenSentinel else new
        inside = {id(a) for r in roots.values() for a in _descendants(r)}
        for name_node, new in sites.replacements.items():
            if id(name_node) not in inside:
                replacements[name_node] = new
        last = max(
            (e.function for e in evaluations.values()),
            key=lambda f: tree.module.body.index(f) if f in tree.module.body else -1,
        )
        if last not in tree.module.body:
            raise Refused("the evaluation is not a module-level function")
        with_sum = any(e.sums for e in evaluations.values())
        self._check_call_order(tree, sites, last)
        previous = replacements.get(last)
        added = Around(after=tuple(helpers(with_sum)))
        replacements[last] = previous.merged(added) if isinstance(previous, Around) else added
        names = ", ".join(f"{name}()" for name in evaluations)
        ctx.fix(
            next(iter(evaluations.values())).function,
            f"{names}: every rank evaluates its shard; predictions are gathered in dataset "
            "order, metrics computed on the complete set, files written by rank 0",
            replacements,  # type: ignore[arg-type]
            also=[
                *(
                    (e.function, f"{e.function.name.value}() evaluates this rank's shard")
                    for e in list(evaluations.values())[1:]
                ),
                *(
                    (root, "the evaluation runs on every rank; writes stay on rank 0")
                    for root in roots.values()
                ),
                *(
                    (node, "every rank evaluates the unwrapped model")
                    for node in sites.replacements
                    if id(node) not in inside
                ),
            ],
        )

    @staticmethod
    def _check_call_order(tree: Tree, sites: _CallSites, last: cst.FunctionDef) -> None:
        position = tree.module.body.index(last)
        for call in sites.calls:
            top = call
            for ancestor in tree.ancestors(call):
                if type(ancestor) is cst.Module:
                    break
                top = ancestor
            if isinstance(top, cst.BaseStatement) and top in tree.module.body:
                if not isinstance(top, (cst.FunctionDef, cst.ClassDef)):
                    if tree.module.body.index(top) < position:
                        raise Refused("called at module level before the helpers would exist")


def _descendants(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    return walk(node, into_scopes=True)
