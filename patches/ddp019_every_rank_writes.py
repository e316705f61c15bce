"""DDP019 every-rank-writes: a file every rank of a distributed run writes to the same path.

Under a launcher every process runs the code that is not behind a rank test. A checkpoint save
(``torch.save(model.state_dict(), path)``, ``model.save_pretrained(args.output_dir)``), a
``json.dump``/``pickle.dump``, an ``open(path, "w")`` or a dataset cache left outside such a test
is then made by every rank at once, to the same path: the writers overwrite one another, a rank
that reads the file meanwhile (``from_pretrained(args.output_dir)`` right after the save, a cache
loaded back) gets a half-written file, and ``os.makedirs(d)`` without ``exist_ok`` kills the
slower rank with ``FileExistsError``. A gate that reads as rank 0's but is true on every rank
under a launcher (``n_gpu > 1 and get_rank() == 0 or n_gpu <= 1``, where ``n_gpu`` is 1 per
process) counts as no gate; so do module-level writes after ``main()`` (``eval_loss.txt`` written
from a list only rank 0 fills once its evaluation runs there).

The rule reports such a write, with the path it writes, in scripts that really run distributed
(a process group, a DDP wrap, a ``DistributedSampler`` or accelerate, with a rank that reaches the
script under a modern launcher: a dormant ``--local_rank`` is DDP001's report), and asks to gate
it on global rank 0 and to put a barrier before any read. Not reported: a path built from the
rank or the process id (each process writes its own file), a write every caller keeps on rank 0
(a function only called behind a rank-0 gate), ``open(..., "a")`` logs, ``os.makedirs(d,
exist_ok=True)`` and ``if not os.path.exists(d): os.makedirs(d)``, a write after the template's
waiting barrier (``if args.local_rank not in [-1, 0]: barrier()``: the other ranks find rank 0's
file and do not write), the ``do_eval``/``do_test`` blocks DDP011 handles, the training functions
of a DataParallel-only script (DDP016 converts them first), and functions nothing calls.

No fix: gating a write moves it off the other ranks, which is only safe when nothing they do
afterwards reads it (or waits for it), and when the file is not part of an evaluation the other
ranks need (CodeT5's ``eval_bleu_epoch`` writes ``test_e0.gold`` on every rank and scores it back:
DDP011 reports that one).
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._dataparallel import dataparallel_only
from patches._names import SCOPES, bound_names, walk
from patches._ranks import OTHER, RANK0, RankModel, model, rank_dormant, truth
from patches._shared_files import (
    every_rank,
    makes_dirs_unguarded,
    per_process,
    written_path,
)
from patches._syntax import callee_name, is_collective_call, string_value
from patches._writes import is_write

#: What makes a script run distributed once launched.
_DISTRIBUTED = ("init_process_group", "DistributedDataParallel", "DistributedSampler", ".prepare(")
#: The flags of the evaluation blocks DDP011 gates or reports.
_FLAGS = frozenset({"do_eval", "do_test", "do_predict", "do_infer", "do_inference"})


def runs_distributed(tree: Tree) -> bool:
    """A process group, a DDP wrap, a sharded sampler or accelerate, with a live rank."""
    code = tree.code
    if not any(marker in code for marker in _DISTRIBUTED):
        return False
    return not rank_dormant(tree) and not dataparallel_only(tree)


def _appends(call: cst.Call) -> bool:
    """``open(path, "a")``: a log each process appends to, not a file it replaces."""
    if callee_name(call) != "open" or len(call.args) < 2:
        return False
    mode = string_value(call.args[1].value) or ""
    return "a" in mode and "w" not in mode


def _handle(tree: Tree, path: cst.BaseExpression) -> bool:
    """``json.dump(obj, f)`` into a handle ``with open(p, "w") as f`` or ``f = open(p, "w")``
    opened (the ``open`` is the write reported), or into ``open(...)`` itself."""
    if isinstance(path, cst.Call):
        return callee_name(path) == "open"
    if not isinstance(path, cst.Name):
        return False
    for node in tree.nodes(cst.WithItem, cst.Assign):
        value = node.item if isinstance(node, cst.WithItem) else node.value
        if not (isinstance(value, cst.Call) and callee_name(value) == "open"):
            continue
        if isinstance(node, cst.WithItem):
            names = bound_names(node.asname) if node.asname is not None else []
        else:
            names = [n for t in node.targets for n in bound_names(t)]
        if any(n.value == path.value for n in names):
            return True
    return False


def _exists_checked(tree: Tree, call: cst.Call) -> bool:
    """``if not os.path.exists(d): os.makedirs(d)``: every rank may try, but the window is the
    check's; reported with a save only."""
    parent = tree.parent(_line(tree, call))
    holder = tree.parent(parent) if parent is not None else None
    return isinstance(holder, cst.If) and any(
        isinstance(n, cst.Call) and callee_name(n) in ("exists", "isdir")
        for n in walk(holder.test, into_scopes=False)
    )


