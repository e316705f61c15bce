"""DDP016 convert-dataparallel: a DataParallel-only script runs as one process per GPU (DDP).

GraphCodeBERT's tasks, UniXcoder's downstream tasks and many forks wrap the model in
``torch.nn.DataParallel`` and never create a process group. Under ``accelerate launch`` /
``torchrun`` each of the N processes then trains a full copy on the whole data and all of them
write the same files. The rule converts such a script (``DataParallel``, no process group, no
rank anywhere, a training loop) so that, when it is launched with ``WORLD_SIZE`` > 1:

- right before ``args.device = device``, the process group is initialised (NCCL with CUDA, gloo
  without, a 180-minute timeout as DDP010 gives), the device comes from ``LOCAL_RANK``,
  ``args.n_gpu`` is 1 and ``args.local_rank`` holds the local rank (-1 when not launched);
- **batch semantics are kept**: these scripts treat ``--train_batch_size`` as the global batch
  (DataParallel splits it over the GPUs), so each process takes ``train_batch_size //
  world_size``, and a batch that does not divide exactly is refused at start-up with a one-line
  error. A user's hyperparameters mean the same with 1, 2 or 8 processes (and the number of
  optimizer steps per epoch stays the same);
- the training data are sharded: ``RandomSampler(d)`` in a function that trains becomes
  ``RandomSampler(d) if args.local_rank == -1 else DistributedSampler(d)``;
- in the functions that train, file writes (checkpoint saves, ``makedirs``) run on global rank 0
  only, while evaluation and the state it decides (best score, early stop) stay on every rank,
  which all score the same model on the same data.

The rest follows from the other rules once the script has a rank: DDP014 wraps the model in
``DistributedDataParallel`` after its ``DataParallel`` block, DDP007 calls ``set_epoch``, DDP011
and DDP004 run ``do_eval``/``do_test`` on rank 0 with the unwrapped model, DDP012 puts a barrier
before every rank reads rank 0's checkpoint. Started with plain ``python`` (no ``WORLD_SIZE``), the
script runs exactly as before: one process, DataParallel over its GPUs.

Reported instead: a script whose training loss scores each example against the rest of its
batch (in-batch negatives: ``einsum("ab,cb->ac", nl, code)`` against ``arange`` labels, as in
GraphCodeBERT's and UniXcoder's code search): split over processes, each would see fewer
negatives and the objective would change, so the embeddings must be gathered across processes
first (by hand); a ``DataParallel`` script without an ``args.device = <name>`` assignment to
anchor the setup on, or whose training functions have no ``args`` to read the rank from.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Replacement, Tree
from patches._names import walk
from patches._syntax import (
    callee_name,
    calls_in,
    dotted_name,
    global_rank_zero,
    import_fix,
    module_functions,
)
from patches._writes import gate_writes

_COMMENT = "# ddpfix: one process per GPU (DDP) when launched with several processes"
_SETUP = """\
{args}.local_rank = int(os.environ.get("LOCAL_RANK", -1))
if int(os.environ.get("WORLD_SIZE", 1)) > 1:
    if torch.cuda.is_available():
        torch.cuda.set_device({args}.local_rank)
        {device} = torch.device("cuda", {args}.local_rank)
    else:
        {device} = torch.device("cpu")
    torch.distributed.init_process_group(
        backend="nccl" if torch.cuda.is_available() else "gloo",
        timeout=datetime.timedelta(minutes=180),
    )
    {args}.n_gpu = 1
    # --train_batch_size stays the global batch, as DataParallel used it
    if {args}.train_batch_size % torch.distributed.get_world_size():
        raise SystemExit(
            f"--train_batch_size {{{args}.train_batch_size}} is the global batch: it must divide "
            f"by the {{torch.distributed.get_world_size()}} processes"
        )
    {args}.train_batch_size //= torch.distributed.get_world_size()
