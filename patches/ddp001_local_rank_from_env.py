"""DDP001 local-rank-from-env: take LOCAL_RANK from the environment after parsing arguments.

``torchrun`` and ``accelerate launch`` pass the local rank only as the ``LOCAL_RANK`` environment
variable; ``python -m torch.distributed.launch`` used to pass ``--local_rank``. A script that only
reads the argument keeps ``args.local_rank == -1`` in every process: each one thinks it is alone,
all load onto GPU 0, and every rank-gated save or evaluation runs in every process.

Right after the statement that parses the arguments, the rule inserts a guarded read of
``LOCAL_RANK`` that only applies when the argument was not given (it still equals its default),
so an explicit ``--local_rank`` keeps working. It recognises ``parse_args()`` and
``parse_known_args()``, any result name, module level or inside a function, and helpers that
``return parser.parse_args()`` (the return is split so the read happens inside the helper). It
adds ``import os`` only when missing, and does nothing when the script already reads LOCAL_RANK
into the argument in any spelling (``os.environ[...]``, ``.get``, ``os.getenv``, an env-derived
``default=``).

No process group, no rank. A DataParallel-only script (GraphCodeBERT, UniXcoder style) often
keeps the template's ``--local_rank`` and dormant distributed code: ``get_world_size()`` or a
``barrier()`` behind ``local_rank != -1``, a ``DistributedSampler`` in the other branch. Under a
launcher it runs as N independent copies. Reading LOCAL_RANK would wake that code up with no
process group ("Default process group has not been initialized"), so the rule reports instead
when the file (1) never initialises a process group and (2) has code that needs one. A group
can be initialised by ``init_process_group`` (any receiver), ``deepspeed.init_distributed`` or
``deepspeed.initialize``, ``initialize_model_parallel``, ``init_device_mesh``, an accelerate
``Accelerator``/``PartialState`` (or any import of accelerate), ``TrainingArguments`` /
``HfArgumentParser`` / a ``...Trainer`` (the Trainer initialises it), ``torch.distributed.run``,
or a call to a function not defined in the file whose name says it sets up distributed training
(``init_distributed_mode``, ``setup_distributed``, ``init_dist``, ``set_dist``, ``dist_init``,
``setup_ddp``): the rule would rather fix than report falsely. A script that wraps its own model
in torch's ``DistributedDataParallel`` is not DataParallel-only: its author ran that branch, which
cannot work without a group, so the group is taken to be initialised where ddpfix cannot see it.
A wrap in apex's DDP alone is no such evidence: with no group set up anywhere it counts as code
that needs one. DDP019 sets up the group such a branch lacks (UniXcoder's code completion) when it
can place it; this rule then finds the group and reads the rank.
A DataParallel-only script whose ``--local_rank`` is declared and never read (GraphCodeBERT's
refinement and translation) is left to DDP016, which converts it and sets the rank together with
the process group: read here first, the rank would stop that conversion and leave every process
training alone.
Needing a group: ``get_world_size``, ``get_rank``, ``barrier`` and the collectives on a
``torch.distributed`` receiver, and a ``DistributedSampler`` not given both ``num_replicas`` and
``rank``; calls behind an ``is_initialized()`` test do not count.

Waking a hazard it cannot fix. Reading LOCAL_RANK switches on every local-rank gate of the
script at once. The engine judges the unpatched script as a modern launcher runs it (every
process a lone copy, ``patches/_ranks.rank_dormant``) and the patched one with the rank, so when
the woken code would still hang, crash or clash after every other rule has done its part (a
barrier only ranks other than 0 reach, a shared file every rank writes from its own shard, a
name only rank 0 binds, a DistributedDataParallel branch that never ran whose loop then calls
``model._run_batch(...)`` or reads ``model.config``, which the wrapper does not have), the read is
withdrawn and reported with that reason: the script keeps running as N copies, as it did, until
the hazard is fixed by hand.

The parse site is elsewhere. ddpfix rewrites one file at a time; run on a directory (or on
several files) it patches the file that parses, including a helper in another module that adds
``--local_rank`` and parses (CodeT5's ``configs.add_args``: the read goes right after its
``parse_args``). A file that reads ``args.local_rank`` but gets ``args`` from a helper imported
from another module (``args = add_args(parser)``, ``get_args()``, ``parse_args()``; or a parser
that such a function returns, known by its ``parse_args()``/``parse_known_args()`` being called
whatever the function's name: ``get_argparse().parse_args()``, ``parser = make_options()``) is
reported, naming the module to run ddpfix on, unless that module is a
file next to this one that already sets ``local_rank`` from LOCAL_RANK (a fork that fixed its
``configs.py``). A file of another package, or text without a path, cannot be looked at: the
report stays until silenced with ``# ddpfix: ignore[DDP001]``.

A helper read wakes its importers. The rank read in ``options.py`` is consumed by the scripts
that import it (``import options``, ``from options import setup_args``, ``from .options import
...``, ``from model.setting import ...`` in a directory up to two above), whose distributed code
the helper's own post-conditions cannot see. Before reading it there, the rule judges each
importer that reads a ``.local_rank`` as it would run once woken (``patches/_importers.py``): it
needs a process group (a DistributedSampler, a ``torch.distributed`` call, a DDP wrap, in the
importer or a project module it imports) and none is set up in the importer, the helper or those
modules (a name imported from the project is judged by its module, not by its name: a project's
own ``Trainer`` is not transformers'); or a ``break``/``return`` only some ranks take leaves a
loop that calls project code which synchronises (a ``backward()``, a collective or a DDP wrap in
its module, or a module of the project ddpfix cannot read). Then the read is reported, naming
the importer and why, and the importer's own report says what blocks it instead of "run ddpfix
on options.py". With no importer found the rule behaves as before (CodeT5's ``configs.py``,
whose ``set_dist`` sets up the group, is read). The same exit is an engine post-condition
(``_importers.imported_sync_exits``), judged with the rank dormant while the helper never reads
LOCAL_RANK: DDP008 does not turn such an importer's ``local_rank == 0`` block that saves and
breaks into a ``RANK`` gate either (the launcher sets RANK, so rank 0 would stop alone). A
function decorated with
``@hydra.main`` that reads ``cfg.local_rank`` is reported too: the default lives in a YAML file.

``HfArgumentParser`` dataclasses: the Trainer itself is distributed (it builds accelerate's
``PartialState``), but ``TrainingArguments.local_rank`` is only the parsed field: transformers 4
(4.40 read) set it to the launcher's local rank while setting up the device, transformers 5
leaves it at -1 under a launcher (measured with 5.24), so a script's own gates on
``training_args.local_rank`` and ``is_main_process(training_args.local_rank)`` are wrong on every
rank. When the file reads ``.local_rank`` of exactly one result of
``parse_args_into_dataclasses()`` (or ``parse_json_file``/``parse_yaml_file``/``parse_dict``),
the guarded read goes after that parse, compared with the field's default (-1, TrainingArguments';
or the literal default of the file's own ``local_rank`` field). Nothing in transformers 5 reads
the field, so the Trainer is unaffected. One exception is reported instead: a gate on
``.local_rank`` around a call on the Trainer (``trainer.evaluate()`` gathers across ranks): every
rank passes it today, and with the real rank, rank 0 would wait for the others forever.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.source import SourceError, read_source
from patcher.tree import Around, Replacement, Tree
from patches._argparse import (
    ArgparseOption,
    local_rank_options,
    parse_call,
    parse_target,
)
from patches._args import keyword_value, positional_args
from patches._dataparallel import dataparallel_only
from patches._importers import broken_importer, woken_breaks
from patches._names import walk
from patches._ranks import sets_rank_from_env
from patches._syntax import (
    COLLECTIVES,
    callee_name,
    dotted_name,
    import_map,
    int_literal,
    preferred_quote,
    string_value,
)

MARKER = "# ddpfix: torchrun / accelerate launch pass the local rank only as LOCAL_RANK"
DEST = "local_rank"

NO_PROCESS_GROUP = (
    "no process group is ever initialised in this file: reading LOCAL_RANK would run its "
    "distributed code (torch.distributed calls, DistributedSampler) without one ('Default "
    "process group has not been initialized'); convert the script to DistributedDataParallel "
    "first (initialise the process group), then read LOCAL_RANK"
)

UNWRAPPED_SHARDS = (
    "this file shards its data with a DistributedSampler but wraps no model in "
    "DistributedDataParallel itself: unless a module it imports does, reading LOCAL_RANK would "
    "make every rank train its own model on its shard, drifting apart silently; wrap the model "
    "in DDP first (or check the imported trainer does), then read LOCAL_RANK"
)

TRAINER_BEHIND_GATE = (
    "this gate on local_rank reaches the Trainer, which gathers across ranks: today every rank "
    "passes it (transformers 5 leaves TrainingArguments.local_rank at -1 under a launcher), with "
    "the real rank the others would leave rank 0 waiting; call the Trainer on every rank and "
    "gate only side effects on trainer.is_world_process_zero()"
)


def _mentions_local_rank_env(node: cst.CSTNode) -> bool:
    return any(string_value(n) == "LOCAL_RANK" for n in walk(node, into_scopes=True))


def _already_reads_env(tree: Tree, dest: str) -> bool:
    for node in tree.nodes(cst.Assign, cst.AnnAssign, cst.AugAssign):
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        else:
            targets = [node.target]
        if (
            any(type(t) is cst.Attribute and t.attr.value == dest for t in targets)
            and node.value is not None
            and _mentions_local_rank_env(node.value)
        ):
            return True
    return False


def _guard(
    module: cst.Module,
    dest: str,
    default: cst.BaseExpression | None,
    target: cst.BaseExpression,
    quote: str,
) -> cst.If:
    """``if "LOCAL_RANK" in os.environ and args.local_rank == -1: args.local_rank = ...``."""
    q = quote
    who = module.code_for_node(target)
    if default is None or (type(default) is cst.Name and default.value == "None"):
        unset = f"{who}.{dest} is None"
    else:
        unset = f"{who}.{dest} == {module.code_for_node(default)}"
    code = (
        f"if {q}LOCAL_RANK{q} in os.environ and {unset}:\n"
        f"    {who}.{dest} = int(os.environ[{q}LOCAL_RANK{q}])\n"
    )
    statement = cst.parse_statement(code, config=module.config_for_parsing)
    assert type(statement) is cst.If
    return statement.with_changes(leading_lines=[cst.EmptyLine(comment=cst.Comment(MARKER))])


def _insertions(
    tree: Tree, option: ArgparseOption, parsers: set[str | None]
) -> dict[cst.CSTNode, Replacement]:
    """For each statement that parses the arguments: that statement followed by the guard."""
    quote = preferred_quote(tree.code)
    found: dict[cst.CSTNode, Replacement] = {}
    dest, default = option.dest, option.default
    for line in _statement_lines(tree):
        first = line.body[0]
        parsed = parse_target(first)
        if parsed and _wanted(parsed[0], parsers):
            guard = _guard(tree.module, dest, default, parsed[1], quote)
            found[line] = Around(after=(guard,))
        elif (
            type(first) is cst.Return
            and (call := parse_call(first.value)) is not None
            and _wanted(call, parsers)
        ):
            args = cst.Name("args")
            assign = line.with_changes(body=[cst.Assign([cst.AssignTarget(args)], call)])
            found[line] = [
                assign,
                _guard(tree.module, dest, default, args, quote),
                cst.SimpleStatementLine([cst.Return(args)]),
            ]
    return found


def _statement_lines(tree: Tree) -> list[cst.SimpleStatementLine]:
    """One-statement lines directly in a block, where a guard can follow them."""
    return [
        line
        for line in tree.nodes(cst.SimpleStatementLine)
        if len(line.body) == 1 and isinstance(tree.parent(line), (cst.IndentedBlock, cst.Module))
    ]


def _wanted(call: cst.Call, parsers: set[str | None]) -> bool:
    assert type(call.func) is cst.Attribute
    return not parsers or dotted_name(call.func.value) in parsers


def _count_parse_statements(tree: Tree) -> int:
    assigned = sum(1 for node in tree.nodes(cst.Assign) if parse_target(node))
    returned = sum(1 for node in tree.nodes(cst.Return) if parse_call(node.value))
    return assigned + returned


# --- can this file have a process group? (issue 9, class 6) ----------------------------------

#: Calls that create the default process group (or objects that do: accelerate's states).
_INITIALISERS = frozenset(
    {
        "init_process_group",
        "init_distributed",  # deepspeed.init_distributed
        "initialize_model_parallel",  # Megatron
        "init_device_mesh",
        "Accelerator",
        "PartialState",
        "AcceleratorState",
    }
)
#: Names whose presence means the Trainer (which initialises the group itself) is in use.
_TRAINER_ARGUMENTS = re.compile(r"^(?:\w*TrainingArguments|HfArgumentParser)$")
#: Modules whose import means something else launches or initialises the group.
_INITIALISING_MODULES = ("accelerate", "torch.distributed.run", "torch.distributed.launcher")
#: The name of a helper from another file that sets up distributed training. Queries
#: (``is_dist_avail_and_initialized``, ``get_dist_info``) are not setup.
_SETUP_HELPER = re.compile(
    r"(?:init|setup|set_up|^set)_?\w*?(?:dist|ddp)|(?:dist|ddp)\w*?(?:init|setup)", re.IGNORECASE
)
_QUERY_PREFIXES = ("is_", "get_", "has_", "check_")
#: torch.distributed functions that raise without a default process group: the collectives
#: and the queries of the group.
_NEEDS_GROUP = COLLECTIVES | {"get_world_size", "get_rank", "get_backend", "new_group"}


def _defined_names(tree: Tree) -> set[str]:
    """Functions and classes defined anywhere in the file (their bodies are judged directly)."""
    return {node.name.value for node in tree.nodes(cst.FunctionDef, cst.ClassDef)}


def _sets_up_distributed(name: str) -> bool:
    lowered = name.lower().lstrip("_")
    return not lowered.startswith(_QUERY_PREFIXES) and bool(_SETUP_HELPER.search(lowered))


def _imported_modules(tree: Tree) -> list[str]:
    found: list[str] = []
    for node in tree.nodes(cst.Import):
        found.extend(dotted_name(alias.name) or "" for alias in node.names)
    for node in tree.nodes(cst.ImportFrom):
        if not node.relative and node.module is not None:
            found.append(dotted_name(node.module) or "")
    return found


def initialises_process_group(tree: Tree, project: frozenset[str] = frozenset()) -> bool:
    """Whether anything in the file initialises (or may, in code it calls) a process group.
    Names in ``project`` come from project modules judged on their own (the file's own
    ``Trainer`` class is not transformers')."""
    defined = _defined_names(tree) | project
    for call in tree.nodes(cst.Call):
        name = callee_name(call)
        if name is None:
            continue
        if name in _INITIALISERS or (dotted_name(call.func) or "").endswith("deepspeed.initialize"):
            return True
        if name not in defined and (_sets_up_distributed(name) or name.endswith("Trainer")):
            return True
    if any(_TRAINER_ARGUMENTS.match(node.value) for node in tree.nodes(cst.Name)):
        return True
    for module in _imported_modules(tree):
        if any(module == m or module.startswith(m + ".") for m in _INITIALISING_MODULES):
            return True
    return any(
        (dotted_name(node) or "").startswith(_INITIALISING_MODULES[1:])
        for node in tree.nodes(cst.Attribute)
    )


def _aliases(tree: Tree, original: str) -> set[str]:
    """``original`` and the names it is imported as (``DistributedDataParallel as DDP``)."""
    names = {original}
    for alias in tree.nodes(cst.ImportAlias):
        imported = dotted_name(alias.name) or ""
        if imported.split(".")[-1] == original and alias.asname is not None:
            bound = alias.asname.name
            if type(bound) is cst.Name:
                names.add(bound.value)
    return names


def _from_torch_distributed(tree: Tree) -> set[str]:
    """Bare names imported from torch.distributed (``from torch.distributed import barrier``)."""
    names: set[str] = set()
    for node in tree.nodes(cst.ImportFrom):
        module = dotted_name(node.module) if node.module is not None else None
        if module != "torch.distributed" or isinstance(node.names, cst.ImportStar):
            continue
        for alias in node.names:
            bound = alias.asname.name if alias.asname else alias.name
            if type(bound) is cst.Name and type(alias.name) is cst.Name:
                if alias.name.value in _NEEDS_GROUP:
                    names.add(bound.value)
    return names


def _checks_initialized(node: cst.CSTNode) -> bool:
    return any(
        type(n) is cst.Call and "initialized" in (callee_name(n) or "")
        for n in walk(node, into_scopes=True)
    )


def _behind_initialized_check(tree: Tree, call: cst.Call) -> bool:
    """``if dist.is_initialized(): ...``, ``a if dist.is_initialized() else b``, ``x and ...``,
    or a function that tests it at all (``if not dist.is_initialized(): return 1``)."""
    for ancestor in tree.ancestors(call):
        if isinstance(ancestor, (cst.If, cst.IfExp, cst.While)):
            if _checks_initialized(ancestor.test):
                return True
        elif type(ancestor) is cst.BooleanOperation:
            if _checks_initialized(ancestor.left):
                return True
        elif type(ancestor) is cst.FunctionDef:
            return _checks_initialized(ancestor.body)
    return False


def _explicit_replicas(call: cst.Call) -> bool:
    """``DistributedSampler(d, num_replicas=n, rank=r)`` never asks the process group."""
    positional = positional_args(call)
    keywords = {a.keyword.value for a in call.args if a.keyword is not None}
    return (
        len(positional) >= 3
        or {"num_replicas", "rank"} <= keywords
        or (len(positional) == 2 and "rank" in keywords)
    )


def _is_torch_distributed(receiver: str | None) -> bool:
    """``torch.distributed``, ``dist``, ``torch_dist``: not ``self.distances`` (``reduce`` and
    ``gather`` are common method names)."""
    last = (receiver or "").lower().rsplit(".", 1)[-1]
    return last in ("dist", "distributed") or last.endswith("_dist")


def group_calls(tree: Tree) -> list[cst.Call]:
    """The calls that raise without a default process group (not behind an
    ``is_initialized()`` test)."""
    samplers = _aliases(tree, "DistributedSampler")
    bare = _from_torch_distributed(tree)
    found = []
    for call in tree.nodes(cst.Call):
        name = callee_name(call)
        if name in samplers:
            needs = not _explicit_replicas(call)
        elif name in _NEEDS_GROUP and type(call.func) is cst.Attribute:
            needs = _is_torch_distributed(dotted_name(call.func.value))
        else:
            needs = type(call.func) is cst.Name and call.func.value in bare
        if needs and not _behind_initialized_check(tree, call):
            found.append(call)
    return found


def needs_process_group(tree: Tree) -> bool:
    """Whether the file has code that raises without a default process group."""
    return bool(group_calls(tree))


def ddp_wraps(tree: Tree) -> list[cst.Call]:
    """The ``DistributedDataParallel(...)`` calls (torch's or apex's, under any imported name)."""
    wrappers = _aliases(tree, "DistributedDataParallel")
    return [call for call in tree.nodes(cst.Call) if callee_name(call) in wrappers]


def wraps_in_ddp(tree: Tree) -> bool:
    """Whether the file builds a ``DistributedDataParallel`` (torch's or apex's) itself."""
    return bool(ddp_wraps(tree))


def shards_without_wrapping(tree: Tree) -> bool:
    """Half distributed: the file shards training data with a ``DistributedSampler`` but never
    wraps its model (no DDP, no ``accelerator.prepare``, no Trainer). With a real rank each rank
    would train its own model on its shard, and they drift apart silently; as shipped, under a
    launcher, the processes are N identical full-data copies."""
    if wraps_in_ddp(tree):
        return False
    names = {callee_name(call) for call in tree.nodes(cst.Call)}
    if names & {"prepare", "prepare_model", "initialize", "Trainer", "Seq2SeqTrainer", "DDP"}:
        return False
    return "DistributedSampler" in names


def lacks_process_group(tree: Tree) -> bool:
    """Class 6: distributed code that only runs with a rank, and no group for it. A wrap in
    torch's DDP says the author ran that branch with a group set up elsewhere; apex's alone
    does not (UniXcoder's code completion imports it in a ``try`` of a branch nobody ran)."""
    return (
        not wraps_in_torch_ddp(tree)
        and (needs_process_group(tree) or wraps_in_ddp(tree))
        and not initialises_process_group(tree)
    )


def wraps_in_torch_ddp(tree: Tree) -> bool:
    """Whether the file builds torch's ``DistributedDataParallel`` (not one imported from apex)."""
    apex: set[str] = set()
    for node in tree.nodes(cst.ImportFrom):
        module = dotted_name(node.module) if node.module is not None else None
        if not (module or "").startswith("apex") or isinstance(node.names, cst.ImportStar):
            continue
        for alias in node.names:
            bound = alias.asname.name if alias.asname else alias.name
            if type(bound) is cst.Name:
                apex.add(bound.value)
    wrappers = _aliases(tree, "DistributedDataParallel") - apex
    return any(callee_name(call) in wrappers for call in tree.nodes(cst.Call))


# --- the parse site is elsewhere (issue 9, class 9) -------------------------------------------

#: A helper that returns parsed arguments (``add_args(parser)``, ``get_args()``) or a parser.
_ARGS_HELPER = re.compile(
    r"^_?(?:add|get|parse|load|make|build|read|setup|set_up|create|prepare|init)_?(?:\w+_)?"
    r"(?:args|arguments|argparser|options|opts|opt|config|configs|cfg|params|hparams|flags)$"
    r"|^(?:args?|arguments|options|opts)_?pars(?:e|er|ing)$",
    re.IGNORECASE,
)
#: Libraries whose helpers are not the project's own argument parsing.
_LIBRARIES = frozenset(
    {
        "argparse",
        "absl",
        "accelerate",
        "configargparse",
        "fire",
        "hydra",
        "jsonargparse",
        "omegaconf",
        "simple_parsing",
        "torch",
        "transformers",
    }
)


@dataclass(frozen=True)
class Helper:
    """A function of another module: ``configs.add_args``."""

    module: str  # as imported, relative dots kept
    function: str

    def where(self) -> str:
        return f"{self.module}.{self.function}" if self.module.strip(".") else self.function

    def path(self) -> str:
        """The file of ``module``, relative to this one's package: ``configs.py``."""
        dots = len(self.module) - len(self.module.lstrip("."))
        rest = self.module.lstrip(".")
        prefix = "../" * max(0, dots - 1)
        return prefix + (rest.replace(".", "/") + ".py" if rest else "__init__.py")


def _join(package: str, name: str) -> str:
    return package + name if package.endswith(".") else f"{package}.{name}"


def _imported_helper(
    call: cst.CSTNode,
    imports: dict[str, tuple[str, str | None]],
    pattern: re.Pattern[str] | None = None,
) -> Helper | None:
    """The project helper from another module that ``call`` calls, if its name matches
    (any name without a pattern)."""
    if type(call) is not cst.Call:
        return None
    func = call.func
    if type(func) is cst.Name and func.value in imports:
        module, name = imports[func.value]
        helper = None if name is None else Helper(module, name)
    elif type(func) is cst.Attribute and (base := dotted_name(func.value)) is not None:
        head, _, rest = base.partition(".")
        if head not in imports:
            return None
        module, name = imports[head]
        full = module if name is None else _join(module, name)
        helper = Helper(f"{full}.{rest}" if rest else full, func.attr.value)
    else:
        return None
    if helper is None or (pattern is not None and not pattern.match(helper.function)):
        return None
    top = helper.module.lstrip(".").split(".")[0]
    return None if top in _LIBRARIES else helper


def _rank_readers(tree: Tree) -> dict[str, cst.Attribute]:
    """Names ``x`` of every ``x.local_rank`` in the file (the first such attribute each)."""
    found: dict[str, cst.Attribute] = {}
    for node in tree.nodes(cst.Attribute):
        if node.attr.value == DEST and type(node.value) is cst.Name:
            found.setdefault(node.value.value, node)
    return found


def _reads_env_there(here: Path | None, helper: Helper) -> bool:
    """Whether ``helper``'s module is a readable file next to ``here`` that sets
    ``local_rank`` from LOCAL_RANK (an assignment, or an argument default)."""
    if here is None:
        return False
    sibling = here.parent / helper.path()
    try:
        text = read_source(sibling).text
    except (OSError, SourceError):
        return False
    if "LOCAL_RANK" not in text:
        return False
    try:
        module = cst.parse_module(text)
    except (cst.ParserSyntaxError, RecursionError):
        return False
    return sets_rank_from_env(Tree(module, text))


def _parsed_elsewhere(tree: Tree, here: Path | None = None) -> list[tuple[cst.CSTNode, str]]:
    """``args = add_args(parser)`` (a helper of another module parses) and ``args =
    get_argparse().parse_args()`` (it declares): where to report, and what. A parser is known
    by what is done with it, not by its helper's name: whatever an imported project function
    returns and the file then calls ``parse_args()``/``parse_known_args()`` on (directly, or
    through the variable it was bound to). A helper whose module is a file next to ``here``
    (the file being fixed) that already sets ``local_rank`` from LOCAL_RANK is not reported
    (CodeT5 forks that fixed their ``configs.py``)."""
    readers = _rank_readers(tree)
    imports = import_map(tree)
    made: dict[str, Helper] = {}  # variables an imported helper made: a parser if parsed
    found: list[tuple[cst.CSTNode, str]] = []
    for node in tree.nodes(cst.Assign):
        parsed = parse_target(node)
        if parsed is not None and type(parsed[1]) is cst.Name and parsed[1].value in readers:
            declared = _declaring_helper(parsed[0], imports, made)
            if declared is not None:
                if not _reads_env_there(here, declared):
                    found.append((node, _declared_message(declared)))
                continue
        if len(node.targets) != 1 or type(node.targets[0].target) is not cst.Name:
            continue
        name = node.targets[0].target.value
        if name not in readers:
            helper = _imported_helper(node.value, imports)
            if helper is not None:
                made[name] = helper
            continue
        helper = _imported_helper(node.value, imports, _ARGS_HELPER)
        if helper is not None and not _reads_env_there(here, helper):
            reason = _blocked(here, tree, helper)
            found.append(
                (
                    node,
                    _woken_message(helper, reason)
                    if reason is not None
                    else f"`--local_rank` is parsed in {helper.where()} ({helper.path()}): run "
                    "ddpfix on that file too, or read LOCAL_RANK there",
                )
            )
    return found


def _blocked(here: Path | None, tree: Tree, helper: Helper) -> str | None:
    """Why this file would break once ``helper``'s module (a file next to ``here``) reads
    LOCAL_RANK: then "run ddpfix on that file" is the wrong advice."""
    if here is None:
        return None
    module = here.parent / helper.path()
    return woken_breaks(here, tree, module) if module.is_file() else None


def _woken_message(helper: Helper, reason: str) -> str:
    return (
        f"`--local_rank` is parsed in {helper.where()} ({helper.path()}), but reading LOCAL_RANK "
        f"there would break this file: {reason}; fix that, then run ddpfix on {helper.path()}"
    )


def _importer_message(reason: str) -> str:
    return (
        "`--local_rank` is parsed here for scripts that import this module, and reading "
        f"LOCAL_RANK here would break one of them: {reason}; fix that, then read LOCAL_RANK here"
    )


def _declaring_helper(
    call: cst.Call, imports: dict[str, tuple[str, str | None]], made: dict[str, Helper]
) -> Helper | None:
    """The imported helper that made the parser ``call`` parses with (``get_argparse()``, or
    ``parser`` after ``parser = make_options()``), whatever its name."""
    assert type(call.func) is cst.Attribute
    declared = _imported_helper(call.func.value, imports)
    receiver = dotted_name(call.func.value)
    return declared or (made.get(receiver) if receiver else None)


def _declared_message(helper: Helper) -> str:
    return (
        f"`--local_rank` is declared in {helper.where()} ({helper.path()}), so its default is "
        "not visible here: read LOCAL_RANK after this parse by hand"
    )


def _hydra_configs(tree: Tree) -> list[tuple[cst.CSTNode, str]]:
    """``@hydra.main`` functions that read ``cfg.local_rank``: the YAML holds the default."""
    imports = import_map(tree)
    found: list[tuple[cst.CSTNode, str]] = []
    for function in tree.nodes(cst.FunctionDef):
        hydra = False
        for decorator in function.decorators:
            target = decorator.decorator
            func = target.func if type(target) is cst.Call else target
            dotted = dotted_name(func) or ""
            head = dotted.split(".")[0]
            hydra = hydra or dotted.endswith("hydra.main") or imports.get(head) == ("hydra", "main")
        params = function.params.params
        if not hydra or not params:
            continue
        config = params[0].name.value
        for node in walk(function.body, into_scopes=True):
            if type(node) is cst.Attribute and node.attr.value == DEST:
                root = node.value
                while type(root) is cst.Attribute:
                    root = root.value
                if type(root) is cst.Name and root.value == config:
                    who = tree.module.code_for_node(node)
                    found.append(
                        (
                            function,
                            f"`{who}` comes from the Hydra config of {function.name.value}(), "
                            "whose default lives in a YAML file ddpfix does not read: set it "
                            "from LOCAL_RANK at the start of the function",
                        )
                    )
                    break
    return found


# --- HfArgumentParser dataclasses (issue 9, class 9c) ------------------------------------------

_DATACLASS_PARSES = (
    "parse_args_into_dataclasses",
    "parse_json_file",
    "parse_yaml_file",
    "parse_dict",
)


def _field_default(tree: Tree) -> tuple[bool, cst.BaseExpression]:
    """(reads the env already, default) of the ``local_rank`` field of the file's dataclasses;
    TrainingArguments' -1 when the file declares none (or several that disagree)."""
    defaults: list[cst.BaseExpression] = []
    for cls in tree.nodes(cst.ClassDef):
        for statement in walk(cls.body, into_scopes=False):
            if (
                type(statement) is cst.AnnAssign
                and type(statement.target) is cst.Name
                and statement.target.value == DEST
                and statement.value is not None
            ):
                value = statement.value
                if type(value) is cst.Call and callee_name(value) == "field":
                    value = keyword_value(value, "default") or value
                if _mentions_local_rank_env(value):
                    return True, value
                defaults.append(value)
    literals = {int_literal(d) for d in defaults}
    if len(literals) == 1 and None not in literals:
        return False, defaults[0]
    return False, cst.UnaryOperation(cst.Minus(), cst.Integer("1"))


def _dataclass_insertions(tree: Tree) -> dict[cst.CSTNode, Replacement]:
    """After ``a, b, training_args = parser.parse_args_into_dataclasses()``, the guarded read
    into the one result whose ``.local_rank`` the file reads."""
    readers = _rank_readers(tree)
    if not readers:
        return {}
    env, default = _field_default(tree)
    if env:
        return {}
    quote = preferred_quote(tree.code)
    found: dict[cst.CSTNode, Replacement] = {}
    for line in _statement_lines(tree):
        statement = line.body[0]
        if type(statement) is not cst.Assign or len(statement.targets) != 1:
            continue
        if parse_call(statement.value, _DATACLASS_PARSES) is None:
            continue
        target = statement.targets[0].target
        names = (
            [e.value for e in target.elements]
            if isinstance(target, (cst.Tuple, cst.List))
            else [target]
        )
        chosen = [n for n in names if type(n) is cst.Name and n.value in readers]
        if len(chosen) == 1:
            found[line] = Around(after=(_guard(tree.module, DEST, default, chosen[0], quote),))
    return found


def _trainer_behind_rank_gate(tree: Tree) -> cst.If | None:
    """An ``if`` on ``x.local_rank`` around a call on a Trainer (``trainer.evaluate()``): every
    rank passes it today (the field stays -1), and the Trainer gathers across ranks, so a real
    rank would leave rank 0 waiting for the others."""
    trainers = {
        target.target.value
        for node in tree.nodes(cst.Assign)
        if type(node.value) is cst.Call and (callee_name(node.value) or "").endswith("Trainer")
        for target in node.targets
        if type(target.target) is cst.Name
    }
    for gate in tree.nodes(cst.If):
        if not any(
            type(n) is cst.Attribute and n.attr.value == DEST
            for n in walk(gate.test, into_scopes=False)
        ):
            continue
        for node in walk(gate.body, into_scopes=False):
            if (
                type(node) is cst.Call
                and type(node.func) is cst.Attribute
                and dotted_name(node.func.value) in trainers
            ):
                return gate
    return None


class LocalRankFromEnv(Rule):
    code = "DDP001"
    name = "local-rank-from-env"
    summary = "Read LOCAL_RANK from the environment when --local_rank was not passed."
    rationale = __doc__
    settles = True
    triggers = ("local_rank", "local-rank")
    examples = (
        Example(
            before="""
                import argparse
                parser = argparse.ArgumentParser()
                parser.add_argument("--local_rank", type=int, default=-1)
                args = parser.parse_args()
            """,
            after=f"""
                import argparse
                import os
                parser = argparse.ArgumentParser()
                parser.add_argument("--local_rank", type=int, default=-1)
                args = parser.parse_args()
                {MARKER}
                if "LOCAL_RANK" in os.environ and args.local_rank == -1:
                    args.local_rank = int(os.environ["LOCAL_RANK"])
            """,
            messages=(
                "read LOCAL_RANK into .local_rank after parsing (torchrun/accelerate pass it "
                "only in the environment)",
            ),
        ),
        Example(
            before="""
                import os
                def get_args(parser):
                    parser.add_argument('--local_rank', type=int, default=-1)
                    return parser.parse_args()
            """,
            after=f"""
                import os
                def get_args(parser):
                    parser.add_argument('--local_rank', type=int, default=-1)
                    args = parser.parse_args()
                    {MARKER}
                    if 'LOCAL_RANK' in os.environ and args.local_rank == -1:
                        args.local_rank = int(os.environ['LOCAL_RANK'])
                    return args
            """,
            messages=(
                "read LOCAL_RANK into .local_rank after parsing (torchrun/accelerate pass it "
                "only in the environment)",
            ),
        ),
        Example(
            before="""
                import os
                parser.add_argument('--local_rank', type=int, default=-1)
                args = parser.parse_args()
                if 'LOCAL_RANK' in os.environ: args.local_rank = int(os.environ['LOCAL_RANK'])
            """,
        ),
        Example(
            before="""
                import os
                parser.add_argument('--local_rank', type=int,
                                    default=int(os.getenv('LOCAL_RANK', -1)))
                args = parser.parse_args()
            """,
        ),
        Example(  # DataParallel-only: no process group for its dormant distributed code
            before="""
                import torch
                parser.add_argument('--local_rank', type=int, default=-1)
                args = parser.parse_args()
                model = torch.nn.DataParallel(model)
                world = torch.distributed.get_world_size() if args.local_rank != -1 else 1
            """,
            reports=1,
            messages=(
                "no process group is ever initialised in this file: reading LOCAL_RANK would run "
                "its distributed code (torch.distributed calls, DistributedSampler) without one "
                "('Default process group has not been initialized'); convert the script to "
                "DistributedDataParallel first (initialise the process group), then read "
                "LOCAL_RANK",
            ),
        ),
        Example(  # the parse happens in configs.py: run ddpfix there
            before="""
                import argparse
                from configs import add_args
                args = add_args(argparse.ArgumentParser())
                print(args.local_rank)
            """,
            reports=1,
            messages=(
                "`--local_rank` is parsed in configs.add_args (configs.py): run ddpfix on that "
                "file too, or read LOCAL_RANK there",
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        options = local_rank_options(tree)
        if not options:
            self._without_option(ctx)
            return
        option = options[0]
        if dataparallel_only(tree):
            return  # DDP016 converts it (a group, then the rank) or reports why it cannot
        if any(o.default is not None and _mentions_local_rank_env(o.default) for o in options):
            return
        if _already_reads_env(tree, option.dest):
            return
        if option.default is not None and not (
            int_literal(option.default) is not None
            or (type(option.default) is cst.Name and option.default.value == "None")
        ):
            ctx.report(
                option.call,
                "--local_rank has a non-literal default; read LOCAL_RANK from the environment "
                "after parsing by hand",
            )
            return
        if lacks_process_group(tree):
            ctx.report(option.call, NO_PROCESS_GROUP)
            return
        if shards_without_wrapping(tree):
            ctx.report(option.call, UNWRAPPED_SHARDS)
            return
        parsers = {o.parser for o in options}
        if _count_parse_statements(tree) == 1:
            parsers = set()  # the only parse in the file is the one that matters
        insertions = _insertions(tree, option, parsers)
        if not insertions:
            ctx.report(
                option.call,
                "--local_rank is defined but its parsed result is not assigned in this file; "
                "read LOCAL_RANK from the environment where the arguments are parsed",
            )
            return
        if ctx.path is not None and (broken := broken_importer(ctx.path)) is not None:
            ctx.report(option.call, _importer_message(broken))
            return
        _fix(ctx, insertions, option.dest)

    def _without_option(self, ctx: RuleContext) -> None:
        """No ``--local_rank`` here: a dataclass parse to fix, or a parse site to name."""
        tree = ctx.tree
        if _already_reads_env(tree, DEST):
            return
        insertions = _dataclass_insertions(tree)
        if insertions and (gate := _trainer_behind_rank_gate(tree)) is not None:
            ctx.report(gate, TRAINER_BEHIND_GATE)
            return
        if insertions:
            _fix(ctx, insertions, DEST)
            return
        found = [*_parsed_elsewhere(tree, ctx.path), *_hydra_configs(tree)]
        for node, message in found:
            ctx.report(node, message)
        if not found and (listed := _listed_flag(tree)) is not None:
            ctx.report(
                listed,
                "--local_rank is declared through a computed add_argument(...) (a list of "
                "option records) ddpfix cannot follow: under torchrun/accelerate it keeps its "
                "default on every process; read LOCAL_RANK from the environment after parsing, "
                "and accept --local-rank too, by hand",
            )


def _listed_flag(tree: Tree) -> cst.SimpleString | None:
    """A ``'--local_rank'`` string in the list of flags of an option record (``CustomArgs(
    ['--local_rank'], default=0, type=int, ...)`` handed to ``add_argument(*opt.flags)`` by a
    config parser, the pytorch-template layout), in a module that parses arguments; not an
    argv list (``main(['--local-rank', '0'])``)."""
    if "add_argument" not in tree.code and "parse_args" not in tree.code:
        return None
    for node in tree.nodes(cst.SimpleString):
        if node.evaluated_value not in ("--local_rank", "--local-rank"):
            continue
        element = tree.parent(node)
        sequence = tree.parent(element) if type(element) is cst.Element else None
        arg = tree.parent(sequence) if type(sequence) in (cst.List, cst.Tuple) else None
        record = tree.parent(arg) if type(arg) is cst.Arg else None
        if type(record) is cst.Call and any(
            a.keyword is not None and a.keyword.value in ("default", "type") for a in record.args
        ):
            return node  # an option record: its flags, default and type, declared later
    return None


def _fix(ctx: RuleContext, insertions: dict[cst.CSTNode, Replacement], dest: str) -> None:
    """The guards, which read ``os.environ``."""
    first = next(iter(insertions))
    ctx.fix(
        first,
        f"read LOCAL_RANK into .{dest} after parsing (torchrun/accelerate pass it only in the "
        "environment)",
        insertions,
        imports=("os",),
    )
