"""DDP020 every-rank-writes: a file every rank of a distributed run writes to the same path.

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
(a process group, a DDP wrap, a ``DistributedSampler`` or accelerate, with a rank that reaches
the script under a modern launcher: a dormant ``--local_rank`` is DDP001's report), and asks to
gate it on global rank 0 and to put a barrier before any read. Not reported: a path built from
the rank or the process id (each process writes its own file), a write every caller keeps on
rank 0 (a function only called behind a rank-0 gate, or a write under a flag parameter such as
``write_to_pred=False`` that only calls behind a rank-0 gate set), ``open(..., "a")`` logs,
``os.makedirs(d, exist_ok=True)`` and ``if not os.path.exists(d): os.makedirs(d)``, a write
after the template's waiting barrier (``if args.local_rank not in [-1, 0]: barrier()``: the
other ranks find rank 0's file and do not write), the ``do_eval``/``do_test`` blocks DDP011
handles (in a script with a ``--local_rank``; an accelerate-native one's are reported here), the
training functions of a DataParallel-only script (DDP016 converts them first), and functions
nothing calls.

Fixed only where that is certain: a run of write-only statements (saves, ``os.makedirs``, ``if
not os.path.exists(d): os.makedirs(d)``, the logs and ``model_to_save = ...`` between them) in a
module function of a script that wraps its model in DDP (every rank holds the same model, so
rank 0 writes what every rank wrote) and has an ``args.local_rank`` (the fallback of the rank
test), no evaluation function, whose files nothing reads afterwards: no later statement of the
function, no earlier one that runs again (in a loop around the run, or at the top of a function
called more than once: a cache helper), and no statement of a caller after the call, hands on
the path, a name holding it or its directory (``args.output_dir``), except to a log line or to a
function of the script that reads no file. The run then goes behind ``if
int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:``; the other ranks skip it and wait for
nothing (no barrier is added: none is needed). A save read back later
(``from_pretrained(args.output_dir)`` right after it), a cache, a write in an evaluation the
other ranks need (CodeT5's ``eval_bleu_epoch`` writes ``test_e0.gold`` on every rank and scores
it back: DDP011 reports that one), other module-level writes and dormant scripts are reported.

Writes that end the script (the last statements of ``if __name__ == "__main__":``, after
``main()``: ``with open("eval_loss.txt", "w") as f:`` looping ``f.write`` over a module-level
list) go behind ``if int(os.environ.get("RANK", 0)) == 0:`` in a script with a DDP wrap: nothing
runs after them, and a list only rank 0 fills (its evaluation's losses) is written complete
instead of being overwritten by the other ranks' empty copies.
"""

from __future__ import annotations

from typing import cast

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Replacement, Tree, children
from patches._dataparallel import dataparallel_only
from patches._names import SCOPES, bound_names, is_read, names_bound_in, parameters, walk
from patches._ranks import OTHER, RANK0, RankModel, model, rank_dormant, truth, violations
from patches._shared_files import (
    every_rank,
    file_keys,
    makes_dirs_unguarded,
    per_process,
    written_path,
)
from patches._syntax import (
    _EVAL_NAME,
    EVAL_FLAGS,
    callee_name,
    calls_in,
    dominates,
    dotted_name,
    global_rank_zero,
    is_collective_call,
    one_line,
    preferred_quote,
    string_value,
)
from patches._writes import _quiet as quiet
from patches._writes import _write_only as write_only
from patches._writes import is_write

#: What makes a script run distributed once launched.
_DISTRIBUTED = ("init_process_group", "DistributedDataParallel", "DistributedSampler", ".prepare(")


def runs_distributed(tree: Tree) -> bool:
    """A process group, a DDP wrap, a sharded sampler or accelerate (a DataParallel-only script
    is DDP016's until it converts it). A dormant rank counts: every process then runs as a lone
    one, and writes the same paths all the same."""
    code = tree.code
    return any(marker in code for marker in _DISTRIBUTED) and not dataparallel_only(tree)


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
        with_item = type(node) is cst.WithItem  # concrete: no ABCMeta
        value = cast(cst.WithItem, node).item if with_item else cast(cst.Assign, node).value
        if not (type(value) is cst.Call and callee_name(value) == "open"):
            continue
        if with_item:
            asname = cast(cst.WithItem, node).asname
            names = bound_names(asname) if asname is not None else []
        else:
            names = [n for t in cast(cst.Assign, node).targets for n in bound_names(t)]
        if any(n.value == path.value for n in names):
            return True
    return False


