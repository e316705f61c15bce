"""DDP016 convert-dataparallel: a DataParallel-only script runs as one process per GPU (DDP).

GraphCodeBERT's tasks, UniXcoder's downstream tasks and many forks wrap the model in
``torch.nn.DataParallel`` and never create a process group. Under ``accelerate launch`` /
``torchrun`` each of the N processes then trains a full copy on the whole data and all of them
write the same files. The rule converts such a script (``DataParallel``, no process group, no
rank anywhere, a training loop). A ``--local_rank`` option that is only declared, never read
(GraphCodeBERT's refinement and translation keep the template's), is no rank: DDP001 and DDP011
leave such a script to this rule (``patches/_dataparallel.py``), which sets the rank together
with the process group. Training may sit in helper functions that take ``args``, or in the
function that sets up the device itself (``main`` trains, evaluates and tests inline). When the
converted script is launched with ``WORLD_SIZE`` > 1:

- right before ``args.device = device``, the process group is initialised (NCCL with CUDA, gloo
  without, a 180-minute timeout as DDP010 gives), the device comes from ``LOCAL_RANK``,
  ``args.n_gpu`` is 1 and ``args.local_rank`` holds the local rank (-1 otherwise: a single
  process started by a launcher, ``WORLD_SIZE=1`` with ``LOCAL_RANK=0``, has no process group, so
  it must not take the script's distributed branches);
- **batch semantics are kept**: these scripts treat ``--train_batch_size`` as the global batch
  (DataParallel splits it over the GPUs), so each process takes ``train_batch_size //
  world_size``, and a batch that does not divide exactly is refused at start-up with a one-line
  error. A user's hyperparameters mean the same with 1, 2 or 8 processes (and the number of
  optimizer steps per epoch stays the same);
- the training data are sharded: ``RandomSampler(d)`` in a function that trains becomes
  ``RandomSampler(d) if args.local_rank == -1 else DistributedSampler(d)``;
- in the functions that train, file writes (checkpoint saves, ``makedirs``) run on global rank 0
  only, while evaluation and the state it decides (best score, early stop) stay on every rank,
  which all score the same model on the same data;
- in a function that trains (not the one that sets up the device), a call of a helper that writes
  files itself (LongCoder: ``results = evaluate(args, model, ...)`` after each epoch, whose
  ``evaluate`` writes dev.output and dev.gold) runs on global rank 0 alone, together with the
  statements after it that read what it returns (the best-checkpoint block), and gets the
  unwrapped model (``model.module if hasattr(model, "module") else model``: a DDP forward is a
  collective the other ranks would not join). Only when that is certainly safe
  (``patches/_helper_evals.py``): the run leaves no loop or function early, trains nothing,
  binds nothing read outside it (a best score read only there stays rank 0's), touches the
  model only through the helper's arguments or to pick its inner module, and every argument the
  helper runs forward is the model under the name it was wrapped as (so it can be unwrapped).
  Otherwise the script is reported: left on every rank, every process would write the helper's
  files.

The rest follows from the other rules once the script has a rank: DDP014 wraps the model in
``DistributedDataParallel`` after its ``DataParallel`` block, DDP007 calls ``set_epoch``, DDP011
and DDP004 run ``do_eval``/``do_test`` on rank 0 with the unwrapped model, DDP012 puts a barrier
before every rank reads rank 0's checkpoint. Started with plain ``python`` (no ``WORLD_SIZE``), the
script runs exactly as before: one process, DataParallel over its GPUs.

A training loss with in-batch negatives (each query scored against every candidate of its batch:
``scores = torch.einsum("ab,cb->ac", nl_vec, code_vec)`` or ``nl_vec @ code_vec.t()``, against
``torch.arange(n)`` labels, as in GraphCodeBERT's and UniXcoder's code search) is converted too:
split over processes each would see only its share of the negatives and the objective would
change, so when a process group exists the candidates are gathered from every process (a small
autograd function added to the script, ``DdpfixAllGather``: ``all_gather`` forward, backward sums
every process's gradient of the candidates and keeps this process's block) and the labels are
offset by ``rank * <local candidates>``. With a mean cross-entropy and DDP's averaging of the
gradients, each update is the one of the global batch in one process (measured equal to ~1e-6 by
``tests/test_runtime_ddp016_negatives.py``). Without a process group the original expressions
run unchanged. ``torch.distributed.nn.functional.all_gather`` is not used: on gloo its backward
scrambles a non-contiguous gradient, which ``einsum`` produces (torch 2.13).

An evaluation inside a training loop that writes a file, reads it back and decides an early
stop (UniXcoder's summarization: dev.output and dev.gold written, read back for BLEU, ``if
patience == 2: break``) cannot stay on every rank: every rank would rewrite the files and read
them back at once, and a rank that read them half-written could stop alone while the others
wait in their next all-reduce. When certainly safe (``patches/_early_stop.py``: a loop over a
rank-uniform ``range`` or ``while`` test, in no other loop; every exit of it a ``break`` inside
the evaluation, outside any ``try`` of it; the evaluation trains nothing, joins no collective,
touches the model only in ways the rank-0 rules unwrap, and leaves nothing the other ranks
read), that statement runs on global rank 0 alone (DDP004 then gives it the unwrapped model),
its ``break`` becomes ``_ddpfix_stop[0] = True`` (what the evaluation did after the ``break``
runs under ``if not _ddpfix_stop[0]:``), and right after it every rank receives rank 0's decision
(``torch.distributed.broadcast_object_list(_ddpfix_stop, src=0)`` when launched) and leaves the
loop on it, at the same iteration::

    _ddpfix_stop = [False]
    if args.do_eval and int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:
        ...  # decode, write dev.output, read it back, save the best checkpoint
            if patience == 2:
                _ddpfix_stop[0] = True
    if args.local_rank != -1:
        torch.distributed.broadcast_object_list(_ddpfix_stop, src=0)
    if _ddpfix_stop[0]:
        break

Resets of training state at the top of an ``if`` evaluation (``tr_loss = 0``) stay on every
rank. A decision made from memory is the same on every rank, which all score the same model on
the same data, and is converted as before (evaluation on every rank, writes on rank 0). An exit
no process can take is no early stop: UniXcoder's generation tests ``if patience == -1: break``
on a counter that starts at 0 and is only reset to 0 or grown by 1 (``patches/_counters.py``),
and DDP011 then runs its dev evaluation on rank 0.

Reported instead: in-batch negatives whose shape is not certain (several score products in the
function, the score matrix read again as in a symmetric loss, labels not an ``arange`` of the
local batch given straight to the loss, a loss that is not a default mean cross-entropy, or
candidates that are not one model output, such as a memory bank); a ``DataParallel`` script
without an ``args.device = <name>`` assignment to anchor the setup on, whose training functions
have no ``args`` to read the rank from (the function holding the anchor binds it), whose
training function writes files before the anchor (no rank exists there yet), or whose early
stop read back from a file it writes is not of the shape above (a ``return``, a ``break`` in a
``try`` of the evaluation, a loop over data, an evaluation that hands the model to a
helper or updates what other code reads, a best score read after the loop on every rank: the
message says which). Also reported: a script whose training function calls a file-writing
helper that rank 0 cannot run alone (its result decides an early stop, a learning-rate schedule
or other state the training reads), and one whose training functions build no
``RandomSampler(dataset)`` to shard (the loader is built in ``main()`` and handed over, or
shuffles another way): converted, every process would set up the group and split the batch but
still train alone on all the data.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Replacement, Tree
from patches._dataparallel import dataparallel_wraps, training_functions, uses_distribution
from patches._early_stop import (
    DecideOnRankZero,
    RankZeroStop,
    rank_zero_stop,
    received,
    wrapped_names,
)
from patches._helper_evals import HelperEval, helper_evaluations, writing_helpers
from patches._names import walk
from patches._negatives import (
    GATHER_CLASS,
    GATHER_SOURCE,
    InBatchLoss,
    Rewrite,
    find,
    scores_batch_by_batch,
)
from patches._ranks import RankModel, model, write_path
from patches._setup import device_assignments, process_group_setup
from patches._shared_files import loop_exits
from patches._syntax import callee_name, calls_in, global_rank_zero, last_import, unwrapped
from patches._writes import gate_writes, is_write

_COMMENT = "# ddpfix: one process per GPU (DDP) when launched with several processes"
_LAUNCHED = """\
{args}.local_rank = -1
if int(os.environ.get("WORLD_SIZE", 1)) > 1:
    {args}.local_rank = int(os.environ["LOCAL_RANK"])
