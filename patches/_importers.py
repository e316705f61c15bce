"""The scripts that consume a helper module's parsed ``--local_rank``, judged as they would run
once the helper reads LOCAL_RANK.

A project may parse its arguments in a helper (``options.setup_args()``, ``model/setting.py``)
and read ``args.local_rank`` in the scripts that import it. Reading LOCAL_RANK in the helper
wakes the importers' distributed code, which the helper's own post-conditions cannot see: a
script that takes a DistributedSampler/DDP branch with no process group anywhere crashes on
every rank, a rank-0-only ``break`` out of an epoch loop whose imported trainer synchronises
leaves the other ranks waiting. DDP001 judges every importer here before it reads the rank in a
helper, and names what blocks it in the importer's own report.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterator
from functools import lru_cache
from pathlib import Path

import libcst as cst

from patcher.rule import SOURCE_PATH
from patcher.source import SourceError, read_source
from patcher.tree import Tree
from patches._names import walk
from patches._ranks import (
    _LAUNCHER_AWARE,
    _RANK_ARGUMENT,
    RankModel,
    innermost_loop,
    model,
    rank_dormant,
    sets_rank_from_env,
)
from patches._syntax import (
    COLLECTIVES,
    DDP_WRAPPERS,
    LIBRARY_COLLECTIVES,
    callee_name,
    dotted_name,
    is_collective_call,
)

#: How many directories above the helper's own an importer may live (``train.py`` importing
#: ``model.setting``).
_LEVELS_UP = 2


def parse_file(path: Path) -> Tree | None:
    """The file as a tree, or None when it cannot be read or parsed. The rules ask for the same
    modules in every pass and for every importer: parsed once while the file is unchanged."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _parsed(str(path), (stat.st_mtime_ns, stat.st_size))


@lru_cache(maxsize=32)
def _parsed(path: str, stamp: tuple[int, int]) -> Tree | None:
    try:
        text = read_source(Path(path)).text
        return Tree(cst.parse_module(text), text)
    except (OSError, SourceError, cst.ParserSyntaxError, RecursionError):
        return None


def _imported_modules(tree: Tree) -> Iterator[tuple[int, str, list[str]]]:
    """(leading dots, module, names imported from it) of every import of the file."""
    for node in tree.nodes(cst.Import):
        for alias in node.names:
            yield 0, dotted_name(alias.name) or "", []
    for node in tree.nodes(cst.ImportFrom):
        module = dotted_name(node.module) if node.module is not None else ""
        names = (
            []
            if isinstance(node.names, cst.ImportStar)
            else [dotted_name(alias.name) or "" for alias in node.names]
        )
        yield len(node.relative), module or "", names


def _module_file(importer: Path, dots: int, module: str) -> Path | None:
    """The file ``module`` names, seen from ``importer`` (its directory is the script root for
    an absolute import, as ``python script.py`` puts it first on ``sys.path``)."""
    base = importer.parent
    for _ in range(max(0, dots - 1)):
        base = base.parent
    parts = [p for p in module.split(".") if p]
    if not parts:
        candidate = base / "__init__.py"
    else:
        candidate = base.joinpath(*parts[:-1]) / f"{parts[-1]}.py"
        if not candidate.is_file():
            candidate = base.joinpath(*parts) / "__init__.py"
    return candidate if candidate.is_file() else None


def project_modules(importer: Path, tree: Tree) -> dict[str, Path]:
    """Local name → project file, for each import of ``importer`` that resolves to a file of
    the project (``from options import setup_args`` → ``setup_args``: ``options.py``)."""
    found: dict[str, Path] = {}
    for node in tree.nodes(cst.Import):
        for alias in node.names:
            module = dotted_name(alias.name) or ""
            path = _module_file(importer, 0, module)
            if path is not None:
                bound = alias.asname.name if alias.asname else None
                local = bound.value if type(bound) is cst.Name else module.split(".")[0]
                found[local] = path
    for node in tree.nodes(cst.ImportFrom):
        module = dotted_name(node.module) if node.module is not None else ""
        dots = len(node.relative)
        if isinstance(node.names, cst.ImportStar):
            continue
        for alias in node.names:
            name = dotted_name(alias.name) or ""
            bound = alias.asname.name if alias.asname else alias.name
            if type(bound) is not cst.Name:
                continue
            joined = f"{module}.{name}" if module else name
            path = _module_file(importer, dots, joined) or _module_file(
                importer, dots, module or ""
            )
            if path is not None:
                found[bound.value] = path
    return found