def _exists_checked(tree: Tree, call: cst.Call) -> bool:
    """``if not os.path.exists(d): os.makedirs(d)``: every rank may try, but the window is the
    check's; reported with a save only."""
    parent = tree.parent(_line(tree, call))
    holder = tree.parent(parent) if parent is not None else None
    return type(holder) is cst.If and any(
        type(n) is cst.Call and callee_name(n) in ("exists", "isdir")
        for n in walk(holder.test, into_scopes=False)
    )


def _in_flag_block(m: RankModel, node: cst.CSTNode) -> bool:
    """Inside an ``if args.do_eval:``-like block of a script with a ``--local_rank``: DDP011's,
    which gates or reports it. DDP011 does not look at a script without one (an
    accelerate-native script's ``if args.do_eval:`` gathers predictions and then writes them on
    every process): its writes are this rule's."""
    if "local_rank" not in m.tree.code:
        return False
    for ancestor in m.tree.ancestors(node):
        if isinstance(ancestor, SCOPES):
            return False
        if type(ancestor) is cst.If and any(
            type(n) is cst.Attribute and n.attr.value in EVAL_FLAGS
            for n in walk(ancestor.test, into_scopes=False)
        ):
            return True
    return False


def _after_waiting_barrier(m: RankModel, call: cst.CSTNode) -> bool:
    """Between ``if args.local_rank not in [-1, 0]: barrier()`` and rank 0's own half in the
    same function: the other ranks wait while rank 0 builds the file, then find it and do not
    write."""
    scope = m.scope(call)
    waiting = False
    for node in walk(scope, into_scopes=False):
        if node is call:
            return waiting
        if type(node) is cst.Call and is_collective_call(node):
            rank0, other = m.runs(node, RANK0), m.runs(node, OTHER)
            if rank0 is False and other is not False:
                waiting = True
            elif other is False and rank0 is not False:
                waiting = False
    return False


def _rank_zero_first(m: RankModel, node: cst.CSTNode, seen: frozenset[str]) -> bool:
    """Whether ``node`` runs between the template's barrier halves, where rank 0 builds the
    file while the others wait and then find it: in its own function, or at every call of
    that function (every instantiation of its class: HF ``run_language_modeling``'s
    ``TextDataset`` is built through ``load_and_cache_examples`` called between the halves in
    ``main`` and, on rank 0 alone, in ``evaluate``)."""
    if _after_waiting_barrier(m, node):
        return True
    scope = m.scope(node)
    if type(scope) is not cst.FunctionDef:
        return False
    owner = scope.name.value
    holder = m.tree.parent(m.tree.parent(scope))
    if type(holder) is cst.ClassDef:
        owner = holder.name.value
    if owner in seen:
        return False
    sites = [
        c for c in m.tree.nodes(cst.Call) if type(c.func) is cst.Name and c.func.value == owner
    ]
    return bool(sites) and all(
        m.runs(site, OTHER) is False or _rank_zero_first(m, site, seen | {owner}) for site in sites
    )


def _never_called(tree: Tree, scope: cst.CSTNode) -> bool:
    """A module function, or a method of a module class, whose name (the class's) nothing else
    in the module mentions: dead code, or code another module runs (a ``dataset.py`` class),
    where this module cannot say which ranks run it."""
    if type(scope) is not cst.FunctionDef:
        return False
    owner: cst.CSTNode = scope
    holder = tree.parent(tree.parent(scope))  # IndentedBlock → ClassDef for a method
    if type(holder) is cst.ClassDef:
        owner = holder
    elif tree.parent(scope) is not tree.module:
        return False
    if tree.parent(owner) is not tree.module:
        return False
    assert isinstance(owner, (cst.FunctionDef, cst.ClassDef))
    name = owner.name
    return not any(n.value == name.value and n is not name for n in tree.nodes(cst.Name))


