"""The rank model: which processes run each statement, and what that does to the other ranks.

A launched job has, as far as a legacy script can tell, four kinds of process: a lone process
started without a launcher (``SINGLE``, local rank -1), global rank 0 (``RANK0``), local rank 0 of
another node (``NODE0``: a ``local_rank in [-1, 0]`` gate admits it, ``get_rank() == 0`` does
not), and every other rank (``OTHER``). For a statement, :meth:`RankModel.runs` says, per kind,
whether it runs there (True), never runs there (False) or depends on data (None), from the ``if``
tests around it (``else`` branches negated) and from the call sites of the function holding it
(a function every call of which is behind a rank-0 gate runs on rank 0 alone).

The rules decide with this model, and the engine checks every fix against it
(:func:`violations`, registered as the rules' post-condition): a rewrite must not make

- a collective (``torch.distributed``, accelerate, the HF ``Trainer``: :data:`COLLECTIVES`)
  reached by a strict subset of the launched ranks (the others hang or crash);
- a name bound on a strict subset of the ranks while other ranks read it (``UnboundLocalError``
  there, or ranks that diverge: ``nb_tr_steps`` reset on rank 0 alone desynchronises gradient
  accumulation);
- a file written by a strict subset of the ranks and read by the others with no barrier between
  (in a dormant version, :func:`rank_dormant`, a barrier behind ``is_initialized()`` is none: no
  process group exists there, yet a ``RANK`` gate still splits the processes);
- an attribute read on a name holding a ``DistributedDataParallel`` wrapper, on a rank that
  wraps, that the wrapper does not have (``model._run_batch(x)``, ``model.config``:
  AttributeError there; :data:`WRAPPER_API`).
- state that rank 0 alone updates (``is_early_stop[task] = 1``, ``patience += 1`` in its
  evaluation gate) and every rank reads to decide a loop exit, in a loop that joins a collective
  at every step (``patches/_divergence.py``): the ranks leave, or skip steps, apart.
- in a dormant version with no process group, whose processes are lone copies of one run, an
  exit (``return``, ``break``) or the state deciding one that a ``RANK`` gate keeps from the
  other processes, out of a loop that trains on: rank 0 stops early, the others train every
  epoch and save over its model (nothing hangs; :data:`LONE` ends such a key).

Violations are compared before and after a fix; one that was already there is the script's own
and is left to the rules that report it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import libcst as cst

from patcher.rule import Reason
from patcher.tree import Tree
from patches._args import keyword_value, positional_args, positional_values
from patches._counters import Lazy, lazy_counters, sign_truth
from patches._gates import OTHER as _OTHER
from patches._gates import RANK0 as _RANK0
from patches._gates import SINGLE as _SINGLE
from patches._gates import calls_collectives, logic, rank_comparison, rank_zero_functions
from patches._gates import truth as _local_truth
from patches._names import BINDERS, SCOPES, bound_names, filled_name, is_read, walk
from patches._syntax import (
    callee_name,
    dominates,
    dotted_name,
    is_collective_call,
    is_save_call,
    module_functions,
    string_value,
)

SINGLE, RANK0, NODE0, OTHER = "single", "rank0", "node0", "other"
LAUNCHED = (RANK0, NODE0, OTHER)
# Booleans that are true on global rank 0 / on each node's local rank 0 (attribute or call name).
_GLOBAL_MAIN = frozenset(
    {"is_main_process", "is_world_process_zero", "is_master", "is_rank_0", "is_first_worker"}
    | {"is_world_master"}  # transformers <= 3's name of Trainer.is_world_process_zero()
)
# Plain names scripts bind to "this process is global rank 0" (nanoGPT's ``master_process =
# ddp_rank == 0``, with ``ddp_rank`` read from RANK), tested as they are: ``if master_process:``.
_MAIN_NAMES = frozenset({"master_process", "is_master", "is_main_process", "is_master_process"})
_LOCAL_MAIN = frozenset({"is_local_main_process", "is_local_process_zero"})
_GLOBAL_RANK_ATTRS = frozenset({"rank", "global_rank", "world_rank"})
# What reads a file back: torch.load, from_pretrained, open() without a write mode, np.load ...
_READS = frozenset({"load", "from_pretrained", "load_state_dict_from", "read_csv", "open"})


def _as_local(kind: str) -> int:
    return {SINGLE: _SINGLE, RANK0: _RANK0, NODE0: _RANK0, OTHER: _OTHER}[kind]


def _as_global(kind: str) -> int:
    return {SINGLE: _SINGLE, RANK0: _RANK0, NODE0: _OTHER, OTHER: _OTHER}[kind]


def _global_flag(node: cst.BaseExpression) -> str | None:
    """``accelerator.is_main_process`` / ``trainer.is_world_process_zero()`` → "global";
    ``is_local_main_process`` → "local"."""
    if type(node) is cst.Name and node.value in _MAIN_NAMES:
        return "global"
    target = node.func if type(node) is cst.Call and not node.args else node
    name = None
    if type(target) is cst.Attribute:
        name = target.attr.value
    elif type(target) is cst.Name and type(node) is cst.Call:
        name = target.value
    if name in _GLOBAL_MAIN:
        return "global"
    if name in _LOCAL_MAIN:
        return "local"
    return None


def _rank_attr_comparison(node: cst.BaseExpression) -> cst.Comparison | None:
    """``args.rank == 0`` rewritten as ``args.local_rank == 0``, to be judged on the global rank."""
    if type(node) is not cst.Comparison or len(node.comparisons) != 1:
        return None
    left = node.left
    if type(left) is cst.Attribute and left.attr.value in _GLOBAL_RANK_ATTRS:
        return node.with_changes(left=left.with_changes(attr=cst.Name("local_rank")))
    return None


def truth(
    node: cst.BaseExpression,
    kind: str,
    known: Mapping[str, bool] | None = None,
    *,
    dormant: bool = False,
    counters: Collection[str] | Lazy = (),
) -> bool | None:
    """The value of condition ``node`` in a process of ``kind``; None when it depends on data.

    Local-rank tests are judged on the local rank (``NODE0`` is local rank 0), global ones
    (``get_rank()``, ``RANK``, ``args.rank``, ``is_main_process``) on the global rank. In a
    ``dormant`` script (:func:`rank_dormant`) every process keeps ``local_rank == -1``, so
    local-rank tests are judged as in a lone process. ``counters`` are names known to hold
    ints >= 0 (``patches/_counters.py``): a negative test on them is False in every process."""
    known = known or {}
    counted = sign_truth(node, counters)
    if counted is not None:
        return counted
    if dormant and rank_comparison(node) is not None:
        return _local_truth(node, _SINGLE, known)
    flag = _global_flag(node)
    if flag is not None:
        if kind == SINGLE:
            return True
        return kind == RANK0 or (flag == "local" and kind == NODE0)
    renamed = _rank_attr_comparison(node)
    if renamed is not None:
        return _local_truth(renamed, _as_global(kind), known)
    if isinstance(node, (cst.BooleanOperation, cst.UnaryOperation)):
        return logic(
            node, lambda term: truth(term, kind, known, dormant=dormant, counters=counters)
        )
    local = _local_truth(node, _as_local(kind), known)
    if kind == NODE0 and _mentions_global_rank(node):
        return _local_truth(node, _OTHER, known)
    return local


def _mentions_global_rank(node: cst.CSTNode) -> bool:
    from patches._gates import global_rank_source

    if type(node) is cst.Comparison:
        return global_rank_source(node.left) is not None
    return False


@dataclass(frozen=True)
class Violation:
    """A post-condition broken in one version of a module; ``key`` is stable across versions,
    ``node`` is where it shows in this version."""

    key: tuple[str, ...]
    message: str
    node: cst.CSTNode | None = field(default=None, compare=False)


class RankModel:
    """The rank model of one module version (build it with :func:`model`)."""

    def __init__(self, tree: Tree, *, dormant: bool = False) -> None:
        self.tree = tree
        self.dormant = dormant
        self.functions = module_functions(tree.module)
        only, _sometimes = rank_zero_functions(tree)
        # Behind a dormant local-rank gate a function runs everywhere; a mixed script with
        # global gates too loses their function-level precision (judged more strictly).
        self._rank_zero_only = set() if dormant else only
        self._runs: dict[tuple[int, str], bool | None] = {}
        self._paths: dict[int, tuple[tuple[cst.BaseExpression, bool], ...]] = {}
        self._truths: dict[tuple[int, str], bool | None] = {}
        self._assigns: dict[tuple[int, str], list[cst.BaseExpression]] | None = None
        self._module_calls: list[cst.Call] | None = None
        self._callers: dict[str, set[str]] | None = None
        #: Whether a process group exists on every launched rank (:func:`group_exists`).
        self.group: bool | None = None
        #: Answers about path expressions (``patches/_shared_files.py``), by kind and node id.
        self.paths_kept: dict[tuple[str, int], tuple[cst.CSTNode, Any]] = {}
        #: The violations of this version by kind, as :func:`violations` computes them.
        self.violations: dict[str, dict[tuple[str, ...], Violation]] = {}

    # --- who runs what ---------------------------------------------------------------------

    def conditions(self, node: cst.CSTNode) -> tuple[tuple[cst.BaseExpression, bool], ...]:
        """The ``if`` tests that decide whether ``node`` runs, within its function, each with
        the value it must have (False in an ``else``/``elif``); outermost first."""
        chain: list[cst.CSTNode] = []
        current: cst.CSTNode | None = node
        while current is not None and id(current) not in self._paths:
            chain.append(current)
            current = self.tree.parent(current)
        found = self._paths[id(current)] if current is not None else ()
        for child in reversed(chain):
            parent = self.tree.parent(child)
            kind = type(parent)  # concrete classes: no ABCMeta instance check
            if parent is None or (kind in SCOPES and not self._made_in_frame(parent)):
                found = ()
            elif kind is cst.If or kind is cst.IfExp:
                branch = cast("cst.If | cst.IfExp", parent)
                if child is branch.body:
                    found = (*found, (branch.test, True))
                elif child is branch.orelse:
                    found = (*found, (branch.test, False))
            self._paths[id(child)] = found
        return found

    def _made_in_frame(self, scope: cst.CSTNode) -> bool:
        """Whether ``scope`` is a lambda, or a function defined inside a function: its body
        can only run where the ``lambda``/``def`` ran (the object exists nowhere else), so it
        keeps the tests around its creation (a lambda registered as a handler inside the
        rank-0 gate runs on rank 0 alone). A top-level function or a class starts afresh."""
        kind = type(scope)
        if kind is cst.Lambda:
            return True
        return kind is cst.FunctionDef and type(self.tree.scope(scope)) is cst.FunctionDef

    def scope(self, node: cst.CSTNode) -> cst.FunctionDef | cst.Module:
        """The function (or module) whose frame runs ``node`` (the tree's own scope notion)."""
        return self.tree.scope(node)

    def _truth(self, test: cst.BaseExpression, kind: str) -> bool | None:
        key = (id(test), kind)
        if key not in self._truths:
            counters = self.counters(test)
            self._truths[key] = truth(test, kind, dormant=self.dormant, counters=counters)
        return self._truths[key]

    def counters(self, node: cst.CSTNode) -> Lazy:
        """The non-negative counters (``patches/_counters.py``) of the frame ``node`` is
        evaluated in, computed when a test needs them; none inside a class body or a lambda."""
        frame: cst.FunctionDef | cst.Module = self.tree.module
        for ancestor in self.tree.ancestors(node):
            if type(ancestor) is cst.FunctionDef:
                frame = ancestor
                break
            if type(ancestor) in (cst.ClassDef, cst.Lambda):
                return Lazy(frozenset)
        return lazy_counters(frame)

    def dead(self, node: cst.CSTNode) -> bool:
        """Whether no process ever runs ``node``, when its function runs: a test around it is
        decided against it everywhere (UniXcoder's ``if patience == -1: break`` on a counter
        that never goes below zero)."""
        return all(self.runs(node, kind) is False for kind in (SINGLE, RANK0, NODE0, OTHER))

    def runs(self, node: cst.CSTNode, kind: str) -> bool | None:
        """Whether a process of ``kind`` runs ``node`` when its function runs: True, False, or
        None (it depends on data)."""
        key = (id(node), kind)
        if key in self._runs:
            return self._runs[key]
        value: bool | None = True
        scope = self.scope(node)
        if (
            type(scope) is cst.FunctionDef
            and scope.name.value in self._rank_zero_only
            and kind in (NODE0, OTHER)
        ):
            value = False
        else:
            for test, wanted in self.conditions(node):
                got = self._truth(test, kind)
                if got is None:
                    value = None
                elif got != wanted:
                    value = False
                    break
        self._runs[key] = value
        return value

    def launched(self, node: cst.CSTNode) -> dict[str, bool | None]:
        return {kind: self.runs(node, kind) for kind in (RANK0, OTHER)}

    def subset(self, node: cst.CSTNode) -> bool:
        """Whether some launched ranks may run ``node`` while others never do."""
        values = self.launched(node).values()
        return False in values and any(v is not False for v in values)

    # --- collectives -----------------------------------------------------------------------

    def collective(self, call: cst.Call, kind: str) -> str | None:
        """The collective ``call`` joins in a process of ``kind`` (itself, or one reached
        through a module function), as a name; None when it joins none."""
        if is_collective_call(call):
            return dotted_name(call.func) or callee_name(call) or "a collective"
        name = callee_name(call)
        if type(call.func) is cst.Name and name in self.functions:
            if calls_collectives(
                self.functions[name],
                self.functions,
                kind=_SINGLE if self.dormant else _as_local(kind),
                call=call,
            ):
                return f"{name}()"
        return None

    def carried_out(self, region: cst.CSTNode) -> set[str]:
        """Names bound inside ``region`` (or whose items it assigns: ``d[k] = v``) whose value a
        read outside it (in the same function) may see: no fresh binding outside the region
        comes first. Skipping ``region`` on some ranks would leave those reads unbound or out of
        step there (a ``KeyError`` for the item rank 0 alone put in)."""
        scope = self.scope(region)
        inside: set[str] = set()
        filled: set[str] = set()  # ``handles[task] = open(...)``: a container read later
        for node in walk(region, into_scopes=True):
            if type(node) in _BINDING:
                inside.update(n.value for n in bound_names(node))
            container = filled_name(node)
            if container is not None:
                filled.add(container)
        filled -= inside
        inside |= filled
        if not inside:
            return set()
        sites = _binding_sites(self)
        carried = set()
        for name in self.tree.nodes(cst.Name):
            if name.value not in inside or name.value in carried:
                continue
            if self.tree.contains(region, name) or self.scope(name) is not scope:
                continue
            if not is_read(self.tree, name):
                continue
            if self.tree.order(name) < self.tree.order(region) and not _shared_loop(
                self.tree, region, name
            ):
                continue  # runs before the region: cannot see what it binds
            outside = [
                b
                for b in sites.get((id(scope), name.value), [])
                if not self.tree.contains(region, b)
                # the container made before the region is the one it fills
                and not (name.value in filled and self.tree.after(region, b))
            ]
            kind = OTHER if self.runs(name, OTHER) is not False else RANK0
            if not _fresh(self, name, outside, kind, [region]):
                carried.add(name.value)
        return carried

    def module_calls(self) -> list[cst.Call]:
        """Calls of module functions by plain name (``train(...)``), in source order."""
        if self._module_calls is None:
            self._module_calls = [
                c
                for c in self.tree.nodes(cst.Call)
                if type(c.func) is cst.Name and c.func.value in self.functions
            ]
        return self._module_calls

    def callers(self, name: str) -> set[str]:
        """``name`` and every module function that calls it, transitively."""
        if self._callers is None:
            direct: dict[str, set[str]] = {}
            for call in self.module_calls():
                scope = self.scope(call)
                if type(scope) is cst.FunctionDef and type(call.func) is cst.Name:
                    direct.setdefault(call.func.value, set()).add(scope.name.value)
            self._callers = direct
        found, pending = {name}, [name]
        while pending:
            for caller in self._callers.get(pending.pop(), ()):
                if caller not in found:
                    found.add(caller)
                    pending.append(caller)
        return found

    # --- files -----------------------------------------------------------------------------

    def path_words(self, expression: cst.CSTNode, depth: int = 0) -> set[str]:
        """The file-name-like string literals a path expression is made of, following names to
        their assignments in the same function (``os.path.join(out, "model.bin")``)."""
        words: set[str] = set()
        for node in walk(expression, into_scopes=True):
            kind = type(node)  # concrete classes: no ABCMeta instance check
            text = string_value(node) if kind is cst.SimpleString else None
            if text and len(text) > 3 and any(c in text for c in "./-_"):
                words.add(text.strip("/").rsplit("/", 1)[-1])
            if kind is cst.Name and depth < 3:
                for value in self._assigned_values(cast(cst.Name, node)):
                    words |= self.path_words(value, depth + 1)
        return {w for w in words if w and "{" not in w and "%" not in w}

    def _assigned_values(self, name: cst.Name) -> list[cst.BaseExpression]:
        if self._assigns is None:
            self._assigns = {}
            for assign in self.tree.nodes(cst.Assign):
                scope = id(self.scope(assign))
                for target in assign.targets:
                    for bound in bound_names(target):
                        self._assigns.setdefault((scope, bound.value), []).append(assign.value)
        return self._assigns.get((id(self.scope(name)), name.value), [])


def model(tree: Tree) -> RankModel:
    """The model of ``tree``, built once per tree version."""
    return tree.memo(model, lambda: RankModel(tree))


# --- post-conditions ------------------------------------------------------------------------


def _code(tree: Tree, node: cst.CSTNode) -> str:
    """A statement's text, without layout, as a key that survives other rewrites; for a
    compound statement only its header (rendering a whole loop per key was the model's cost)."""
    if isinstance(node, (cst.If, cst.While)):
        return "if " + _code(tree, node.test)
    if type(node) is cst.For:
        return f"for {_code(tree, node.target)} in {_code(tree, node.iter)}"
    if isinstance(node, (cst.With, cst.Try, cst.FunctionDef, cst.ClassDef)):
        return type(node).__name__ + str(tree.order(node) - tree.order(tree.scope(node)))
    return " ".join(tree.module.code_for_node(node).split())


def _where(m: RankModel, node: cst.CSTNode) -> str:
    scope = m.scope(node)
    return scope.name.value if type(scope) is cst.FunctionDef else "<module>"


def _ranks_text(values: Mapping[str, bool | None]) -> str:
    return "rank 0" if values.get(RANK0) is not False else "ranks other than 0"


def _collective_violations(m: RankModel) -> Iterator[Violation]:
    tree = m.tree
    partial: list[tuple[cst.Call, dict[str, bool | None], str]] = []
    for call in tree.nodes(cst.Call):
        runs = m.launched(call)
        if False not in runs.values() or all(v is False for v in runs.values()):
            continue
        kind = RANK0 if runs[RANK0] is not False else OTHER
        joined = m.collective(call, kind)
        if joined is not None:
            partial.append((call, runs, joined))
    paired = _paired(m, partial)
    for call, runs, joined in partial:
        if id(call) in paired:
            continue
        yield Violation(
            ("collective", _where(m, call), _code(tree, call)),
            f"{joined} is a collective and only {_ranks_text(runs)} would reach it "
            "(the others never join: hang or crash)",
        )


def _paired(
    m: RankModel, partial: Sequence[tuple[cst.Call, dict[str, bool | None], str]]
) -> set[int]:
    """The template's barrier pair: ``if local_rank not in [-1, 0]: barrier()`` before a step
    and ``if local_rank == 0: barrier()`` after it, in one function. Each half is reached by a
    strict subset of the ranks, together by every rank once: rank 0 does the step while the
    others wait. Calls of one collective whose rank sets complement each other pair up, except
    a rank-0 half that rank 0 reaches only on some of the paths on which the others wait
    (:func:`patches._barriers.unsure_halves`: ``if not args.do_predict:`` around it alone)."""
    from patches._barriers import unsure_halves  # it builds on this module

    found: set[int] = set()
    unsure = unsure_halves(m) if partial else set()
    for i, (first, runs, joined) in enumerate(partial):
        if id(first) in found or id(first) in unsure:
            continue
        for second, other, name in partial[i + 1 :]:
            if id(second) in found or name != joined or m.scope(second) is not m.scope(first):
                continue
            if id(second) in unsure:
                continue
            if all((runs[k] is False) != (other[k] is False) for k in (RANK0, OTHER)):
                found |= {id(first), id(second)}
                break
    return found


def _binding_sites(m: RankModel) -> dict[tuple[int, str], list[cst.CSTNode]]:
    sites: dict[tuple[int, str], list[cst.CSTNode]] = {}
    for node in m.tree.nodes(*BINDERS):
        if type(node) is cst.Param:
            continue
        scope = m.scope(node)
        for name in bound_names(node):
            sites.setdefault((id(scope), name.value), []).append(node)
    return sites


def _binding_violations(m: RankModel) -> Iterator[Violation]:
    """A name that some launched ranks bind and others never bind, read by those others."""
    tree = m.tree
    sites = _binding_sites(m)
    # a parameter is bound on entry, on every rank: a rebinding some ranks skip cannot leave
    # it unbound (``def train(args, model): if args.local_rank != -1: model = DDP(model)``)
    entry = {
        (id(m.scope(param)), name.value)
        for param in tree.nodes(cst.Param)
        for name in bound_names(param)
    }
    partial: dict[tuple[int, str], set[str]] = {}
    for key, bindings in sites.items():
        skipped = set()
        for kind in (RANK0, OTHER):
            if key not in entry and all(m.runs(b, kind) is False for b in bindings):
                skipped.add(kind)  # unbound there
            elif any(
                m.runs(b, kind) is False
                and any(m.runs(b, k) is not False for k in (RANK0, OTHER))
                and not _alternative(tree, b, key[1])
                for b in bindings
            ):
                skipped.add(kind)  # an update that kind skips: its value diverges
        if skipped:
            partial[key] = skipped
    if not partial:
        return
    seen: set[tuple[str, ...]] = set()
    names = {name for _, name in partial}
    for name in tree.nodes(cst.Name):
        if name.value not in names:
            continue  # most reads: no scope needed
        scope = m.scope(name)
        kinds = partial.get((id(scope), name.value))
        if not kinds or not is_read(tree, name):
            continue
        bindings = [
            b
            for b in sites[(id(scope), name.value)]
            if tree.order(b) < tree.order(name) or _shared_loop(tree, b, name)
        ]
        if not bindings:
            continue  # read before any binding: the script's own problem, on every rank
        for kind in kinds:
            if m.runs(name, kind) is False:
                continue
            unbound = (id(scope), name.value) not in entry and all(
                m.runs(b, kind) is False for b in bindings
            )
            skipped = [b for b in bindings if m.runs(b, kind) is False]
            if not unbound and (
                _fresh(m, name, bindings, kind, skipped)
                or not _feeds_training(tree, name)
                or not any(
                    m.runs(b, kind) is False
                    and any(m.runs(b, k) is not False for k in (RANK0, OTHER))
                    and not _alternative(tree, b, name.value)
                    for b in bindings
                )
            ):
                continue
            statement = tree.statement(name)
            key = ("binding", _where(m, name), name.value, _code(tree, statement), kind)
            if key in seen:
                continue
            seen.add(key)
            others = "rank 0" if kind == RANK0 else "the other ranks"
            what = "never binds it" if unbound else "skip some of its updates"
            yield Violation(
                key,
                f"{name.value!r} is read on {others}, which {what} "
                f"({'UnboundLocalError' if unbound else 'ranks step out of sync'})",
                name,
            )


#: Calls that train: what every rank must do in lockstep.
# What binds a name in a function's body (a parameter binds it on entry), as concrete types.
_BINDING = frozenset(BINDERS) - {cst.Param}
TRAINING_CALLS = frozenset({"backward", "step", "zero_grad", "clip_grad_norm_"})


def _feeds_training(tree: Tree, read: cst.Name) -> bool:
    """Whether ``read`` decides or feeds a training step: it is in the test of an ``if``/
    ``while`` whose body trains, or in a statement that trains (``(loss / n).backward()``)."""
    statement = tree.statement(read)
    if isinstance(statement, (cst.If, cst.While)) and tree.contains(statement.test, read):
        body = statement.body
    else:
        body = statement
    return any(callee_name(call) in TRAINING_CALLS for call in _calls(body))


def _shared_loop(tree: Tree, first: cst.CSTNode, second: cst.CSTNode) -> bool:
    loop = innermost_loop(tree, first)
    while loop is not None:
        if tree.contains(loop, second):
            return True
        loop = innermost_loop(tree, loop)
    return False


def _fresh(
    m: RankModel,
    read: cst.Name,
    bindings: Sequence[cst.CSTNode],
    kind: str,
    against: Sequence[cst.CSTNode] = (),
) -> bool:
    """Whether ``read`` sees a value this process itself just bound: a plain assignment (or a
    ``for``/``with`` target) that runs there, before the read on every path to it, inside every
    loop that holds both the read and one of the ``against`` places (so an update from an
    earlier iteration cannot reach the read). ``x += 1`` keeps the old value."""
    tree = m.tree
    loops = [a for a in tree.ancestors(read) if type(a) is cst.For or type(a) is cst.While]
    scope = m.scope(read)
    loops = [loop for loop in loops if tree.contains(scope, loop)]
    for binding in bindings:
        if type(binding) is cst.AugAssign or m.runs(binding, kind) is False:
            continue
        if type(binding) is cst.For:
            if not tree.contains(binding.body, read):
                continue
        elif not tree.after(read, binding):
            continue
        elif not dominates(tree, binding, read):
            decider = _deciding_if(tree, binding)
            if (
                decider is None
                or tree.contains(decider, read)
                or not dominates(tree, decider, read)
                or not _alternative(tree, binding, read.value)
            ):
                continue
            binding = decider  # ``if ...: x = a`` / ``else: x = b``, then read ``x``
        if any(
            not tree.contains(loop, binding) and any(tree.contains(loop, g) for g in against)
            for loop in loops
        ):
            continue
        return True
    return False


def _deciding_if(tree: Tree, node: cst.CSTNode) -> cst.If | None:
    """The innermost ``if`` around ``node`` in its function."""
    for ancestor in tree.ancestors(node):
        if isinstance(ancestor, SCOPES):
            return None
        if type(ancestor) is cst.If:
            return ancestor
    return None


def innermost_loop(tree: Tree, node: cst.CSTNode) -> cst.CSTNode | None:
    """The ``for``/``while`` loop ``node`` is in, within its own function (None outside one)."""
    for ancestor in tree.ancestors(node):
        kind = type(ancestor)  # concrete classes: no ABCMeta instance check
        if kind is cst.For or kind is cst.While:
            return ancestor
        if kind in SCOPES:
            return None
    return None


def _alternative(tree: Tree, binding: cst.CSTNode, name: str) -> bool:
    """Whether the ``if`` that decides ``binding`` binds ``name`` in its other branch too
    (``sampler = Random(...)`` / ``else: sampler = Distributed(...)``)."""
    child = binding
    for ancestor in tree.ancestors(binding):
        if isinstance(ancestor, SCOPES):
            return False
        if type(ancestor) is cst.If:
            other = ancestor.orelse if child is ancestor.body else ancestor.body
            if other is None:
                return False
            return any(
                n.value == name
                for node in walk(other, into_scopes=True)
                if isinstance(node, BINDERS)
                for n in bound_names(node)
            )
        child = ancestor
    return False


def _reads_file(call: cst.Call) -> bool:
    name = callee_name(call)
    if name not in _READS:
        return False
    return not (name == "open" and is_save_call(call))


#: The last part of the key of a violation of lone copies (:func:`_exit_violations`): keyed
#: apart from the hang the same exit is once the processes synchronise, so that withdrawing the
#: fix that made them synchronise (DDP001 waking the rank) removes the hang, and the split that
#: the dormant version is left with is pinned on the fixes that gate on RANK next.
LONE = "lone copies"


def _exit_violations(m: RankModel) -> Iterator[Violation]:
    """A ``return`` or ``break`` that only some ranks take, out of a loop or function that
    synchronises (a ``backward()``, whose DDP gradient all-reduce every rank must join, or a
    collective): the ranks that stay run their next one alone.

    In a dormant version whose processes are lone copies there (no process group:
    :func:`patches._divergence.lone_copies`), nothing waits and nothing hangs, but an exit that
    a ``RANK`` gate keeps from the other processes, out of code that trains on after it
    (:func:`patches._divergence.trains_past`: rank 0's early stop), splits identical runs: the
    others train to the end and save last, over rank 0's early-stopped model."""
    from patches._divergence import dormant_split, lone_copies, told_apart, trains_past

    tree = m.tree
    for node in tree.nodes(cst.Return, cst.Break):
        if not m.subset(node):
            continue
        left = innermost_loop(tree, node) if type(node) is cst.Break else m.scope(node)
        if left is None:
            continue
        what = "leaves the loop" if type(node) is cst.Break else "returns"
        only = f"only {_ranks_text(m.launched(node))} {what} here"
        key = ("exit", _where(m, node), _code(tree, tree.statement(node)))
        if lone_copies(m):
            if told_apart(m, node) and trains_past(m, node, left):
                why = f"{only}, out of code that trains on after it{dormant_split(m, 'takes it')}"
                yield Violation((*key, LONE), why, node)
        elif synchronises(m, left):
            yield Violation(
                key,
                f"{only}, out of code that synchronises: the other ranks wait for it in their "
                "next collective (hang)",
                node,
            )


def synchronises(m: RankModel, region: cst.CSTNode) -> bool:
    """Whether ``region`` (a loop, a function, the module) has a point every rank must reach
    together: a ``backward()`` whose DDP gradient all-reduce every rank joins, or a collective
    that the other ranks run."""
    return any(
        (callee_name(call) == "backward" and _gradients_synchronised(m))
        or (is_collective_call(call) and m.runs(call, OTHER) is not False)
        for call in _calls(region)
    )


def _gradients_synchronised(m: RankModel) -> bool:
    """Whether ``backward()`` may all-reduce gradients: always with a live rank; in a dormant
    version only when a DDP wrap or a process group is set up under the launcher anyway
    (otherwise each process is a lone copy and its backward waits for nobody)."""
    if not m.dormant:
        return True
    return any(
        callee_name(call) in _GROUP_SETUP and m.runs(call, RANK0) is not False
        for call in m.tree.nodes(cst.Call)
    )


def group_exists(m: RankModel) -> bool:
    """Whether every launched process may hold a process group: always with a live rank (the
    rules take the rank to reach the script); in a dormant version only when the script calls
    ``init_process_group`` somewhere both rank 0 and the others may run, directly or through
    the helpers calling it (behind ``local_rank != -1`` it runs nowhere: each process is a lone
    copy, ``is_initialized()`` is False there), or nowhere at all (a module of functions whose
    caller sets the group up, or not: unknown here)."""
    if not m.dormant:
        return True
    if m.group is None:
        from patches._shared_files import every_rank  # it builds on this module

        setups = [c for c in m.tree.nodes(cst.Call) if callee_name(c) == "init_process_group"]
        # none here: the group is set up elsewhere (the caller's module) or nowhere; which
        # one this file cannot tell, so its barriers are taken to run, as with a live rank.
        # every_rank follows a helper's call sites: ``if args.local_rank != -1: setup(args)``
        m.group = not setups or any(every_rank(m, call) for call in setups)
    return m.group


#: Calls after which a backward may all-reduce: a DDP wrap, or a process group that a wrap
#: elsewhere (a helper in another module) can use.
_GROUP_SETUP = frozenset({"DistributedDataParallel", "init_process_group"})


def write_path(call: cst.Call) -> cst.BaseExpression | None:
    """The path a save call writes: ``torch.save(obj, path)``, ``np.save(path, array)``,
    ``open(path, "w")``, ``x.save_pretrained(path)``."""
    for name in ("f", "file", "path", "save_directory"):
        if (value := keyword_value(call, name)) is not None:
            return value
    positional = positional_values(call)
    numpy = type(call.func) is cst.Attribute and dotted_name(call.func.value) in ("np", "numpy")
    if callee_name(call) == "save" and len(positional) > 1 and not numpy:
        return positional[1]  # torch.save(obj, path); numpy's save(path, array) names it first
    return positional[0] if positional else None


def shared_reads(m: RankModel) -> Iterator[tuple[cst.Call, cst.Call, str]]:
    """(read, write, file name): a file that a strict subset of the launched ranks writes and
    that ranks which never write it read, with no barrier before the read."""
    tree = m.tree
    writes: list[tuple[cst.Call, set[str]]] = []
    reads: list[tuple[cst.Call, set[str]]] = []
    for call in tree.nodes(cst.Call):
        if is_save_call(call):
            path = write_path(call)
            if path is not None and m.subset(call):
                writes.append((call, m.path_words(path) | _directory_keys(m, call, path)))
        elif _reads_file(call):
            path = next((arg.value for arg in positional_args(call)), None)
            if path is not None:
                reads.append((call, m.path_words(path) | _directory_keys(m, call, path)))
    if not writes:
        return
    for read, wanted in reads:
        for write, written in writes:
            common = written & wanted
            if not (callee_name(write) or "").endswith("_pretrained"):
                common = {word for word in common if "." in word}  # the same file, not its folder
            elif callee_name(read) != "from_pretrained":
                common = {word for word in common if not word.startswith(_DIRECTORY)}
            if not common or not _may_follow(m, write, read):
                continue
            runs = m.launched(write)
            readers = [
                k for k in (RANK0, OTHER) if runs[k] is False and m.runs(read, k) is not False
            ]
            if readers and not _barrier_before(m, read, write):
                yield read, write, shown_file(sorted(common)[0])
                break


#: Marks a directory key (:func:`_directory_keys`) among a path's words.
_DIRECTORY = "dir:"


def _directory_keys(m: RankModel, call: cst.Call, path: cst.BaseExpression) -> set[str]:
    """The directory a ``save_pretrained(d)`` writes its files into, or a ``from_pretrained(d)``
    reads them from, named by the dotted names it is held in (``args.output_dir``), followed
    through local names, their list values and the loops over those (``checkpoints =
    [args.output_dir]``; ``for checkpoint in checkpoints: from_pretrained(checkpoint)``)."""
    if not (callee_name(call) or "").endswith("_pretrained"):
        return set()
    return {_DIRECTORY + key for key in _held_in(m, path, 0)}


def shown_file(word: str) -> str:
    """A file word as the messages quote it: ``'model.bin'``, or ``the directory
    args.output_dir``."""
    if word.startswith(_DIRECTORY):
        return "the directory " + word[len(_DIRECTORY) :].split("@")[0]
    return repr(word)


def _held_in(m: RankModel, node: cst.BaseExpression, depth: int) -> set[str]:
    if type(node) is cst.Attribute:
        name = dotted_name(node)
        return {name} if name else set()
    if type(node) in (cst.List, cst.Tuple):
        elements = cast("cst.List | cst.Tuple", node).elements
        return {k for e in elements if type(e) is cst.Element for k in _held_in(m, e.value, depth)}
    if type(node) is not cst.Name or depth >= 3:
        return set()
    name = node
    keys = {f"{name.value}@{id(m.scope(name))}"}
    for value in m._assigned_values(name):
        keys |= _held_in(m, value, depth + 1)
    for loop in m.tree.nodes(cst.For):
        target = loop.target
        if type(target) is cst.Name and target.value == name.value:
            if m.scope(loop) is m.scope(name):
                keys |= _held_in(m, loop.iter, depth + 1)
    return keys


def _may_follow(m: RankModel, write: cst.CSTNode, read: cst.CSTNode) -> bool:
    """Whether ``read`` can run after ``write``: later in the same function (or in a loop they
    share), or after a call, in the reader's function, to a function that (transitively) holds
    the write. A resume read before the training loop that saves is not a read of that save."""
    tree = m.tree
    writer, reader = m.scope(write), m.scope(read)
    if writer is reader:
        return tree.after(read, write) or _shared_loop(tree, write, read)
    if type(writer) is not cst.FunctionDef:
        return False
    holders = m.callers(writer.name.value)
    return any(
        type(call.func) is cst.Name
        and call.func.value in holders
        and m.scope(call) is reader
        and (tree.after(read, call) or _shared_loop(tree, call, read))
        for call in m.module_calls()
    )


def _file_violations(m: RankModel) -> Iterator[Violation]:
    """A file a strict subset of the ranks writes and the others then read, no barrier between."""
    dormant = "" if group_exists(m) else _NO_GROUP
    for read, write, word in shared_reads(m):
        yield Violation(
            ("file", word, _where(m, read), _code(m.tree, read)),
            f"{word} is written by {_ranks_text(m.launched(write))} only and read by every "
            f"rank with no barrier between (FileNotFoundError or a half-written file{dormant})",
        )


#: Why a dormant version has no barrier at all, even where the script or DDP012 wrote one.
_NO_GROUP = (
    "; the rank stays dormant here: no process group, so an is_initialized() barrier never runs"
)


def _barrier_before(m: RankModel, node: cst.CSTNode, write: cst.CSTNode) -> bool:
    """A collective that every rank runs earlier in the same block as ``node``'s statement
    (or in a block around it), and after ``write`` when both are in one function, so the
    write is ordered before the read."""
    tree = m.tree
    same = m.scope(write) is m.scope(node)
    statement = tree.statement(node)
    for holder in (statement, *tree.ancestors(statement)):
        if isinstance(holder, SCOPES):
            return False
        parent = tree.parent(holder)
        siblings = getattr(parent, "body", None)
        if not isinstance(siblings, (list, tuple)):
            continue
        for sibling in siblings:
            if sibling is holder:
                break
            for call in _calls(sibling):
                if is_collective_call(call) and _certain(m, call, node):
                    if not same or tree.order(call) > tree.order(write):
                        return True
    return False


def _certain(m: RankModel, call: cst.Call, read: cst.CSTNode) -> bool:
    """Whether every launched rank that runs ``read`` surely runs ``call`` before it: each
    test around the call that is not around the read too is true there, or only asks whether
    the process group exists (``is_initialized()``) where one does (:func:`group_exists`: in a
    dormant version, whose ``init_process_group`` sits behind a local-rank test, it never does,
    and DDP012's guarded barrier orders nothing)."""
    shared = {id(test) for test, _ in m.conditions(read)}
    for test, wanted in m.conditions(call):
        if id(test) in shared:
            continue
        if any(callee_name(c) == "is_initialized" for c in _calls(test)):
            if group_exists(m):
                continue
            return False
        if any(truth(test, kind, dormant=m.dormant) is not wanted for kind in (RANK0, OTHER)):
            return False
    return True


def _calls(node: cst.CSTNode) -> Iterator[cst.Call]:
    for child in walk(node, into_scopes=True):
        if type(child) is cst.Call:
            yield child


#: Libraries that set the process group up from the launcher's environment themselves.
_LAUNCHER_AWARE = re.compile(r"\b(?:Accelerator|PartialState|TrainingArguments|Trainer)\b")
_RANK_ARGUMENT = re.compile(r"""add_argument\(\s*["']--local[_-]rank["']""")


def rank_dormant(tree: Tree) -> bool:
    """Whether the local rank never reaches this version of the script under a modern launcher.

    It parses ``--local_rank`` (which only ``python -m torch.distributed.launch`` passed), never
    sets a ``local_rank`` from ``LOCAL_RANK`` (an assignment or an argument default reading the
    environment) and uses no library that does: under torchrun / accelerate launch every
    process keeps ``local_rank == -1`` and runs as a lone process. The post-conditions judge
    such a version that way, so a fix that wakes the rank up (DDP001's read of LOCAL_RANK)
    answers for every hazard the woken code then has, even one the rules only report: it is
    withdrawn, and the script keeps running as N copies instead of hanging or crashing. (A
    ``RANK`` read is a global-rank test, judged on the global rank, which the launcher sets
    either way; a device index read from LOCAL_RANK does not set the rank.)"""
    return tree.memo(rank_dormant, lambda: _rank_dormant(tree))  # several rules ask


def _rank_dormant(tree: Tree) -> bool:
    code = tree.code
    if not _RANK_ARGUMENT.search(code) or _LAUNCHER_AWARE.search(code):
        return False
    return "LOCAL_RANK" not in code or not sets_rank_from_env(tree)


#: The rule whose fix wakes a dormant rank up (its read of LOCAL_RANK).
_WAKER = "DDP001"


#: The rules whose fixes most likely break a post-condition of this kind: state only rank 0
#: updates breaks a loop once something synchronises its steps (DDP014's wrap, DDP016's
#: conversion, or DDP001 waking an upstream wrap).
_KIND_SUSPECTS: dict[str, tuple[str, ...]] = {
    "state": ("DDP014", "DDP016", _WAKER),
    # a write only some ranks make: the rules that gate writes on rank 0
    "file": ("DDP003", "DDP008", "DDP011", "DDP016", "DDP020"),
    # an exit (or its state) that lone copies take apart: the rules that gate on RANK
    LONE: ("DDP003", "DDP008", "DDP011", "DDP016"),
}


def suspected(tree: Tree, found: Mapping[Hashable, str]) -> dict[Hashable, str]:
    """``found`` (a post-condition's violations of ``tree``), each reason naming the likely
    culprits: DDP001 when the rank reaches this version only through the script's own LOCAL_RANK
    read (without it the version would be dormant: what the woken code breaks is most likely
    its waking), and the rules :data:`_KIND_SUSPECTS` names for its kind (for a violation of
    lone copies, :data:`LONE`, the rules that gate on ``RANK``). The engine then tries
    withdrawing those fixes first (one run each) before it bisects."""
    code = tree.code
    woken = (
        bool(found)
        and bool(_RANK_ARGUMENT.search(code))
        and not _LAUNCHER_AWARE.search(code)
        and "LOCAL_RANK" in code
        and sets_rank_from_env(tree)
    )
    out: dict[Hashable, str] = {}
    for key, why in found.items():
        kind = key[0] if isinstance(key, tuple) and key else None
        if isinstance(key, tuple) and key[-1] == LONE:
            kind = LONE
        suspects = _KIND_SUSPECTS.get(kind, ()) if isinstance(kind, str) else ()
        if woken and _WAKER not in suspects:
            suspects = (_WAKER, *suspects)
        out[key] = Reason(why, suspects) if suspects else why
    return out


def sets_rank_from_env(tree: Tree) -> bool:
    """Whether the module sets a ``local_rank`` from LOCAL_RANK (an assignment, or an
    ``add_argument`` default that reads it)."""
    for node in tree.nodes(cst.Assign, cst.AnnAssign, cst.Call):
        if isinstance(node, cst.Call):
            if callee_name(node) != "add_argument":
                continue
            values = [a.value for a in node.args if a.keyword and a.keyword.value == "default"]
        else:
            targets = (
                [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            )
            if not any(_names_local_rank(t) for t in targets) or node.value is None:
                continue
            values = [node.value]
        if any(string_value(n) == "LOCAL_RANK" for v in values for n in walk(v, into_scopes=True)):
            return True
    return False


def _names_local_rank(target: cst.BaseExpression) -> bool:
    if type(target) is cst.Attribute:
        return target.attr.value == "local_rank"
    return type(target) is cst.Name and target.value == "local_rank"


#: What a ``DistributedDataParallel`` wrapper answers itself (``nn.Module``'s interface and
#: DDP's own, public names; torch 2.x). Any other attribute raises AttributeError on it.
WRAPPER_API = frozenset(
    {
        "add_module", "apply", "bfloat16", "broadcast_buffers", "buffers", "children",
        "compile", "cpu", "cuda", "device", "device_ids", "device_type", "dim", "double",
        "eval", "extra_repr", "find_unused_parameters", "float", "forward", "gather",
        "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu",
        "join", "join_hook", "load_state_dict", "module", "modules", "named_buffers",
        "named_children", "named_modules", "named_parameters", "no_sync", "output_device",
        "parameters", "process_group", "register_backward_hook", "register_buffer",
        "register_comm_hook", "register_forward_hook", "register_forward_pre_hook",
        "register_full_backward_hook", "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook", "register_module", "register_parameter",
        "register_state_dict_pre_hook", "require_backward_grad_sync", "requires_grad_",
        "scatter", "set_extra_state", "share_memory", "state_dict", "static_graph", "to",
        "to_empty", "train", "training", "type", "xpu", "zero_grad",
    }
)  # fmt: skip
_DDP_CLASS = "DistributedDataParallel"
#: Tests that make a read safe on a wrapper (``model.module if hasattr(model, "module") ...``).
_GUARDS = frozenset({"hasattr", "isinstance", "getattr"})


def _ddp_wraps(tree: Tree) -> Iterator[tuple[cst.Assign, str]]:
    """``name = DistributedDataParallel(...)`` (or ``DDP(...)`` imported under that alias)."""
    code = tree.code
    if _DDP_CLASS not in code:
        return
    names = {_DDP_CLASS} | ({"DDP"} if f"{_DDP_CLASS} as DDP" in code else set())
    for assign in tree.nodes(cst.Assign):
        if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
            continue
        if type(assign.value) is cst.Call and callee_name(assign.value) in names:
            yield assign, assign.targets[0].target.value


def _guarded(tree: Tree, node: cst.CSTNode, name: str, scope: cst.CSTNode) -> bool:
    """Whether a test around ``node`` (in its function) asks ``hasattr``/``isinstance`` of
    ``name``: the script tells the wrapper from the model there."""
    for ancestor in tree.ancestors(node):
        if ancestor is scope:
            return False
        if isinstance(ancestor, (cst.If, cst.IfExp)):
            for call in walk(ancestor.test, into_scopes=False):
                if (
                    type(call) is cst.Call
                    and callee_name(call) in _GUARDS
                    and any(
                        type(n) is cst.Name and n.value == name
                        for a in call.args
                        for n in walk(a.value, into_scopes=False)
                    )
                ):
                    return True
    return False


def _missing_reads(
    m: RankModel,
    sites: Mapping[tuple[int, str], list[cst.CSTNode]],
    scope: cst.CSTNode,
    name: str,
    start: cst.CSTNode | None,
) -> Iterator[cst.Attribute]:
    """``name.X`` read in ``scope`` (after ``start``, when given) while ``name`` still holds the
    wrapper (no rebinding in between, by ``sites``: :func:`_binding_sites`), for an X the
    wrapper does not have."""
    tree = m.tree
    rebinds = [
        b for b in sites.get((id(scope), name), []) if start is None or not tree.contains(start, b)
    ]
    body = scope.body if type(scope) is cst.FunctionDef else scope
    for node in walk(body, into_scopes=False):
        if not (type(node) is cst.Attribute and type(node.value) is cst.Name):
            continue
        attr = node.attr.value
        if node.value.value != name or attr in WRAPPER_API or attr.startswith("__"):
            continue
        if start is not None and not tree.after(node, start):
            continue
        if type(tree.parent(node)) in (cst.AssignTarget, cst.Del):
            continue  # a store: the wrapper takes any attribute
        since = tree.order(start) if start is not None else -1
        if any(since < tree.order(b) < tree.order(node) for b in rebinds):
            continue
        if not _guarded(tree, node, name, scope):
            yield node


def _wrapper_violations(m: RankModel) -> Iterator[Violation]:
    """An attribute read on a name that holds a ``DistributedDataParallel`` wrapper, which the
    wrapper does not have (``model._run_batch(x)``, ``model.config``), on a rank that wraps:
    AttributeError there. Upstream scripts that only ever ran single-process have such wraps
    behind a local-rank test; a fix that makes the wrap reachable (DDP001's LOCAL_RANK read)
    crashes every rank that had trained alone. (Taking ``.module`` would not be a fix: a call
    that bypasses the wrapper's forward is not synchronised.) Reads in the wrap's function after
    it, and in the module functions the wrapper is passed to there."""
    tree = m.tree
    sites: dict[tuple[int, str], list[cst.CSTNode]] | None = None
    for wrap, name in _ddp_wraps(tree):
        wrapping = [k for k in (RANK0, OTHER) if m.runs(wrap, k) is not False]
        if not wrapping:
            continue
        sites = _binding_sites(m) if sites is None else sites
        scope = m.scope(wrap)
        reads: list[tuple[cst.Attribute, cst.CSTNode]] = [
            (read, wrap) for read in _missing_reads(m, sites, scope, name, wrap)
        ]
        for call in walk(
            scope.body if type(scope) is cst.FunctionDef else scope, into_scopes=False
        ):
            if not (type(call) is cst.Call and type(call.func) is cst.Name):
                continue
            callee = m.functions.get(call.func.value)
            if callee is None or callee is scope or not tree.after(call, wrap):
                continue
            for param in _receiving_params(callee, call, name):
                reads += [(r, call) for r in _missing_reads(m, sites, callee, param, None)]
        for read, via in reads:
            if not any(
                m.runs(via, k) is not False and m.runs(read, k) is not False for k in wrapping
            ):
                continue
            code, where = _code(tree, read), _where(m, read)
            who = "the module" if where == "<module>" else f"{where}()"
            yield Violation(
                ("wrapper", where, code),
                f"{who} reads {code} on the DistributedDataParallel wrapper of "
                f"{name}, which has no such attribute: AttributeError on every rank that wraps "
                "(and `.module` would bypass the wrapper's gradient synchronisation)",
                read,
            )


def _receiving_params(function: cst.FunctionDef, call: cst.Call, name: str) -> list[str]:
    """The parameters of ``function`` that ``call`` passes ``name`` as."""
    params = [p.name.value for p in function.params.params]
    found = []
    for index, arg in enumerate(call.args):
        if type(arg.value) is cst.Name and arg.value.value == name and arg.star == "":
            if arg.keyword is not None:
                found.append(arg.keyword.value)
            elif index < len(params):
                found.append(params[index])
    return found


def _state_violations(m: RankModel) -> Iterator[Violation]:
    """State only rank 0 updates that every rank leaves a synchronising loop on, and the
    random streams of lone copies that only rank 0's evaluation draws from
    (``patches/_divergence.py``, which builds on this module)."""
    from patches._divergence import lone_draws, state_violations

    yield from state_violations(m)
    yield from lone_draws(m)


def _weight_violations(m: RankModel) -> Iterator[Violation]:
    """Weights only rank 0 loads while every rank trains on (``patches/_divergence.py``)."""
    from patches._divergence import weight_violations

    return weight_violations(m)


#: The post-conditions by kind (a violation's ``key[0]``), in the order they are reported.
_CHECKS = {
    "collective": _collective_violations,
    "binding": _binding_violations,
    "file": _file_violations,
    "exit": _exit_violations,
    "wrapper": _wrapper_violations,
    "state": _state_violations,
    "weights": _weight_violations,
}


def violations(
    tree: Tree, kinds: Sequence[str] = tuple(_CHECKS)
) -> dict[tuple[str, ...], Violation]:
    """Every post-condition the module version breaks, by key, with the rank taken to reach
    the script (what the rules report: the hazards of its distributed code). ``kinds`` limits
    them to some kinds of ``key[0]`` ("collective", "binding", "file", "exit", "wrapper",
    "state", "weights"): a rule that asks for one does not pay for the others. Each kind is
    computed once per version."""
    return _violations(model(tree), kinds)


def _violations(
    m: RankModel, kinds: Sequence[str] = tuple(_CHECKS)
) -> dict[tuple[str, ...], Violation]:
    found: dict[tuple[str, ...], Violation] = {}
    code = m.tree.code
    if "rank" not in code and not any(gate in code for gate in _GLOBAL_MAIN | _LOCAL_MAIN):
        return found
    for kind, check in _CHECKS.items():
        if kind not in kinds:
            continue
        if kind not in m.violations:
            m.violations[kind] = {}
            for violation in check(m):
                m.violations[kind].setdefault(violation.key, violation)
        for key, violation in m.violations[kind].items():
            found.setdefault(key, violation)
    return found


def postcondition(tree: Tree) -> dict[Hashable, str]:
    """The engine's view: what the version breaks under a modern launcher, key → reason. A
    version whose rank is dormant there (:func:`rank_dormant`) runs its local-rank gates as a
    lone process would, so a fix that wakes the rank answers for what the woken code breaks."""
    found = dormant_violations(tree) if rank_dormant(tree) else violations(tree)
    return suspected(tree, {key: violation.message for key, violation in found.items()})


def dormant_violations(
    tree: Tree, kinds: Sequence[str] = tuple(_CHECKS)
) -> dict[tuple[str, ...], Violation]:
    """The post-conditions (of ``kinds``) a version whose rank stays dormant
    (:func:`rank_dormant`) breaks as it runs under the launcher: local-rank gates judged as in
    a lone process, ``RANK`` gates on the launcher's global rank. Each kind is computed once
    per version."""
    return _violations(tree.memo(dormant_violations, lambda: RankModel(tree, dormant=True)), kinds)