def _in_flag_block(m: RankModel, node: cst.CSTNode) -> bool:
    """Inside an ``if args.do_eval:``-like block: DDP011's, which gates or reports it."""
    for ancestor in m.tree.ancestors(node):
        if isinstance(ancestor, SCOPES):
            return False
        if isinstance(ancestor, cst.If) and any(
            isinstance(n, cst.Attribute) and n.attr.value in _FLAGS
            for n in walk(ancestor.test, into_scopes=False)
        ):
            return True
    return False


def _after_waiting_barrier(m: RankModel, call: cst.Call) -> bool:
    """Between ``if args.local_rank not in [-1, 0]: barrier()`` and rank 0's own half in the
    same function: the other ranks wait while rank 0 builds the file, then find it and do not
    write."""
    scope = m.scope(call)
    waiting = False
    for node in walk(scope, into_scopes=False):
        if node is call:
            return waiting
        if isinstance(node, cst.Call) and is_collective_call(node):
            rank0, other = m.runs(node, RANK0), m.runs(node, OTHER)
            if rank0 is False and other is not False:
                waiting = True
            elif other is False and rank0 is not False:
                waiting = False
    return False


def _never_called(tree: Tree, scope: cst.CSTNode) -> bool:
    """A module function whose name nothing else mentions (dead code, or called elsewhere)."""
    if not isinstance(scope, cst.FunctionDef) or tree.parent(scope) is not tree.module:
        return False
    name = scope.name.value
    return not any(n.value == name and n is not scope.name for n in tree.nodes(cst.Name))


def shared_writes(m: RankModel) -> list[cst.Call]:
    """The writes every rank makes to one path, in source order."""
    tree = m.tree
    found = []
    for call in tree.nodes(cst.Call):
        if not is_write(call) or _appends(call):
            continue
        if callee_name(call) in ("makedirs", "mkdir") and (
            not makes_dirs_unguarded(call) or _exists_checked(tree, call)
        ):
            continue
        path = written_path(call)
        if path is None or _handle(tree, path) or per_process(m, path):
            continue
        if not every_rank(m, call) or m.dead(call) or _in_flag_block(m, call):
            continue
        if _never_called(tree, m.scope(call)) or _after_waiting_barrier(m, call):
            continue
        found.append(call)
    return found