def _main_process_only(call: cst.Call) -> bool:
    """``save_pretrained(d, is_main_process=..., save_function=accelerator.save)``: the library
    decides which process writes."""
    return any(
        arg.keyword is not None and arg.keyword.value in ("is_main_process", "save_function")
        for arg in call.args
    )


def shared_writes(m: RankModel) -> list[cst.Call]:
    """The writes every rank makes to one path, in source order."""
    tree = m.tree
    found = []
    for call in tree.nodes(cst.Call):
        if not is_write(call) or _appends(call) or _main_process_only(call):
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
        if _never_called(tree, m.scope(call)) or _rank_zero_first(m, call, frozenset()):
            continue
        if _flag_set_on_rank_zero_only(m, call):
            continue
        found.append(call)
    return found


def _flag_set_on_rank_zero_only(m: RankModel, call: cst.Call) -> bool:
    """Whether the write sits under ``if <flag>:`` where ``flag`` is a parameter of its function
    that defaults to False/None and that only calls on rank 0 set (``evaluate(...,
    write_to_pred=False)``, called with ``write_to_pred=True`` only behind a rank-0 gate, as
    DDP011 leaves the test block): every rank calls the function, rank 0 alone writes."""
    scope = m.scope(call)
    if type(scope) is not cst.FunctionDef:
        return False
    params = {p.name.value: (i, p) for i, p in enumerate(scope.params.params)}
    flags = [
        test.value
        for test, wanted in m.conditions(call)
        if wanted and type(test) is cst.Name and test.value in params
    ]
    for flag in flags:
        index, param = params[flag]
        default = param.default
        if not (type(default) is cst.Name and default.value in ("False", "None")):
            continue
        sites = [
            c
            for c in m.tree.nodes(cst.Call)
            if type(c.func) is cst.Name and c.func.value == scope.name.value
        ]
        setting = []
        for site in sites:
            given = next((a for a in site.args if a.keyword and a.keyword.value == flag), None)
            if given is None and len(site.args) > index and site.args[index].keyword is None:
                given = site.args[index]
            if given is None:
                continue  # the default: no write
            if type(given.value) is cst.Name and given.value.value in ("False", "None"):
                continue
            setting.append(site)
        if sites and setting and all(m.runs(site, OTHER) is False for site in setting):
            return True
    return False


def _message(tree: Tree, m: RankModel, group: list[cst.Call]) -> str:
    paths = []
    for call in group:
        path = written_path(call)
        assert path is not None
        shown = f"`{one_line(tree, path, 70)}`"
        if shown not in paths:
            paths.append(shown)
    dirs = [c for c in group if callee_name(c) in ("makedirs", "mkdir")]
    what = (
        "the slower rank dies on FileExistsError (no exist_ok)"
        if dirs
        else "the writers overwrite one another, and a process reading it meanwhile gets a "
        "half-written file"
    )
    gate = next((t for t, _ in m.conditions(group[0]) if _looks_rank_zero(t)), None)
    note = ""
    if gate is not None:
        note = f"; `{one_line(tree, gate, 60)}` does not exclude the other ranks under a launcher"
    empty = _filled_on_rank_zero(m, group)
    if empty:
        note += (
            f"; {', '.join(empty)} {'is' if len(empty) == 1 else 'are'} filled on rank 0 only: "
            "the other ranks write an empty copy over rank 0's"
        )
    how = "global rank 0"
    if "Accelerator(" in tree.code and "local_rank" not in tree.code:
        how = "`accelerator.is_main_process`"  # an accelerate-native script's own rank test
    return (
        f"every process of the launched run writes {', '.join(paths[:3])} to the same path: "
        f"{what}{note}; gate it on {how} (and add a barrier before any read)"
    )