def _unresolved(importer: Path, tree: Tree) -> dict[str, Path]:
    """Local name → the path it would have, for names imported from a module of the project
    whose file is missing (``from model.CoNKT.processor import Processor`` where ``model/`` is a
    directory next to the script but the file is not there): what it does is unknown."""
    found: dict[str, Path] = {}
    for node in tree.nodes(cst.ImportFrom):
        if node.relative or node.module is None or isinstance(node.names, cst.ImportStar):
            continue
        module = dotted_name(node.module) or ""
        parts = module.split(".")
        if len(parts) < 2 or not (importer.parent / parts[0]).is_dir():
            continue
        if _module_file(importer, 0, module) is not None:
            continue
        for alias in node.names:
            bound = alias.asname.name if alias.asname else alias.name
            if type(bound) is cst.Name:
                found[bound.value] = importer.parent.joinpath(*parts[:-1]) / f"{parts[-1]}.py"
    return found


def _imports_file(importer: Path, tree: Tree, target: Path) -> bool:
    for dots, module, names in _imported_modules(tree):
        for name in [module, *(f"{module}.{n}" if module else n for n in names)]:
            path = _module_file(importer, dots, name)
            if path is not None and path.resolve() == target:
                return True
    return False


def _mentions_import_of(text: str, stem: str) -> bool:
    """A cheap look before parsing: an ``import``/``from`` line naming ``stem`` as a module
    (``run`` occurs in most scripts' text, in few of their imports)."""
    if stem not in text:
        return False
    pattern = rf"^\s*(?:from\s+[\w.]*\b{re.escape(stem)}\b|import\s+[^\n#]*\b{re.escape(stem)}\b)"
    return re.search(pattern, text, re.MULTILINE) is not None