def _code(tree: Tree, node: cst.CSTNode, limit: int = 70) -> str:
    text = " ".join(tree.module.code_for_node(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _message(tree: Tree, m: RankModel, group: list[cst.Call]) -> str:
    paths = []
    for call in group:
        path = written_path(call)
        assert path is not None
        shown = f"`{_code(tree, path)}`"
        if shown not in paths:
            paths.append(shown)
    dirs = [c for c in group if callee_name(c) in ("makedirs", "mkdir")]
    what = (
        "the slower rank dies on FileExistsError (no exist_ok)"
        if dirs
        else "the writers overwrite one another, and a rank reading it meanwhile gets a "
        "half-written file"
    )
    gate = next((t for t, _ in m.conditions(group[0]) if _looks_rank_zero(t)), None)
    note = ""
    if gate is not None:
        note = f"; `{_code(tree, gate, 60)}` does not exclude the other ranks under a launcher"
    empty = _filled_on_rank_zero(m, group)
    if empty:
        note += (
            f"; {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} filled on rank 0 only: "
            "the other ranks write an empty copy over rank 0's"
        )
    return (
        f"every rank of the distributed run writes {', '.join(paths[:3])} to the same path: "
        f"{what}{note}; gate it on global rank 0 (and add a barrier before any read)"
    )


def _filled_on_rank_zero(m: RankModel, group: list[cst.Call]) -> list[str]:
    """Module-level lists the writes' statements read that only rank 0 appends to (a loss list
    filled by an evaluation that now runs on rank 0, written out after ``main()``)."""
    tree = m.tree
    read = {
        n.value
        for call in group
        for n in walk(_line(tree, call), into_scopes=False)
        if isinstance(n, cst.Name)
    }
    fills: dict[str, list[cst.Call]] = {}
    for call in tree.nodes(cst.Call):
        func = call.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value in ("append", "extend")
            and isinstance(func.value, cst.Name)
            and func.value.value in read
        ):
            fills.setdefault(func.value.value, []).append(call)
    return sorted(
        name
        for name, calls in fills.items()
        if all(m.runs(c, OTHER) is False and m.runs(c, RANK0) is not False for c in calls)
    )


def _looks_rank_zero(test: cst.BaseExpression) -> bool:
    """A test that means to single out rank 0 (it reads a rank) but admits the other ranks."""
    return (
        any(
            isinstance(n, (cst.Name, cst.Attribute))
            and "rank" in (n.value if isinstance(n, cst.Name) else n.attr.value)
            for n in walk(test, into_scopes=False)
        )
        and truth(test, OTHER) is not False
    )


class EveryRankWrites(Rule):
    code = "DDP019"
    name = "every-rank-writes"
    summary = "Report a file every rank of a distributed run writes to the same path."
    rationale = __doc__
    settles = True  # reports only
    triggers = ("init_process_group", "DistributedDataParallel", "DistributedSampler", ".prepare(")
    examples = (
        Example(
            before="""
                import torch
                def main(args, model):
                    torch.distributed.init_process_group(backend="gloo")
                    model = torch.nn.parallel.DistributedDataParallel(model)
                    train(args, model)
                    torch.save(model.module.state_dict(), args.output_dir + "/model.bin")
                main(parse_args(), build_model())
            """,
            reports=1,
            messages=(
                'every rank of the distributed run writes `args.output_dir + "/model.bin"` to '
                "the same path: the writers overwrite one another, and a rank reading it "
                "meanwhile gets a half-written file; gate it on global rank 0 (and add a "
                "barrier before any read)",
            ),
        ),
        Example(
            before="""
                import torch
                def main(args, model):
                    torch.distributed.init_process_group(backend="gloo")
                    model = torch.nn.parallel.DistributedDataParallel(model)
                    train(args, model)
                    if torch.distributed.get_rank() == 0:
                        torch.save(model.module.state_dict(), args.output_dir + "/model.bin")
                    torch.save(model.module.state_dict(), f"model_{args.local_rank}.bin")
                main(parse_args(), build_model())
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        if not runs_distributed(tree):
            return
        m = model(tree)
        groups: dict[int, list[cst.Call]] = {}
        order: list[int] = []
        for call in shared_writes(m):
            block = id(tree.parent(_line(tree, call)))
            if block not in groups:
                groups[block] = []
                order.append(block)
            groups[block].append(call)
        for block in order:
            group = groups[block]
            ctx.report(group[0], _message(tree, m, group))


def _line(tree: Tree, call: cst.Call) -> cst.CSTNode:
    """The statement line (or compound statement) holding ``call``."""
    statement = tree.statement(call)
    if isinstance(statement, cst.BaseSmallStatement):
        parent = tree.parent(statement)
        return parent if parent is not None else statement
    return statement
