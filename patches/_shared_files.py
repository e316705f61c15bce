"""Which files every rank writes to one path, and which of them the code reads back.

Shared by DDP020 (a file written by every rank of a distributed run: several writers), DDP011
(an evaluation kept on every rank for the early stop it decides, whose score is read back from
files every rank rewrites) and DDP014 (wrapping such a script in DDP turns the ranks' different
scores into a hang). DDP016 has its own older form of the read-back test for its conversion;
this one also follows the calls into the script's functions (CodeT5's ``eval_bleu_epoch`` writes
``test_e0.gold`` and scores it with ``_bleu(gold_fn, output_fn)``), and through the local names
a path is held in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TypeVar, cast

import libcst as cst

from patcher.tree import Tree
from patches._args import keyword_value, positional_values
from patches._names import walk
from patches._ranks import OTHER, RANK0, RankModel, innermost_loop, write_path
from patches._syntax import callee_name, calls_in, module_functions, one_line, string_value
from patches._writes import is_write

T = TypeVar("T")

#: Calls that only build or test a path: a file name among their arguments is no read.
_PATH_CALLS = frozenset(
    {"join", "format", "exists", "isfile", "isdir", "dirname", "basename", "abspath", "str"}
    | {"info", "warning", "debug", "error", "print", "write"}
)
#: Words of a name or string that make a path one process's own.
_PER_PROCESS = ("rank", "getpid", "RANK", "process_index", "worker")


@dataclass(frozen=True)
class ReadBack:
    """A file ``write`` puts on disk on every rank and ``read`` (later, in ``function``) reads."""

    write: cst.Call
    read: cst.Call
    function: str
    file: str


def every_rank(m: RankModel, node: cst.CSTNode) -> bool:
    """Whether both global rank 0 and the other ranks may run ``node``: no rank test around it
    excludes either, and its function (a module function) is called from a place every rank
    may run, if it is called by name at all (CodeReviewer's ``save_model`` is only called
    behind ``if args.global_rank == 0``)."""
    if m.runs(node, RANK0) is False or m.runs(node, OTHER) is False:
        return False
    scope = m.scope(node)
    if type(scope) is cst.FunctionDef and scope.name.value in m.functions:
        return _called_by_every_rank(m, scope.name.value, frozenset())
    return True


def _called_by_every_rank(m: RankModel, name: str, seen: frozenset[str]) -> bool:
    sites = [
        call for call in m.module_calls() if type(call.func) is cst.Name and call.func.value == name
    ]
    if not sites:
        return True  # referenced otherwise (a callback), or not called here: cannot tell
    for site in sites:
        if m.runs(site, RANK0) is False or m.runs(site, OTHER) is False:
            continue
        caller = m.scope(site)
        if type(caller) is not cst.FunctionDef or caller.name.value not in m.functions:
            return True
        if caller.name.value in seen or _called_by_every_rank(m, caller.name.value, seen | {name}):
            return True
    return False


def _kept(m: RankModel, kind: str, path: cst.BaseExpression, compute: Callable[[], T]) -> T:
    """An answer about ``path`` in this version, computed once: the rules ask the same path
    again for every call that might read it back, and the names in a path lead to the same
    assigned values again (``kind`` carries the depth the answer was computed at)."""
    cache = m.paths_kept
    key = (kind, id(path))
    hit = cache.get(key)
    if hit is not None and hit[0] is path:
        return cast(T, hit[1])
    value = compute()
    cache[key] = (path, value)
    return value


def file_keys(m: RankModel, path: cst.BaseExpression, depth: int = 0) -> frozenset[str]:
    """What identifies the file a path expression names: its file-name strings (``"dev.gold"``,
    ``"test_{}.gold"``) and the local names holding it, followed to their assignments in the
    same function (``gold_fn = os.path.join(d, "test_{}.gold".format(c))``). A name is a key
    only as the whole path (``args`` in ``args.output_dir`` names no file)."""
    return _kept(m, f"keys/{depth}", path, lambda: _file_keys(m, path, depth))


def _file_keys(m: RankModel, path: cst.BaseExpression, depth: int) -> frozenset[str]:
    keys: set[str] = {"=" + path.value} if type(path) is cst.Name else set()
    for node in walk(path, into_scopes=False):
        if type(node) is cst.SimpleString:
            name = (string_value(node) or "").rsplit("/", 1)[-1]
            if "." in name.strip("."):
                keys.add(name)
        elif type(node) is cst.Name and depth < 3:
            for value in m._assigned_values(node):
                keys |= file_keys(m, value, depth + 1)
    return frozenset(keys)


def per_process(m: RankModel, path: cst.BaseExpression, depth: int = 0) -> bool:
    """Whether a path is built from a rank or a process id (``f"cache_{args.local_rank}.pt"``):
    each process then writes a file of its own."""
    return _kept(m, f"process/{depth}", path, lambda: _per_process(m, path, depth))


def _per_process(m: RankModel, path: cst.BaseExpression, depth: int) -> bool:
    for node in walk(path, into_scopes=False):
        text = ""
        if type(node) is cst.Name:
            text = node.value
            if depth < 3 and any(per_process(m, v, depth + 1) for v in m._assigned_values(node)):
                return True
        elif type(node) is cst.SimpleString:
            text = string_value(node) or ""
        if any(word in text for word in _PER_PROCESS):
            return True
    return False


def written_path(call: cst.Call) -> cst.BaseExpression | None:
    """The path a write names; ``json.dump(obj, f)`` / ``pickle.dump(obj, f)`` write ``f``."""
    if callee_name(call) == "dump":
        values = positional_values(call)
        return values[1] if len(values) > 1 else keyword_value(call, "fp")
    return write_path(call)


def reads_back(m: RankModel, call: cst.Call, keys: AbstractSet[str]) -> bool:
    """Whether ``call`` is handed the file ``keys`` name (its path, or a local name holding it)
    and neither writes it nor only builds or tests the path."""
    if is_write(call) or callee_name(call) in _PATH_CALLS:
        return False
    return any(file_keys(m, arg.value) & keys for arg in call.args)


def reached_functions(m: RankModel, root: cst.CSTNode) -> list[cst.FunctionDef]:
    """The script's functions ``root`` calls by plain name where every rank may run the call,
    transitively (each once)."""
    functions = module_functions(m.tree.module)
    found: list[cst.FunctionDef] = []
    pending: list[cst.CSTNode] = [root]
    seen: set[str] = set()
    while pending:
        for call in calls_in(pending.pop()):
            name = callee_name(call)
            if type(call.func) is not cst.Name or not every_rank(m, call):
                continue
            if name in functions and name not in seen:
                seen.add(name)
                found.append(functions[name])
                pending.append(functions[name].body)
    return found


def _shown(tree: Tree, keys: AbstractSet[str], path: cst.BaseExpression) -> str:
    files = sorted(k for k in keys if not k.startswith("="))
    return files[0] if files else one_line(tree, path)


def read_back(m: RankModel, root: cst.CSTNode) -> ReadBack | None:
    """A file that every rank running ``root`` writes (in ``root`` or in a function it calls)
    and then reads back in the same function: the ranks read one another's half-written copies,
    so what they compute from it need not agree (the score of CodeT5's ``eval_bleu_epoch``)."""
    tree = m.tree
    for holder in (root, *reached_functions(m, root)):
        for write in calls_in(holder):
            if not is_write(write) or not every_rank(m, write):
                continue
            path = written_path(write)
            if path is None or per_process(m, path):
                continue
            keys = file_keys(m, path)
            if not keys:
                continue
            for read in calls_in(holder):
                if read is write or not tree.after(read, write) or not every_rank(m, read):
                    continue
                if reads_back(m, read, keys):
                    scope = m.scope(write)
                    function = scope.name.value if type(scope) is cst.FunctionDef else ""
                    return ReadBack(write, read, function, _shown(tree, keys, path))
    return None


def loop_exits(m: RankModel, loop: cst.For | cst.While) -> bool:
    """Whether a ``return``, or a ``break`` of ``loop`` itself, can run in it (one in a branch
    no process takes, ``if patience == -1: break`` on a counter, is none)."""
    for node in walk(loop, into_scopes=False):
        own_break = type(node) is cst.Break and innermost_loop(m.tree, node) is loop
        if (own_break or type(node) is cst.Return) and not m.dead(node):
            return True
    return False


def scored_exits(m: RankModel) -> Iterator[tuple[cst.For | cst.While, ReadBack]]:
    """Training loops (a ``backward()`` inside) that an exit may leave and in which every rank
    scores from a file it rewrites and reads back: with DDP the ranks must leave together, and
    a score read from a file they all rewrite at once need not agree."""
    for loop in m.tree.nodes(cst.For, cst.While):
        if not any(callee_name(c) == "backward" for c in calls_in(loop)):
            continue
        if innermost_loop(m.tree, loop) is not None:
            continue  # the outermost training loop answers for the inner ones
        if not loop_exits(m, loop) and not any(
            loop_exits(m, inner)
            for inner in m.tree.nodes(cst.For, cst.While)
            if inner is not loop and m.tree.contains(loop, inner)
        ):
            continue
        found = read_back(m, loop)
        if found is not None:
            yield loop, found


def makes_dirs_unguarded(call: cst.Call) -> bool:
    """``os.makedirs(d)`` / ``os.mkdir(d)`` without ``exist_ok=True``: a second process creating
    the same directory dies on FileExistsError."""
    if callee_name(call) not in ("makedirs", "mkdir"):
        return False
    value = keyword_value(call, "exist_ok")
    return not (type(value) is cst.Name and value.value == "True")