def _filled_on_rank_zero(m: RankModel, group: list[cst.Call]) -> list[str]:
    """Module-level lists the writes' statements read that only rank 0 appends to (a loss list
    filled by an evaluation that now runs on rank 0, written out after ``main()``)."""
    tree = m.tree
    read = {
        n.value
        for call in group
        for n in walk(_line(tree, call), into_scopes=False)
        if type(n) is cst.Name
    }
    fills: dict[str, list[cst.Call]] = {}
    for call in tree.nodes(cst.Call):
        func = call.func
        if (
            type(func) is cst.Attribute
            and func.attr.value in ("append", "extend")
            and type(func.value) is cst.Name
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
    code = "DDP020"
    name = "every-rank-writes"
    summary = "A file every rank writes to one path: written on rank 0 if nothing reads it later."
    rationale = __doc__
    settles = False  # a new rank-0 gate is what DDP012's barrier then follows
    #: Judged on the final version: after DDP001 wakes the rank (the fix needs a live rank)
    #: and DDP011/DDP016 gate the writes they own.
    judges_output = True
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
                'every process of the launched run writes `args.output_dir + "/model.bin"` to '
                "the same path: the writers overwrite one another, and a process reading it "
                "meanwhile gets a half-written file; gate it on global rank 0 (and add a "
                "barrier before any read)",
            ),
        ),
        Example(
            before="""
                import os
                import torch
                def main(args, model, loader):
                    torch.distributed.init_process_group(backend="gloo")
                    model = torch.nn.parallel.DistributedDataParallel(model, [args.local_rank])
                    for step, batch in enumerate(loader):
                        model(batch).backward()
                        if step % args.save_steps == 0:
                            path = os.path.join(args.output_dir, str(step))
                            os.makedirs(path)
                            torch.save(model.module, os.path.join(path, "m.pt"))
                main(parse_args(), build_model(), load())
            """,
            after="""
                import os
                import torch
                def main(args, model, loader):
                    torch.distributed.init_process_group(backend="gloo")
                    model = torch.nn.parallel.DistributedDataParallel(model, [args.local_rank])
                    for step, batch in enumerate(loader):
                        model(batch).backward()
                        if step % args.save_steps == 0:
                            path = os.path.join(args.output_dir, str(step))
                            if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:
                                os.makedirs(path)
                                torch.save(model.module, os.path.join(path, "m.pt"))
                main(parse_args(), build_model(), load())
            """,
            messages=(
                "every process of the launched run writes `path`, `os.path.join(path, "
                '"m.pt")` to the same path: the slower rank dies on FileExistsError (no '
                "exist_ok); nothing reads it afterwards: written on global rank 0 only",
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
        quote = preferred_quote(tree.code)
        for block in order:
            group = groups[block]
            run = None if rank_dormant(tree) else gateable_run(m, group)
            if run is None:
                ctx.report(group[0], _message(tree, m, group))
                continue
            assert isinstance(run[0], (cst.SimpleStatementLine, cst.BaseCompoundStatement))
            in_module = isinstance(m.scope(group[0]), cst.Module)
            gate = cst.If(
                test=_env_rank_zero(quote)
                if in_module
                else global_rank_zero(cst.Name("args"), quote),
                body=cst.IndentedBlock([run[0].with_changes(leading_lines=()), *run[1:]]),
                leading_lines=run[0].leading_lines,
            )
            replacements: dict[cst.CSTNode, Replacement] = {run[0]: [gate]}
            replacements.update({statement: [] for statement in run[1:]})
            ctx.fix(
                group[0],
                _message(tree, m, group).split("; gate it", 1)[0]
                + "; nothing reads it afterwards: written on global rank 0 only",
                replacements,
                imports=("os",),
            )


def gateable_run(m: RankModel, group: list[cst.Call]) -> list[cst.BaseStatement] | None:
    """The statements to put behind a global rank-0 test for ``group``, when that is certain:
    a run of write-only statements (saves, ``makedirs``, ``if not os.path.exists(d):
    os.makedirs(d)``, logs) in a function of a script with a DDP wrap and an ``args.local_rank``
    (every rank holds the same model, and the rank test has its fallback), that is no
    evaluation, whose files and path names nothing reads afterwards on any rank (in the
    function, in a loop around the run, or in a caller after the call): then no rank waits for
    the file, and rank 0 alone writes what every rank wrote. Not while the function breaks a
    rank post-condition (a result read on ranks that never compute it: DDP006 moves that save
    behind rank 0's gate first). None otherwise (reported)."""
    tree = m.tree
    scope = m.scope(group[0])
    if type(scope) is cst.Module:
        return _module_run(m, group)
    if type(scope) is not cst.FunctionDef or scope.name.value not in m.functions:
        return None  # a method (a dataset's cache): who runs it, when, is unclear
    if _EVAL_NAME.match(scope.name.value) or m.functions[scope.name.value] is not scope:
        return None
    code = tree.code
    if "DistributedDataParallel" not in code or "args.local_rank" not in code:
        return None
    if "args" not in {p.name.value for p in parameters(scope)} | names_bound_in(scope):
        return None
    if any(key[1] == scope.name.value for key in violations(tree)):
        return None  # its function breaks a rank post-condition: the fixing rules come first
    run = _run(tree, group)
    if run is None:
        return None
    keys: set[str] = set()
    for call in group:
        path = written_path(call)
        if path is not None:
            keys |= file_keys(m, path) | _dotted_keys(m, path)
    if not keys or _mentioned_after(m, scope, run, keys):
        return None
    return run


def _module_run(m: RankModel, group: list[cst.Call]) -> list[cst.BaseStatement] | None:
    """Writes at the end of the script, in ``if __name__ == "__main__":`` after ``main()`` (the
    loss logs of a commit-message generator): nothing runs after them, so rank 0 alone writes
    them (``int(os.environ.get("RANK", 0)) == 0``: a process no launcher started is rank 0).
    Lists only rank 0 fills (its evaluation) are then written complete, not emptied by the
    others."""
    tree = m.tree
    if "DistributedDataParallel" not in tree.code:
        return None
    block = tree.parent(_line(tree, group[0]))
    holder = tree.parent(block) if block is not None else None
    if not (
        type(holder) is cst.If
        and tree.parent(tree.parent(holder)) is None
        and any(
            type(n) is cst.Name and n.value == "__name__"
            for n in walk(holder.test, into_scopes=False)
        )
    ):
        return None
    if tree.parent(holder) is not tree.module:
        return None
    run = _run(tree, group)
    if run is None or type(block) is not cst.IndentedBlock or run[-1] is not block.body[-1]:
        return None
    later = [s for s in tree.module.body if tree.after(s, holder)]
    return None if later else run


def _env_rank_zero(quote: str) -> cst.Comparison:
    """``int(os.environ.get("RANK", 0)) == 0``."""
    return cst.ensure_type(
        cst.parse_expression(f"int(os.environ.get({quote}RANK{quote}, 0)) == 0"), cst.Comparison
    )


def _run(tree: Tree, group: list[cst.Call]) -> list[cst.BaseStatement] | None:
    """The statements of the group's block from its first write to its last, widened over the
    write-only statements next to them (``if not os.path.exists(d): os.mkdir(d)`` before
    ``model_to_save = ...`` and the save), else not widened; None when something else runs in
    between, or a name the run binds is read elsewhere (it must stay on every rank)."""
    block = tree.parent(_line(tree, group[0]))
    if type(block) is not cst.IndentedBlock:
        return None
    statements = list(block.body)
    lines = [_line(tree, call) for call in group]
    first = min(statements.index(line) for line in lines)  # type: ignore[arg-type]
    last = max(statements.index(line) for line in lines)  # type: ignore[arg-type]
    wide_first, probe = first, first - 1
    while probe >= 0 and (_writes_only(statements[probe]) or quiet(statements[probe])):
        if _writes_only(statements[probe]):
            wide_first = probe
        probe -= 1
    wide_last, probe = last, last + 1
    while probe < len(statements) and (_writes_only(statements[probe]) or quiet(statements[probe])):
        if _writes_only(statements[probe]):
            wide_last = probe
        probe += 1
    for start, end in ((wide_first, wide_last), (first, last)):
        run = statements[start : end + 1]
        if _self_contained(tree, run):
            return run
    return None


def _self_contained(tree: Tree, run: list[cst.BaseStatement]) -> bool:
    """Only writes, logs and path names, none of them read outside the run."""
    if not all(_writes_only(s) or quiet(s) for s in run):
        return False
    bound = {name for s in run for name in names_bound_in(s)}
    if not bound:
        return True
    scope = tree.scope(run[0])
    rebound = [
        node
        for node in walk(scope, into_scopes=False)
        if isinstance(node, (cst.Assign, cst.AnnAssign))
        and not any(tree.contains(s, node) for s in run)
    ]
    for name in walk(scope, into_scopes=False):
        if type(name) is cst.Name and name.value in bound and is_read(tree, name):
            if any(tree.contains(s, name) for s in run):
                continue
            if not any(
                name.value in names_bound_in(b) and dominates(tree, b, name) for b in rebound
            ):
                return False  # a name the run binds (``model_to_save``) is read elsewhere
    return True


#: Calls that only compute what a loop writes out.
_PURE = frozenset(
    {"enumerate", "zip", "range", "str", "len", "round", "int", "float", "format", "join"}
    | {"strip", "items", "keys", "values", "sorted", "list", "dumps", "repr"}
)


def _writes_handles(statement: cst.CSTNode) -> bool:
    """``with open(p, "w") as f:`` whose body only writes to its handles (``for i, x in
    enumerate(xs): f.write(...)``)."""
    if type(statement) is not cst.With:
        return False
    handles = set()
    for item in statement.items:
        call = item.item
        if not (type(call) is cst.Call and callee_name(call) == "open" and is_write(call)):
            return False
        if item.asname is None or type(item.asname.name) is not cst.Name:
            return False
        handles.add(item.asname.name.value)
    for call in calls_in(statement.body):
        name = callee_name(call)
        if name in _PURE:
            continue
        receiver = call.func.value if type(call.func) is cst.Attribute else None
        if name in ("write", "writelines") and type(receiver) is cst.Name:
            if receiver.value in handles:
                continue
        return False
    return not any(
        isinstance(node, (cst.Return, cst.Raise, cst.Global, cst.Nonlocal))
        for node in walk(statement.body, into_scopes=False)
    )


#: Writes the shared notion of a save leaves out: a config's own JSON writer.
_ALSO_WRITES = frozenset({"to_json_file"})


def _writes_only(statement: cst.CSTNode) -> bool:
    """A write-only statement (``patches/_writes.py``), or a line of calls each of which writes
    (``model_to_save.config.to_json_file(path)`` among the saves)."""
    if write_only(statement, set()) or _writes_handles(statement):
        return True
    return type(statement) is cst.SimpleStatementLine and all(
        type(small) is cst.Expr
        and type(small.value) is cst.Call
        and (is_write(small.value) or callee_name(small.value) in _ALSO_WRITES)
        for small in statement.body
    )


def _dotted_keys(m: RankModel, path: cst.BaseExpression, depth: int = 0) -> set[str]:
    """``args.output_dir`` (alone, joined into the path, or in the assignment of a name the
    path is held in) as a key: a later use of the directory may read what the run wrote."""
    if type(path) is cst.Attribute:
        name = dotted_name(path)
        return {"." + name} if name and not name.startswith("os.") else set()
    if type(path) is cst.Name:
        if depth >= 3:
            return set()
        return {k for v in m._assigned_values(path) for k in _dotted_keys(m, v, depth + 1)}
    parts: list[cst.BaseExpression] = []
    if type(path) is cst.Call:
        parts = [arg.value for arg in path.args]
    elif type(path) is cst.BinaryOperation:
        parts = [path.left, path.right]
    elif type(path) is cst.FormattedString:
        parts = [p.expression for p in path.parts if type(p) is cst.FormattedStringExpression]
    return {k for part in parts for k in _dotted_keys(m, part, depth)}


def _mentions(m: RankModel, node: cst.CSTNode, keys: set[str]) -> bool:
    """Whether ``node`` hands one of ``keys`` to a call (or reads a name holding the path); a
    log line, and a function of the script that reads no file (a helper that only writes its
    own files into the directory), do not count."""
    stack: list[cst.CSTNode] = [node]
    while stack:
        child = stack.pop()
        if type(child) is cst.Call:
            name = callee_name(child)
            if name in _LOGS:
                continue
            function = m.functions.get(name or "") if type(child.func) is cst.Name else None
            if function is not None and not _reads_files(m, function, set()):
                continue
        if type(child) is cst.Name and "=" + child.value in keys and is_read(m.tree, child):
            return True
        if type(child) is cst.Attribute and "." + (dotted_name(child) or "") in keys:
            return True
        if string_value(child) in keys:
            return True
        stack.extend(children(child))
    return False


#: Calls that read a file or look at what a directory holds.
_READS = frozenset(
    {"load", "loads", "from_pretrained", "read_csv", "listdir", "glob", "exists", "isfile"}
)


def _reads_files(m: RankModel, function: cst.FunctionDef, seen: set[str]) -> bool:
    """Whether a function of the script (or one it calls) may read a file."""
    seen.add(function.name.value)
    for call in calls_in(function):
        name = callee_name(call)
        if name in _READS or (name == "open" and not is_write(call)):
            return True
        inner = m.functions.get(name or "") if type(call.func) is cst.Name else None
        if inner is not None and inner.name.value not in seen and _reads_files(m, inner, seen):
            return True
    return False


def _mentioned_after(
    m: RankModel, scope: cst.FunctionDef, run: list[cst.BaseStatement], keys: set[str]
) -> bool:
    """Whether any rank may use the written files after the run: a later statement of the
    function, an earlier one that runs again (in a loop around the run, or in a function that
    may be called more than once: ``if os.path.exists(cache): load(cache)`` at its top), or the
    code after a call of the function. Path building (``d = os.path.join(args.output_dir,
    ...)``) and logs are no use."""
    tree = m.tree
    once = _runs_once(m, scope, frozenset())
    loops = [a for a in tree.ancestors(run[0]) if isinstance(a, (cst.For, cst.While))]
    for statement in walk(scope.body, into_scopes=False):
        if not isinstance(statement, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            continue
        if any(s is statement or tree.contains(s, statement) for s in run):
            continue
        if (
            once
            and not tree.after(statement, run[-1])
            and not any(tree.contains(loop, statement) for loop in loops)
        ):
            continue  # runs before the run, and never again after it
        if isinstance(statement, cst.BaseCompoundStatement) and any(
            tree.contains(statement, s) for s in run
        ):
            header = getattr(statement, "test", None) or getattr(statement, "iter", None)
            if header is not None and _mentions(m, header, keys):
                return True
            continue
        if not quiet(statement) and _mentions(m, statement, keys):
            return True
    name = scope.name.value
    for call in m.module_calls():
        if not (type(call.func) is cst.Name and call.func.value == name):
            continue
        caller = m.scope(call)
        for node in walk(caller, into_scopes=False):
            if type(node) is cst.SimpleStatementLine and tree.after(node, call):
                if _mentions(m, node, keys):
                    return True
    return False


def _runs_once(m: RankModel, function: cst.FunctionDef, seen: frozenset[str]) -> bool:
    """Whether ``function`` runs at most once: one call by name, in no loop, from module code
    or from a function that runs at most once itself."""
    name = function.name.value
    sites = [c for c in m.module_calls() if type(c.func) is cst.Name and c.func.value == name]
    if len(sites) != 1 or name in seen:
        return False
    site = sites[0]
    caller = m.scope(site)
    for ancestor in m.tree.ancestors(site):
        if ancestor is caller:
            break
        if isinstance(ancestor, (cst.For, cst.While)):
            return False
    if type(caller) is not cst.FunctionDef:
        return True
    return caller.name.value in m.functions and _runs_once(m, caller, seen | {name})


_LOGS = frozenset({"info", "warning", "debug", "error", "print", "exists", "isdir", "isfile"})


def _line(tree: Tree, call: cst.Call) -> cst.CSTNode:
    """The statement line (or compound statement) holding ``call``."""
    statement = tree.statement(call)
    if isinstance(statement, cst.BaseSmallStatement):
        parent = tree.parent(statement)
        return parent if parent is not None else statement
    return statement
