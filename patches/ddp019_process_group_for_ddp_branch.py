"""DDP019 process-group-for-ddp-branch: a local-rank branch wrapping in DDP gets its group.

Some scripts kept the distributed branch of an older template without its setup: UniXcoder's
code completion wraps the model in apex's ``DistributedDataParallel`` under ``if
args.local_rank != -1:`` but never calls ``init_process_group`` (nor pins the rank's GPU). The
branch cannot have run: launched with ``--local_rank`` it stops at "Default process group has
not been initialized". Under ``torchrun`` / ``accelerate launch`` the rank is never read, so
each process trains alone on all the data; DDP001 reports it rather than read LOCAL_RANK into a
branch that would crash.

When the file initialises no process group anywhere (DDP001's test: no ``init_process_group``,
no accelerate, no Trainer, no setup helper from another module) and every DDP wrap it builds is
apex's (a wrap in torch's DDP says the author set the group up where ddpfix cannot see, so
adding one could initialise it twice), the rule sets the group up right before the script's
``args.device = device``, under the same local-rank test as the wrap::

    if args.local_rank != -1:
        if torch.cuda.is_available() and device.type == "cuda":
            torch.cuda.set_device(args.local_rank)
            device = torch.device("cuda", args.local_rank)
        torch.distributed.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
        )
        args.n_gpu = 1
    args.device = device

(``patches/_setup.py``, the lines DDP016's setup is made of). Every process that wraps has set
up the group first: the same test, on a line every path to the wrap passes. The device stays
the one the script chose (``--no_cuda`` keeps the CPU), pinned to the rank's GPU when it is
CUDA, and the backend follows it (gloo on the CPU); ``args.n_gpu`` is 1 (one GPU per process)
when the script sets it before. DDP010 then gives the call its timeout, and DDP001 reads
LOCAL_RANK now that the branch has a group; the rules that follow a rank (DDP007, DDP011,
DDP004) apply as in any distributed script. Started with plain ``python`` (local rank -1) the
script runs exactly as before.

A wrap in the ``else`` of ``if args.local_rank == -1:`` gets ``if args.local_rank != -1:``.
Reported instead: a wrap not under such a test, wraps under different tests,
no ``<args>.device = <device>`` line before the wrap in the function that wraps (or one in a
branch the wrap is outside of), a device bound more than once or not by ``torch.device(...)``,
read (other than logged) between its binding and ``args.device = device``, and code that needs
the group (a ``DistributedSampler``, a collective) before that line: where to put the setup so
that every process uses one device and has the group before it needs it is not certain.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Tree
from patches._gates import rank_comparison
from patches._names import BINDERS, bound_names, is_read, walk
from patches._setup import CUDA, device_assignments, process_group_setup
from patches._syntax import callee_name, dominates, dotted_name
from patches.ddp001_local_rank_from_env import (
    ddp_wraps,
    group_calls,
    lacks_process_group,
)

MARKER = "# ddpfix: the local-rank branch below wraps the model in DDP, which needs a process group"
FIXED = (
    "this local-rank branch wraps the model in DistributedDataParallel, but no process group is "
    "ever initialised ('Default process group has not been initialized'): set it up (gloo "
    "without CUDA) before the script records its device"
)
SET_UP_HERE = "the process group is set up here, on the rank's GPU when the device is CUDA"
NO_GATE = (
    "no process group is ever initialised for this DDP wrap, and it is not under one "
    "`<args>.local_rank != -1` test like the others: set up the process group by hand"
)
NO_ANCHOR = (
    "no process group is ever initialised for this DDP wrap, and there is no `{args}.device = "
    "<device>` line before it (in every path to it) to set one up before: set it up by hand"
)
UNSURE_DEVICE = (
    "no process group is ever initialised for this DDP wrap; `{device}` is {why}, so where the "
    "rank's GPU would be pinned is not certain: set up the process group by hand"
)
EARLY_NEED = (
    "no process group is ever initialised for this DDP wrap, and this call needs one before "
    "`{args}.device = {device}`, where it would be set up: set it up by hand"
)
#: Calls that may read the device without using it (the script logs it).
_LOGGING = frozenset({"debug", "info", "warning", "warn", "error", "critical", "print"})


@dataclass(frozen=True)
class _Site:
    """Where the setup goes: before ``line`` (``args.device = device``), under ``test``."""

    line: cst.SimpleStatementLine
    args: str
    device: str
    test: str


def _gate(tree: Tree, wrap: cst.Call) -> tuple[cst.If, str] | None:
    """The innermost local-rank ``if`` around ``wrap`` in its function, and a test true exactly
    where the wrap runs: ``x.local_rank != -1`` with the wrap in its body, or ``x.local_rank ==
    -1`` with the wrap in its ``else`` (the test is then ``x.local_rank != -1``)."""
    for ancestor in tree.ancestors(wrap):
        if isinstance(ancestor, (cst.FunctionDef, cst.Module)):
            return None
        if type(ancestor) is cst.If and (found := rank_comparison(ancestor.test)):
            rank, values, member = found
            if values != frozenset({-1}):
                return None
            code = tree.module.code_for_node
            if not member and tree.contains(ancestor.body, wrap):
                return ancestor, code(ancestor.test)
            orelse = ancestor.orelse
            if member and type(orelse) is cst.Else and tree.contains(orelse, wrap):
                return ancestor, f"{code(rank)} != -1"
            return None
    return None


def _anchor(
    tree: Tree, function: cst.CSTNode, args: str, first: cst.If
) -> tuple[cst.SimpleStatementLine, str] | None:
    """The last ``args.device = <name>`` of ``function`` that runs whenever ``first`` does."""
    found = None
    for line, target, device in device_assignments(tree):
        if (
            dotted_name(target.value) == args
            and tree.scope(line) is function
            and tree.after(first, line)
            and dominates(tree, line, first)
        ):
            found = (line, device)
    return found


def _device_problem(
    tree: Tree, function: cst.CSTNode, device: str, line: cst.SimpleStatementLine
) -> str | None:
    """Why pinning ``device`` right before ``line`` may not be the device the script uses: it
    is bound more than once or not by ``torch.device(...)``, or used before ``line``."""
    body = function.body if type(function) is cst.FunctionDef else function
    bindings = [
        node
        for node in walk(body, into_scopes=False)
        if isinstance(node, BINDERS) and any(n.value == device for n in bound_names(node))
    ]
    if len(bindings) != 1 or not isinstance(bindings[0], cst.AssignTarget):
        return "bound more than once" if len(bindings) > 1 else "not bound by torch.device(...)"
    binding = bindings[0]
    assign = tree.parent(binding)
    if not (
        type(assign) is cst.Assign
        and type(assign.value) is cst.Call
        and (dotted_name(assign.value.func) or "") in ("torch.device", "device")
    ):
        return "not bound by torch.device(...)"
    if not (tree.after(line, assign) and dominates(tree, assign, line)):
        return "not bound before every path to the setup"
    for node in walk(body, into_scopes=False):
        if (
            type(node) is cst.Name
            and node.value == device
            and tree.after(node, assign)
            and tree.after(line, node)
            and is_read(tree, node)
            and not _logged(tree, node)
        ):
            return "used before the setup would pin it"
    return None


#: What a value may pass through on its way into a logging call and still only be printed:
#: a ``%`` tuple, an f-string, a ``"...".format(...)`` call's arguments.
_FORMATTING = (
    cst.Arg,
    cst.Element,
    cst.Tuple,
    cst.List,
    cst.BinaryOperation,
    cst.FormattedString,
    cst.FormattedStringExpression,
    cst.ConcatenatedString,
)


def _logged(tree: Tree, node: cst.CSTNode) -> bool:
    """Whether ``node`` only reaches a logging call's arguments (``logger.warning(..., device)``,
    ``print("device %s" % (device,))``), which only print it; ``print(model.to(device))``
    uses it."""
    child: cst.CSTNode = node
    for ancestor in tree.ancestors(node):
        if type(ancestor) is cst.Call:
            if type(child) is not cst.Arg:
                return False
            name = callee_name(ancestor)
            if name in _LOGGING:
                return True
            if name != "format":
                return False
        elif not isinstance(ancestor, _FORMATTING):
            return False
        child = ancestor
    return False


def _sets_n_gpu(tree: Tree, function: cst.CSTNode, args: str, line: cst.CSTNode) -> bool:
    """Whether ``args.n_gpu = ...`` runs before ``line`` (the setup's 1 would then stand)."""
    body = function.body if type(function) is cst.FunctionDef else function
    return any(
        type(node) is cst.Assign
        and any(
            type(t.target) is cst.Attribute
            and t.target.attr.value == "n_gpu"
            and dotted_name(t.target.value) == args
            for t in node.targets
        )
        and tree.after(line, node)
        for node in walk(body, into_scopes=False)
    )


def _setup(tree: Tree, site: _Site, n_gpu: bool) -> cst.If:
    """``if <the wrap's test>:`` and the shared setup lines, pinning only a CUDA device."""
    on_gpu = f'{site.device}.type == "cuda"'
    body = process_group_setup(
        site.args,
        site.device,
        pin_test=f"{CUDA} and {on_gpu}",
        backend_test=on_gpu,
        cpu_device=False,
        n_gpu=n_gpu,
    )
    code = f"if {site.test}:\n" + textwrap.indent(body, " " * 4)
    statement = cst.ensure_type(
        cst.parse_statement(code, config=tree.module.config_for_parsing), cst.If
    )
    return statement.with_changes(leading_lines=[cst.EmptyLine(comment=cst.Comment(MARKER))])


class ProcessGroupForDdpBranch(Rule):
    code = "DDP019"
    name = "process-group-for-ddp-branch"
    summary = "A local-rank branch wraps in apex DDP with no process group: set one up."
    rationale = __doc__
    settles = False  # with a group, DDP001 reads LOCAL_RANK and DDP010 adds the timeout
    triggers = ("DistributedDataParallel",)
    examples = (
        Example(
            before="""
                import torch
                def main(args, model):
                    device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
                    args.n_gpu = torch.cuda.device_count()
                    args.device = device
                    model.to(device)
                    if args.local_rank != -1:
                        from apex.parallel import DistributedDataParallel as DDP
                        model = DDP(model)
                    elif args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
            """,  # noqa: E501
            after=f"""
                import torch
                def main(args, model):
                    device = torch.device("cuda" if torch.cuda.is_available() and not args.no_cuda else "cpu")
                    args.n_gpu = torch.cuda.device_count()
                    {MARKER}
                    if args.local_rank != -1:
                        if torch.cuda.is_available() and device.type == "cuda":
                            torch.cuda.set_device(args.local_rank)
                            device = torch.device("cuda", args.local_rank)
                        torch.distributed.init_process_group(
                            backend="nccl" if device.type == "cuda" else "gloo",
                        )
                        args.n_gpu = 1
                    args.device = device
                    model.to(device)
                    if args.local_rank != -1:
                        from apex.parallel import DistributedDataParallel as DDP
                        model = DDP(model)
                    elif args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
            """,  # noqa: E501
            messages=(SET_UP_HERE, FIXED),
        ),
        Example(  # the device is used before the line the setup would go before
            before="""
                import torch
                def main(args, model):
                    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
                    model.to(device)
                    args.device = device
                    if args.local_rank != -1:
                        from apex.parallel import DistributedDataParallel as DDP
                        model = DDP(model)
            """,
            reports=1,
            messages=(
                UNSURE_DEVICE.format(device="device", why="used before the setup would pin it"),
            ),
        ),
        Example(  # a wrap in torch's DDP: the group is set up where ddpfix cannot see
            before="""
                import torch
                def main(args, model):
                    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
                    args.device = device
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        if not lacks_process_group(tree):
            return
        wraps = ddp_wraps(tree)
        if not wraps:
            return  # DataParallel-only dormant code: DDP001 / DDP016
        site = self._site(ctx, wraps)
        if site is None:
            return
        function = tree.scope(site.line)
        ctx.fix(
            wraps[0],
            FIXED,
            {
                site.line: Around(
                    before=(_setup(tree, site, _sets_n_gpu(tree, function, site.args, site.line)),),
                    lead=False,
                )
            },
            also=[(site.line, SET_UP_HERE)],
            imports=("torch",),
        )

    def _site(self, ctx: RuleContext, wraps: list[cst.Call]) -> _Site | None:
        """Where to set up the group, or None after reporting why it is not certain."""
        tree = ctx.tree
        gates = [_gate(tree, wrap) for wrap in wraps]
        codes = {g[1] for g in gates if g is not None}
        functions = {tree.scope(wrap) for wrap in wraps}
        if None in gates or len(codes) != 1 or len(functions) != 1:
            bad = next((w for w, g in zip(wraps, gates) if g is None), wraps[-1])
            ctx.report(bad, NO_GATE)
            return None
        first, test = min((g for g in gates if g is not None), key=lambda g: tree.order(g[0]))
        found = rank_comparison(first.test)
        assert found is not None  # _gate checked it
        rank = found[0]
        assert type(rank) is cst.Attribute
        args = dotted_name(rank.value)
        function = functions.pop()
        anchor = _anchor(tree, function, args, first) if args else None
        if anchor is None or args is None:
            ctx.report(wraps[0], NO_ANCHOR.format(args=args or "args"))
            return None
        line, device = anchor
        why = _device_problem(tree, function, device, line)
        if why is not None:
            ctx.report(wraps[0], UNSURE_DEVICE.format(device=device, why=why))
            return None
        for call in group_calls(tree):
            if tree.scope(call) is function and not tree.after(call, line):
                ctx.report(call, EARLY_NEED.format(args=args, device=device))
                return None
        return _Site(line, args, device, test)