"""
_GLOBAL_BATCH = """\
    # --train_batch_size stays the global batch, as DataParallel used it
    if {args}.train_batch_size % torch.distributed.get_world_size():
        raise SystemExit(
            f"--train_batch_size {{{args}.train_batch_size}} is the global batch: it must divide "
            f"by the {{torch.distributed.get_world_size()}} processes"
        )
    {args}.train_batch_size //= torch.distributed.get_world_size()
"""


def _setup(args: str, device: str) -> str:
    """The conversion's setup: the rank from LOCAL_RANK when launched, the process group
    (``patches/_setup.py``, with DDP010's default timeout), the global batch kept."""
    group = process_group_setup(args, device, timeout_minutes=180)
    return (
        _LAUNCHED.format(args=args)
        + textwrap.indent(group, " " * 4)
        + _GLOBAL_BATCH.format(args=args)
    )


_EVALUATED = (
    "evaluated by global rank 0 only, with the unwrapped model, when launched: the helper "
    "writes files"
)
_HELPER_WRITES = (
    "DataParallel only, but {function}() calls this helper, which writes files, where rank 0 "
    "cannot run it alone (it leaves a loop early, decides state the training reads, reaches "
    "the model outside the call, or runs forward on an argument ddpfix cannot unwrap): as DDP "
    "every process would write the same files; run it on rank 0 with the unwrapped model, then "
    "convert by hand"
)


_UNSURE = "the in-batch-negatives loss could not be rewritten where it stands; convert it by hand"


_DECIDED = (
    "evaluated by global rank 0 only when launched; its early stop is decided there and "
    "broadcast, so every rank leaves the loop at the same iteration"
)
_SHARED_WRITE = (
    "DataParallel only, but {function}() writes this file on every process, reads it back and "
    "may leave its training loop early (an early stop): as DDP every rank would evaluate, write "
    "the same file and read it back at once, and a rank that read it half-written could stop "
    "alone while the others wait in their next gradient all-reduce (a hang); evaluate on rank 0 "
    "and broadcast the decision, then convert by hand"
)


def _shared_writes_before_exit(
    tree: Tree, function: cst.FunctionDef
) -> dict[cst.For | cst.While, list[cst.Call]]:
    """File writes (on every rank, or gated to rank 0: every rank still reads the file) in a
    loop that a ``break`` or ``return`` may leave, whose file the loop reads back (a call is
    given its name again), by loop: with a process group the ranks must leave the loop
    together, and a decision read from a file they all rewrite at once need not agree
    (UniXcoder's summarization scores dev.gold/dev.output for a patience counter). A decision
    made from memory is the same on every rank, which all score the same model on the same
    data."""
    m = model(tree)
    found: dict[cst.For | cst.While, list[cst.Call]] = {}
    for call in calls_in(function):
        if not is_write(call):
            continue  # gated to rank 0 or not, every rank reads the file back
        path = write_path(call)  # torch.save(obj, path): the path, not the object
        names = _file_names(m, path) if path is not None else set()
        if not names:
            continue
        for loop in _loops(tree, call, function):  # innermost first: a per-example write too
            if not loop_exits(m, loop):
                continue
            others = (other for other in calls_in(loop) if other is not call)
            if any(_reads_back(m, other, names) for other in others):
                found.setdefault(loop, []).append(call)
                break
    return found


def _loops(tree: Tree, node: cst.CSTNode, function: cst.FunctionDef) -> list[cst.For | cst.While]:
    """The loops of ``function`` around ``node``, innermost first."""
    found = []
    for ancestor in tree.ancestors(node):
        if ancestor is function:
            break
        if isinstance(ancestor, (cst.For, cst.While)):
            found.append(ancestor)
    return found


def _rank_zero_stops(
    ctx: RuleContext,
    tree: Tree,
    function: cst.FunctionDef,
    models: set[str],
    evals: list[HelperEval],
    anchor: cst.SimpleStatementLine,
) -> list[RankZeroStop] | None:
    """The evaluations that decide an early stop from files they write, each to run on rank 0
    with its decision broadcast (``patches/_early_stop.py``); None when one cannot (reported)."""
    stops = []
    m = model(tree)
    model_names = models | received(m, function, models)
    for loop, writes in _shared_writes_before_exit(tree, function).items():
        plan = rank_zero_stop(tree, function, loop, writes, model_names)
        beside = [
            e
            for e in evals
            if tree.contains(loop, e.run[0])
            and not (not isinstance(plan, str) and tree.contains(plan.statement, e.run[0]))
        ]
        if not isinstance(plan, str) and (beside or tree.contains(loop, anchor)):
            plan = "the loop also holds a helper evaluation or the device setup"
        if not isinstance(plan, str) and _read_elsewhere(m, plan.statement, loop, writes):
            plan = "the loop reads the file outside its evaluation too"
        if isinstance(plan, str):
            message = _SHARED_WRITE.format(function=function.name.value)
            ctx.report(writes[0], f"{message} (not converted: {plan})")
            return None
        stops.append(plan)
    return stops


def _read_elsewhere(
    m: RankModel, statement: cst.BaseStatement, loop: cst.For | cst.While, writes: list[cst.Call]
) -> bool:
    """Whether code of ``loop`` outside the evaluation ``statement`` reads a file it writes:
    every rank would read what rank 0 alone now writes."""
    names: set[str] = set()
    for write in writes:
        path = write_path(write)
        names |= _file_names(m, path) if path is not None else set()
    return any(
        _reads_back(m, call, names)
        for call in calls_in(loop)
        if not m.tree.contains(statement, call)
    )


#: Calls that only build or test a path: a file name in their arguments is no read.
_PATH_CALLS = frozenset({"join", "format", "exists", "isfile", "isdir", "dirname", "basename"})


def _reads_back(m: RankModel, call: cst.Call, names: set[str]) -> bool:
    """Whether ``call`` is given one of the file ``names`` (``_bleu(join(d, "dev.gold"), ...)``,
    or a name assigned such a path) and is not a write, a path helper or a log line."""
    if is_write(call) or callee_name(call) in _PATH_CALLS | _LOGS:
        return False
    return any(_file_names(m, arg.value) & names for arg in call.args)


#: Log calls: a path they are given is printed, not read.
_LOGS = frozenset({"info", "warning", "debug", "print", "error"})


def _file_names(m: RankModel, node: cst.CSTNode) -> set[str]:
    """The file names an expression's strings spell (``"/dev.gold"`` → ``dev.gold``), following
    the names in it to their assignments in the same function (``hyp_path = join(d,
    "dev.hyp")``)."""
    return {name for name in m.path_words(node) if "." in name.strip(".")}


def _device_anchor(tree: Tree) -> tuple[cst.SimpleStatementLine, str, str] | None:
    """``args.device = device`` (after ``args.n_gpu = torch.cuda.device_count()``)."""
    for line, target, device in device_assignments(tree):
        if type(target.value) is cst.Name:
            return line, target.value.value, device
    return None


def _state(function: cst.FunctionDef) -> set[str]:
    """Names the function binds and reads again (a best score, an early-stop flag)."""
    bound: set[str] = set()
    read: set[str] = set()
    for node in walk(function.body, into_scopes=True):
        if isinstance(node, (cst.AssignTarget, cst.AugAssign)) and isinstance(
            node.target, cst.Name
        ):
            bound.add(node.target.value)
        elif type(node) is cst.Name:
            read.add(node.value)
    return bound & read


class ConvertDataParallel(Rule):
    code = "DDP016"
    name = "convert-dataparallel"
    summary = "A DataParallel-only script runs as one DDP process per GPU when launched."
    rationale = __doc__
    settles = False  # the script now has a rank: DDP014, DDP007, DDP011, DDP012 apply
    triggers = ("DataParallel",)
    examples = (
        Example(
            before="""
                import os
                import torch
                from torch.utils.data import DataLoader, RandomSampler
                def train(args, dataset, model):
                    loader = DataLoader(dataset, sampler=RandomSampler(dataset), batch_size=args.train_batch_size)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                    for batch in loader:
                        model(batch).backward()
                    torch.save(model.state_dict(), os.path.join(args.output_dir, 'model.bin'))
                def main(args, dataset, model):
                    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
                    args.n_gpu = torch.cuda.device_count()
                    args.device = device
                    train(args, dataset, model)
            """,  # noqa: E501
            after="""
                import datetime
                import os
                import torch
                from torch.utils.data import DataLoader, RandomSampler
                from torch.utils.data.distributed import DistributedSampler
                def train(args, dataset, model):
                    loader = DataLoader(dataset, sampler=RandomSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset), batch_size=args.train_batch_size)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                    for batch in loader:
                        model(batch).backward()
                    if int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:
                        torch.save(model.state_dict(), os.path.join(args.output_dir, 'model.bin'))
                def main(args, dataset, model):
                    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
                    args.n_gpu = torch.cuda.device_count()
                    # ddpfix: one process per GPU (DDP) when launched with several processes
                    args.local_rank = -1
                    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
                        args.local_rank = int(os.environ["LOCAL_RANK"])
                        if torch.cuda.is_available():
                            torch.cuda.set_device(args.local_rank)
                            device = torch.device("cuda", args.local_rank)
                        else:
                            device = torch.device("cpu")
                        torch.distributed.init_process_group(
                            backend="nccl" if torch.cuda.is_available() else "gloo",
                            timeout=datetime.timedelta(minutes=180),
                        )
                        args.n_gpu = 1
                        # --train_batch_size stays the global batch, as DataParallel used it
                        if args.train_batch_size % torch.distributed.get_world_size():
                            raise SystemExit(
                                f"--train_batch_size {args.train_batch_size} is the global batch: it must divide "
                                f"by the {torch.distributed.get_world_size()} processes"
                            )
                        args.train_batch_size //= torch.distributed.get_world_size()
                    args.device = device
                    train(args, dataset, model)
            """,  # noqa: E501
            messages=(
                "the training data are sharded across the processes when launched",
                "DataParallel only: under a launcher every process would train a full copy on "
                "all the data and write the same files; run one DDP process per GPU when "
                "launched (--train_batch_size stays the global batch)",
                "written by global rank 0 only when launched",
                "the process group is set up here when launched",
            ),
        ),
        Example(  # in-batch negatives: the codes of every process are scored
            before="""
                import torch
                from torch.utils.data import DataLoader, RandomSampler


                def train(args, dataset, model):
                    loader = DataLoader(dataset, sampler=RandomSampler(dataset), batch_size=args.train_batch_size)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                    for code, nl in loader:
                        code_vec = model(code_inputs=code)
                        nl_vec = model(nl_inputs=nl)
                        scores = torch.einsum("ab,cb->ac", nl_vec, code_vec)
                        loss = torch.nn.CrossEntropyLoss()(scores, torch.arange(code.size(0)))
                        loss.backward()


                def main(args, dataset, model):
                    device = torch.device("cpu")
                    args.n_gpu = torch.cuda.device_count()
                    args.device = device
                    train(args, dataset, model)
            """,  # noqa: E501
            after='''
                import datetime
                import os
                import torch
                from torch.utils.data import DataLoader, RandomSampler
                from torch.utils.data.distributed import DistributedSampler


                class DdpfixAllGather(torch.autograd.Function):
                    """ddpfix: the rows of every process in rank order; backward sums each process's gradient
                    and keeps this process's block (in-batch negatives over the global batch under DDP)."""

                    @staticmethod
                    def forward(ctx, tensor):
                        tensor = tensor.contiguous()
                        parts = [torch.empty_like(tensor) for _ in range(torch.distributed.get_world_size())]
                        torch.distributed.all_gather(parts, tensor)
                        return torch.cat(parts)

                    @staticmethod
                    def backward(ctx, grad):
                        grad = grad.contiguous()
                        torch.distributed.all_reduce(grad)
                        return grad.chunk(torch.distributed.get_world_size())[torch.distributed.get_rank()]


                def train(args, dataset, model):
                    loader = DataLoader(dataset, sampler=RandomSampler(dataset) if args.local_rank == -1 else DistributedSampler(dataset), batch_size=args.train_batch_size)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                    for code, nl in loader:
                        code_vec = model(code_inputs=code)
                        nl_vec = model(nl_inputs=nl)
                        # ddpfix: when launched, score against the candidates of every process (in-batch negatives over the global batch)
                        scores = torch.einsum("ab,cb->ac", nl_vec, code_vec if not torch.distributed.is_initialized() else DdpfixAllGather.apply(code_vec))
                        loss = torch.nn.CrossEntropyLoss()(scores, torch.arange(code.size(0)) if not torch.distributed.is_initialized() else torch.arange(code.size(0)) + torch.distributed.get_rank() * code_vec.size(0))
                        loss.backward()


                def main(args, dataset, model):
                    device = torch.device("cpu")
                    args.n_gpu = torch.cuda.device_count()
                    # ddpfix: one process per GPU (DDP) when launched with several processes
                    args.local_rank = -1
                    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
                        args.local_rank = int(os.environ["LOCAL_RANK"])
                        if torch.cuda.is_available():
                            torch.cuda.set_device(args.local_rank)
                            device = torch.device("cuda", args.local_rank)
                        else:
                            device = torch.device("cpu")
                        torch.distributed.init_process_group(
                            backend="nccl" if torch.cuda.is_available() else "gloo",
                            timeout=datetime.timedelta(minutes=180),
                        )
                        args.n_gpu = 1
                        # --train_batch_size stays the global batch, as DataParallel used it
                        if args.train_batch_size % torch.distributed.get_world_size():
                            raise SystemExit(
                                f"--train_batch_size {args.train_batch_size} is the global batch: it must divide "
                                f"by the {torch.distributed.get_world_size()} processes"
                            )
                        args.train_batch_size //= torch.distributed.get_world_size()
                    args.device = device
                    train(args, dataset, model)
            ''',  # noqa: E501
            messages=(
                "`DdpfixAllGather` added after it: the gather the loss uses",
                "the training data are sharded across the processes when launched",
                "DataParallel only: under a launcher every process would train a full copy on "
                "all the data and write the same files; run one DDP process per GPU when "
                "launched (--train_batch_size stays the global batch)",
                "scored against the candidates of every process when launched",
                "labels offset to this process's block of the candidates",
                "the process group is set up here when launched",
            ),
        ),
        Example(  # already distributed: DDP001 and friends' business
            before="""
                import torch
                def main(args, model):
                    if args.local_rank != -1:
                        torch.distributed.init_process_group(backend='nccl')
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        wraps = dataparallel_wraps(tree)  # dataparallel_only(), each part computed once
        if not wraps or uses_distribution(tree):
            return
        functions = training_functions(tree)
        if not functions:
            return
        if not any(
            callee_name(call) == "RandomSampler" and len(call.args) == 1
            for function in functions
            for call in calls_in(function)
        ):
            names = ", ".join(f"{f.name.value}()" for f in functions)
            ctx.report(
                wraps[0],
                f"DataParallel only, and {names} samples no training data itself (no "
                "`RandomSampler(dataset)` there: the loader is built elsewhere and handed over, "
                "or shuffles another way): as DDP every process would still train on all the "
                "data, alone, with a smaller batch; shard the training data with a "
                "DistributedSampler and convert by hand",
            )
            return
        losses: dict[str, InBatchLoss] = {}
        for function in functions:
            if scores_batch_by_batch(function):
                loss = find(function)
                if loss is None:
                    ctx.report(
                        wraps[0],
                        f"DataParallel only, and {function.name.value}() scores each example "
                        "against the rest of its batch (in-batch negatives: a batch x batch score "
                        "matrix against arange labels) in a shape ddpfix cannot rewrite exactly: "
                        "as DDP each process would see only its share of the batch and the "
                        "objective would change; gather the candidates across processes before "
                        "scoring, then convert by hand",
                    )
                    return
                losses[function.name.value] = loss
        anchor = _device_anchor(tree)
        if anchor is None:
            ctx.report(
                wraps[0],
                "DataParallel only: under a launcher every process trains a full copy; no "
                "`args.device = device` to set up DDP before, convert it by hand",
            )
            return
        line, args, device = anchor
        setup = list(cst.parse_module(_setup(args, device)).body)
        setup[0] = setup[0].with_changes(
            leading_lines=[cst.EmptyLine(comment=cst.Comment(_COMMENT))]
        )
        replacements: dict[cst.CSTNode, Replacement] = {}
        host = tree.scope(line)  # a function that trains and sets up the device (``main``)
        if not (type(host) is cst.FunctionDef and host in functions):
            replacements[line] = Around(before=tuple(setup), lead=False)
        rank = global_rank_zero(cst.Name(args), '"')
        also: list[tuple[cst.CSTNode, str]] = [
            (line, "the process group is set up here when launched")
        ]
        training = {f.name.value for f in functions}
        helpers = writing_helpers(tree, training)
        models = wrapped_names(tree, wraps)
        for function in functions:
            params = {p.name.value for p in function.params.params}
            if args not in params and function is not host:
                ctx.report(
                    function,
                    f"{function.name.value}() trains but has no `{args}` to read the rank from: "
                    "convert it to DDP by hand",
                )
                return
            evals: list[HelperEval] = []
            if function is not host:
                evals, unsafe = helper_evaluations(tree, function, helpers, training, models)
                if unsafe is not None:
                    ctx.report(unsafe, _HELPER_WRITES.format(function=function.name.value))
                    return
            stops = _rank_zero_stops(ctx, tree, function, models, evals, line)
            if stops is None:
                return
            # a helper evaluation inside an evaluation that runs on rank 0 is on rank 0 already
            evals = [
                e for e in evals if not any(tree.contains(p.statement, e.run[0]) for p in stops)
            ]
            keep = frozenset(s for e in evals for s in e.run) | {p.statement for p in stops}
            runs: list[list[cst.BaseStatement]] = []
            body = gate_writes(tree, function.body, _state(function), rank, runs, keep)
            if function is host and any(not tree.after(run[0], line) for run in runs):
                ctx.report(
                    wraps[0],
                    f"DataParallel only: {function.name.value}() writes files before "
                    f"`{args}.device = {device}`, where the process group would be set up; "
                    "convert it to DDP by hand",
                )
                return
            loss = losses.get(function.name.value)
            rewrite = Rewrite(loss) if loss is not None else None
            parts: list[cst.CSTTransformer] = [_ShardSamplers(args)]
            if rewrite is not None:
                parts.append(rewrite)
            if evals:
                parts.append(_GateEvaluations(evals, models, rank))
            if stops:
                parts.append(DecideOnRankZero(stops, args, rank))
            if function is host:
                parts.append(_Before(line, setup))
            new_body = (body or function.body).visit(_Both(parts))
            if loss is not None and rewrite is not None:
                if not rewrite.done:  # a write gate took the loss apart: not ours to guess
                    ctx.report(wraps[0], f"{function.name.value}(): {_UNSURE}")
                    return
                also += [
                    (loss.scores, "scored against the candidates of every process when launched"),
                    (loss.labels, "labels offset to this process's block of the candidates"),
                ]
            assert isinstance(new_body, cst.BaseSuite)  # the transformers only rewrite expressions
            replacements[function.body] = new_body
            also += [(e.run[0], _EVALUATED) for e in evals]
            also += [(p.statement, _DECIDED) for p in stops]
            also += [(run[0], "written by global rank 0 only when launched") for run in runs]
            also += [
                (call, "the training data are sharded across the processes when launched")
                for call in calls_in(function)
                if callee_name(call) == "RandomSampler" and len(call.args) == 1
            ]
        if "DistributedSampler" not in tree.code:
            replacements.update(_sampler_import(tree))
        if losses:
            if GATHER_CLASS in tree.code:
                ctx.report(wraps[0], f"`{GATHER_CLASS}` is taken: {_UNSURE}")
                return
            last = last_import(tree.module)
            if last is None:
                ctx.report(wraps[0], f"no module-level import to add the gather after: {_UNSURE}")
                return
            gather = cst.parse_statement(GATHER_SOURCE.lstrip("\n"))
            gather = gather.with_changes(leading_lines=[cst.EmptyLine(), cst.EmptyLine()])
            replacements[last] = _together(replacements.get(last), Around(after=(gather,)))
            also.append((last, f"`{GATHER_CLASS}` added after it: the gather the loss uses"))
        ctx.fix(
            wraps[0],
            "DataParallel only: under a launcher every process would train a full copy on all "
            "the data and write the same files; run one DDP process per GPU when launched "
            "(--train_batch_size stays the global batch)",
            replacements,
            also,
            imports=("datetime", "os", "torch"),
        )


class _GateEvaluations(cst.CSTTransformer):
    """Each helper evaluation's run of statements under ``if <global rank 0>:``, the model it
    passes to the helper unwrapped (``model.module if hasattr(model, "module") else model``)."""

    def __init__(self, evals: list[HelperEval], models: set[str], rank: cst.Comparison) -> None:
        super().__init__()
        self.firsts = {e.run[0]: e for e in evals}
        self.args = {arg for e in evals for arg in e.call.args}
        self.models = models
        self.rank = rank

    def leave_Arg(self, original: cst.Arg, updated: cst.Arg) -> cst.Arg:
        value = updated.value
        if original not in self.args or type(value) is not cst.Name:
            return updated
        if value.value not in self.models:
            return updated
        return updated.with_changes(value=unwrapped(value.value, '"'))

    def leave_IndentedBlock(
        self, original: cst.IndentedBlock, updated: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        statements = list(updated.body)
        for index in reversed(range(len(original.body))):
            found = self.firsts.get(original.body[index])
            if found is None:
                continue
            size = len(found.run)
            assert tuple(original.body[index : index + size]) == found.run  # gate_writes kept it
            run = statements[index : index + size]
            assert isinstance(run[0], cst.SimpleStatementLine)  # the helper call's own line
            gate = cst.If(
                test=self.rank.deep_clone(),
                body=cst.IndentedBlock([run[0].with_changes(leading_lines=()), *run[1:]]),
                leading_lines=run[0].leading_lines,
            )
            statements[index : index + size] = [gate]
        return updated.with_changes(body=statements)


class _ShardSamplers(cst.CSTTransformer):
    """``RandomSampler(d)`` → ``RandomSampler(d) if args.local_rank == -1 else
    DistributedSampler(d)``."""

    def __init__(self, args: str) -> None:
        super().__init__()
        self.args = args

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if callee_name(updated) != "RandomSampler" or len(updated.args) != 1:
            return updated
        data = updated.args[0].value
        return cst.IfExp(
            test=cst.parse_expression(f"{self.args}.local_rank == -1"),
            body=updated,
            orelse=cst.Call(cst.Name("DistributedSampler"), [cst.Arg(data.deep_clone())]),
            whitespace_before_if=cst.SimpleWhitespace(" "),
            whitespace_after_if=cst.SimpleWhitespace(" "),
            whitespace_before_else=cst.SimpleWhitespace(" "),
            whitespace_after_else=cst.SimpleWhitespace(" "),
        )


class _Before(cst.CSTTransformer):
    """The setup statements right before the ``args.device = device`` line, inside a body this
    rule rebuilds (an ``Around`` on a node inside a rebuilt body would be lost)."""

    def __init__(self, line: cst.SimpleStatementLine, setup: Sequence[cst.BaseStatement]) -> None:
        super().__init__()
        self.line = line
        self.setup = setup

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine | cst.FlattenSentinel[cst.BaseStatement]:
        if original is not self.line:
            return updated
        return cst.FlattenSentinel([*self.setup, updated])


class _Both(cst.CSTTransformer):
    """Transformers in one pass (each is told of the one before's result): the loss rewrite and
    the setup find their nodes by identity, which a second pass over a rebuilt tree would lose.
    Only the last part may flatten a statement into several."""

    def __init__(self, parts: list[cst.CSTTransformer]) -> None:
        super().__init__()
        self.parts = parts

    def on_visit(self, node: cst.CSTNode) -> bool:
        return all([part.on_visit(node) for part in self.parts])

    def on_leave(  # type: ignore[override]  # a part may return any node for this one
        self, original: cst.CSTNode, updated: cst.CSTNode
    ) -> cst.CSTNode | cst.FlattenSentinel[cst.CSTNode]:
        for part in self.parts:
            result = part.on_leave(original, updated)
            if type(result) is cst.FlattenSentinel:
                return result  # _Before, the last part
            assert isinstance(result, cst.CSTNode)  # no part removes a node
            updated = result
        return updated


def _together(first: Replacement | None, then: Around) -> Replacement:
    """Two additions at the same statement (the sampler import, the gather), in order."""
    if not isinstance(first, Around):
        return then
    return Around(first.before + then.before, first.after + then.after, first.lead, first.separate)


def _sampler_import(tree: Tree) -> dict[cst.CSTNode, Replacement]:
    new = cst.parse_statement("from torch.utils.data.distributed import DistributedSampler\n")
    last = last_import(tree.module, kind=cst.ImportFrom)
    return {last: Around(after=(new,))} if last is not None else {}