@lru_cache(maxsize=1024)
def _names_in_imports(path: str, stamp: tuple[int, int], stem: str) -> bool:
    """:func:`_mentions_import_of` for the file at ``path`` while it is unchanged (``stamp``):
    every file of a directory is asked about each of its siblings."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return _mentions_import_of(text, stem)


def importers(helper: Path) -> list[tuple[Path, Tree]]:
    """The files of the project that import ``helper``, in its directory and up to two above
    it (``import options``, ``from options import ...``, ``from .options import ...``,
    ``from model.setting import ...``)."""
    target = helper.resolve()
    found: list[tuple[Path, Tree]] = []
    directory = target.parent
    for _ in range(_LEVELS_UP + 1):
        for candidate in sorted(directory.glob("*.py")):
            if candidate.resolve() == target:
                continue
            try:
                stat = candidate.stat()
            except OSError:
                continue
            stamp = (stat.st_mtime_ns, stat.st_size)
            if not _names_in_imports(str(candidate), stamp, target.stem):
                continue
            tree = parse_file(candidate)
            if tree is not None and _imports_file(candidate, tree, target):
                found.append((candidate, tree))
        if directory.parent == directory:
            break
        directory = directory.parent
    return found


# --- what waking would break -------------------------------------------------------------------


def _synchronises(tree: Tree) -> bool:
    """Whether a module has a point every rank must reach together: a ``backward()`` (DDP's
    gradient all-reduce), a collective, a DistributedDataParallel wrap."""
    return any(
        callee_name(call) == "backward" or is_collective_call(call) for call in tree.nodes(cst.Call)
    )


def _needs_group(tree: Tree) -> bool:
    from patches.ddp001_local_rank_from_env import group_calls, wraps_in_ddp

    return bool(group_calls(tree)) or wraps_in_ddp(tree)


def _no_group(
    importer: Path, tree: Tree, helper: Tree, names: dict[str, Path], modules: dict[Path, Tree]
) -> str | None:
    """The importer (or a project module it imports) needs a process group, and neither it,
    the helper nor those modules ever initialise one."""
    from patches.ddp001_local_rank_from_env import initialises_process_group

    if initialises_process_group(tree, frozenset(names)) or any(
        initialises_process_group(t) for t in (helper, *modules.values())
    ):
        return None
    needing = [importer.name] if _needs_group(tree) else []
    needing += [path.name for path, t in modules.items() if _needs_group(t)]
    if not needing:
        return None
    return (
        f"{importer.name} takes a distributed branch once local_rank != -1 (DistributedSampler, "
        f"torch.distributed calls or a DistributedDataParallel wrap, in {', '.join(needing)}) "
        "but no process group is set up in it, in the module that parses its arguments or in "
        "the project modules it imports ('Default process group has not been initialized' on "
        "every rank): it needs a process group first"
    )


def _lone_exit(importer: Path, tree: Tree, synchronising: dict[str, Path]) -> str | None:
    """A ``break``/``return`` only some ranks take once the rank is read (every process takes
    it alike while the rank is dormant), out of a loop or function that calls a project module
    which synchronises (the DDP model lives in an imported class): the ranks that stay wait for
    the others in their next collective."""
    dormant = RankModel(tree, dormant=True)
    found = _exit_apart(importer, tree, model(tree), synchronising, dormant)
    return None if found is None else f"{importer.name}: {found[1]}"


def _exit_apart(
    importer: Path,
    tree: Tree,
    m: RankModel,
    synchronising: dict[str, Path],
    before: RankModel | None = None,
) -> tuple[cst.CSTNode, str] | None:
    """The first exit ``m`` says only some ranks take (and ``before`` does not), out of code
    that calls a ``synchronising`` project name, with the reason."""
    made = _made_by(tree, synchronising)
    for node in tree.nodes(cst.Return, cst.Break):
        if not m.subset(node) or (before is not None and before.subset(node)):
            continue
        left = innermost_loop(tree, node) if type(node) is cst.Break else m.scope(node)
        if left is None:
            continue
        for call in walk(left, into_scopes=False):
            if type(call) is not cst.Call:
                continue
            root = (dotted_name(call.func) or "").split(".")[0]
            path = synchronising.get(root) or made.get(root)
            if path is None:
                continue
            where = f" at line {tree.position(node)[0]}" if before is not None else ""
            what = "leave the loop" if type(node) is cst.Break else "return"
            which = (
                f"{path.name}, which synchronises (backward, a collective or a DDP model)"
                if path.is_file()
                else f"{_relative(path, importer)}, a project module ddpfix cannot read (it may "
                "synchronise)"
            )
            return node, (
                f"only some ranks {what}{where}, out of code that calls "
                f"{tree.module.code_for_node(call.func)}() of {which}: the other ranks would "
                "wait for it in their next collective (hang)"
            )
    return None


def _relative(path: Path, importer: Path) -> str:
    try:
        return path.relative_to(importer.parent).as_posix()
    except ValueError:
        return path.name


def _made_by(tree: Tree, modules: dict[str, Path]) -> dict[str, Path]:
    """Variables bound to what a project name makes (``processor = Processor(args)``)."""
    made: dict[str, Path] = {}
    for node in tree.nodes(cst.Assign):
        if type(node.value) is not cst.Call:
            continue
        root = (dotted_name(node.value.func) or "").split(".")[0]
        if root in modules:
            for target in node.targets:
                if type(target.target) is cst.Name:
                    made[target.target.value] = modules[root]
    return made


def woken_breaks(importer: Path, tree: Tree, helper: Path) -> str | None:
    """Why ``importer`` would break once ``helper`` reads LOCAL_RANK (None: it would not)."""
    helper_tree = parse_file(helper)
    if helper_tree is None:
        return None
    target = helper.resolve()
    names = {
        local: path
        for local, path in project_modules(importer, tree).items()
        if path.resolve() != target
    }
    modules = {path: t for path in set(names.values()) if (t := parse_file(path)) is not None}
    if not any("local_rank" in t.code for t in (tree, *modules.values())):
        return None  # neither it nor the project code it imports reads the rank
    synchronising = {
        local: path
        for local, path in names.items()
        if path in modules and _synchronises(modules[path])
    }
    synchronising.update(
        {local: path for local, path in _unresolved(importer, tree).items() if local not in names}
    )
    return _no_group(importer, tree, helper_tree, names, modules) or _lone_exit(
        importer, tree, synchronising
    )


def broken_importer(helper: Path) -> str | None:
    """The first importer of ``helper`` that waking its rank would break, with the reason."""
    for importer, tree in importers(helper):
        reason = woken_breaks(importer, tree, helper)
        if reason is not None:
            return reason
    return None


# --- post-condition: an exit apart out of a loop whose imported code synchronises --------------


@lru_cache(maxsize=256)
def _module_facts(path: str, stamp: tuple[int, int]) -> tuple[bool, bool]:
    """(synchronises, declares ``--local_rank`` without reading LOCAL_RANK) of a project file;
    ``stamp`` (mtime, size) keeps the answer true while the file is unchanged."""
    try:
        text = read_source(Path(path)).text
    except (OSError, SourceError):
        return False, False
    # most project modules (data, metrics, model code) name no collective and no rank flag:
    # answered from their text, without a parse
    syncing = _may_synchronise(text)
    declaring = bool(_RANK_ARGUMENT.search(text))
    if not syncing and not declaring:
        return False, False
    tree = parse_file(Path(path))
    if tree is None:
        return False, False
    return syncing and _synchronises(tree), declaring and not sets_rank_from_env(tree)


def _may_synchronise(text: str) -> bool:
    """Whether :func:`_synchronises` can find anything in a module with this text: a
    ``backward``, a DDP wrap, a collective on a ``dist``/``accelerator`` receiver, or a library
    one on its receiver (``trainer.evaluate``)."""
    if "backward" in text or any(w in text for w in DDP_WRAPPERS):
        return True
    if ("dist" in text or "accelerator" in text) and any(c in text for c in COLLECTIVES):
        return True
    lowered = text.lower()
    return any(
        pattern in lowered and any(m in text for m in methods)
        for pattern, methods in LIBRARY_COLLECTIVES.items()
    )


def _facts(path: Path) -> tuple[bool, bool] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return _module_facts(str(path), (stat.st_mtime_ns, stat.st_size))


def _rank_dormant_through(tree: Tree, declaring: bool) -> bool:
    """Whether the local rank never reaches this version under a modern launcher: it parses
    ``--local_rank`` itself (:func:`rank_dormant`), or gets it from a project module that
    declares it and never reads LOCAL_RANK, and sets no rank from the environment here."""
    code = tree.code
    if _RANK_ARGUMENT.search(code):
        return rank_dormant(tree)
    return (
        declaring
        and not _LAUNCHER_AWARE.search(code)
        and ("LOCAL_RANK" not in code or not sets_rank_from_env(tree))
    )


def imported_sync_exits(tree: Tree) -> dict[Hashable, str]:
    """Post-condition: no ``break``/``return`` that only some ranks take out of a loop (or
    function) that calls project code which synchronises, in a module beside this one (the
    DDP model lives in an imported class: DDP013 and the rank model see no collective here).
    A version whose rank stays dormant under the launcher (its ``--local_rank`` is parsed in
    a helper that never reads LOCAL_RANK) runs its local-rank gates as lone processes, so a
    fix that turns such a gate into a ``RANK`` gate (DDP008) is what makes the exit apart."""
    path = SOURCE_PATH.get()
    code = tree.code
    if path is None or "rank" not in code or ("break" not in code and "return" not in code):
        return {}
    names = project_modules(path, tree)
    synchronising: dict[str, Path] = {}
    declaring = False
    for local, module in names.items():
        facts = _facts(module)
        if facts is not None:
            declaring = declaring or facts[1]
            if facts[0]:
                synchronising[local] = module
    for local, module in _unresolved(path, tree).items():
        synchronising.setdefault(local, module)
    if not synchronising:
        return {}
    m = RankModel(tree, dormant=True) if _rank_dormant_through(tree, declaring) else model(tree)
    reason = _exit_apart(path, tree, m, synchronising)
    if reason is None:
        return {}
    node, why = reason
    return {("imported-sync-exit", tree.module.code_for_node(tree.statement(node))): why}