"""


def _in_batch_negatives(function: cst.FunctionDef) -> bool:
    """A contrastive loss over the batch (GraphCodeBERT's and UniXcoder's code search):
    ``scores = einsum("ab,cb->ac", nl, code)`` or a matrix product, against ``arange`` labels.
    Under DataParallel the batch is global; split per process, the negatives shrink."""
    names = {callee_name(c) for c in calls_in(function)}
    matrix = names & {"einsum", "matmul", "mm", "bmm"} or any(
        isinstance(n, cst.BinaryOperation) and isinstance(n.operator, cst.MatrixMultiply)
        for n in walk(function.body, into_scopes=True)
    )
    return bool(matrix) and "arange" in names


def _trains(function: cst.FunctionDef) -> bool:
    return any(callee_name(c) == "backward" for c in calls_in(function))


def _device_anchor(tree: Tree) -> tuple[cst.SimpleStatementLine, str, str] | None:
    """``args.device = device`` (after ``args.n_gpu = torch.cuda.device_count()``)."""
    for line in tree.nodes(cst.SimpleStatementLine):
        if len(line.body) != 1 or not isinstance(line.body[0], cst.Assign):
            continue
        assign = line.body[0]
        target = assign.targets[0].target if len(assign.targets) == 1 else None
        if (
            isinstance(target, cst.Attribute)
            and target.attr.value == "device"
            and isinstance(target.value, cst.Name)
            and isinstance(assign.value, cst.Name)
        ):
            return line, target.value.value, assign.value.value
    return None


def _uses_distribution(tree: Tree) -> bool:
    code = tree.code
    return any(
        word in code
        for word in ("init_process_group", "local_rank", "DistributedDataParallel", "LOCAL_RANK")
    ) or any(callee_name(c) in ("Accelerator", "prepare") for c in tree.nodes(cst.Call))


def _state(function: cst.FunctionDef) -> set[str]:
    """Names the function binds and reads again (a best score, an early-stop flag)."""
    bound: set[str] = set()
    read: set[str] = set()
    for node in walk(function.body, into_scopes=True):
        if isinstance(node, (cst.AssignTarget, cst.AugAssign)) and isinstance(
            node.target, cst.Name
        ):
            bound.add(node.target.value)
        elif isinstance(node, cst.Name):
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
                    args.local_rank = int(os.environ.get("LOCAL_RANK", -1))
                    if int(os.environ.get("WORLD_SIZE", 1)) > 1:
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
        wraps = [
            c
            for c in tree.nodes(cst.Call)
            if callee_name(c) == "DataParallel" and "Distributed" not in (dotted_name(c.func) or "")
        ]
        if not wraps or _uses_distribution(tree):
            return
        functions = [f for f in module_functions(tree.module).values() if _trains(f)]
        if not functions:
            return
        coupled = next((f for f in functions if _in_batch_negatives(f)), None)
        if coupled is not None:
            ctx.report(
                wraps[0],
                f"DataParallel only, and {coupled.name.value}() scores each example against the "
                "rest of its batch (in-batch negatives: a batch x batch score matrix against "
                "arange labels): as DDP each process would see only its share of the batch and "
                "the objective would change; gather the embeddings across processes before "
                "scoring, then convert by hand",
            )
            return
        anchor = _device_anchor(tree)
        if anchor is None:
            ctx.report(
                wraps[0],
                "DataParallel only: under a launcher every process trains a full copy; no "
                "`args.device = device` to set up DDP before, convert it by hand",
            )
            return
        line, args, device = anchor
        setup = list(cst.parse_module(_SETUP.format(args=args, device=device)).body)
        setup[0] = setup[0].with_changes(
            leading_lines=[cst.EmptyLine(comment=cst.Comment(_COMMENT))]
        )
        replacements: dict[cst.CSTNode, Replacement] = {
            line: Around(before=tuple(setup), lead=False)
        }
        rank = global_rank_zero(cst.Name(args), '"')
        also: list[tuple[cst.CSTNode, str]] = [
            (line, "the process group is set up here when launched")
        ]
        for function in functions:
            params = {p.name.value for p in function.params.params}
            if args not in params:
                ctx.report(
                    function,
                    f"{function.name.value}() trains but has no `{args}` to read the rank from: "
                    "convert it to DDP by hand",
                )
                return
            runs: list[list[cst.BaseStatement]] = []
            body = gate_writes(tree, function.body, _state(function), rank, runs)
            shard = (body or function.body).visit(_ShardSamplers(args))
            assert isinstance(shard, cst.BaseSuite)  # the transformer only rewrites calls
            replacements[function.body] = shard
            also += [(run[0], "written by global rank 0 only when launched") for run in runs]
            also += [
                (call, "the training data are sharded across the processes when launched")
                for call in calls_in(function)
                if callee_name(call) == "RandomSampler" and len(call.args) == 1
            ]
        for name in ("os", "datetime", "torch"):
            replacements.update(import_fix(tree.module, name))
        if "DistributedSampler" not in tree.code:
            replacements.update(_sampler_import(tree))
        ctx.fix(
            wraps[0],
            "DataParallel only: under a launcher every process would train a full copy on all "
            "the data and write the same files; run one DDP process per GPU when launched "
            "(--train_batch_size stays the global batch)",
            replacements,
            also,
        )


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


def _sampler_import(tree: Tree) -> dict[cst.CSTNode, Replacement]:
    new = cst.parse_statement("from torch.utils.data.distributed import DistributedSampler\n")
    for statement in tree.module.body:
        if isinstance(statement, cst.SimpleStatementLine) and any(
            isinstance(s, cst.ImportFrom) for s in statement.body
        ):
            last = statement
    return {last: Around(after=(new,))} if "last" in locals() else {}
