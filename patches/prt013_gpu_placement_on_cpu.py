"""PRT013 gpu-placement-on-cpu: ``.cuda()`` and ``.to(local_rank)`` fall back to the CPU.

CodeReviewer-style scripts put the model and every batch on the rank's GPU with no CUDA check:
``DDP(model.cuda(), ...)``, ``torch.tensor(...).to(local_rank)``, ``x.cuda(args.local_rank)``.
Without CUDA (a laptop, a CI runner, ``ddpfix verify``'s gloo ranks) every rank dies there with
"Torch not compiled with CUDA enabled". The rule keeps each GPU device expression as written and
adds the CPU next to it: ``.to(local_rank)`` becomes ``.to(local_rank if
torch.cuda.is_available() else "cpu")`` and ``.cuda(X)`` becomes ``.to(X if
torch.cuda.is_available() else "cpu")`` (``.cuda()`` is ``.to("cuda")``: the current device,
which ``torch.cuda.set_device`` chose). With CUDA each call moves to the same device as before.

``.to(...)`` replaces ``.cuda(...)`` only on what is certainly a tensor or a module: a torch
tensor factory's result, an ``nn`` layer, a DDP/DataParallel wrapper, or a model the same
function hands to DDP/DataParallel (any other object may have ``.cuda()`` without ``.to()``),
and only for the current device or the rank (``local_rank``, ``args.local_rank``, ``rank``).
Other receivers and devices (``.cuda(args.gpu)``) are reported. Calls already under a test of
CUDA or of a ``cuda``/``gpu`` flag (``args.no_cuda``, ``args.n_gpu``) are left alone.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._args import keyword_arg
from patches._names import walk
from patches._syntax import callee_name, dotted_name, mentions_cuda_check, preferred_quote

CHECK = "torch.cuda.is_available()"
#: Names of the rank whose GPU ``.to(<rank>)`` means.
RANKS = frozenset({"local_rank", "rank"})
#: What wraps a module (so what it is given, or what it returns, is one).
WRAPPERS = frozenset({"DistributedDataParallel", "DDP", "DataParallel"})
#: ``torch.<factory>(...)`` returns a tensor.
FACTORIES = frozenset(
    {
        "tensor",
        "as_tensor",
        "from_numpy",
        "zeros",
        "ones",
        "full",
        "empty",
        "arange",
        "rand",
        "randn",
        "randint",
        "stack",
        "cat",
        "zeros_like",
        "ones_like",
        "Tensor",
        "LongTensor",
        "FloatTensor",
        "BoolTensor",
    }
)
#: Expressions that need no parentheses before `` if ...``.
_ATOMS = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.SimpleString)


def _is_rank(node: cst.CSTNode) -> bool:
    """``local_rank``, ``args.local_rank``, ``rank``: a rank, so a GPU index."""
    if type(node) is cst.Name:
        return node.value in RANKS
    return type(node) is cst.Attribute and node.attr.value in RANKS


def _mentions_device_flag(node: cst.CSTNode) -> bool:
    """A CUDA check or a name spelling ``cuda``/``gpu`` (``args.no_cuda``, ``n_gpu``)."""
    if mentions_cuda_check(node):
        return True
    for child in walk(node, into_scopes=True):
        if type(child) is cst.Name and any(w in child.value.lower() for w in ("cuda", "gpu")):
            return True
    return False


def _guarded(tree: Tree, node: cst.CSTNode) -> bool:
    """Whether ``node`` runs under a test of CUDA or of a GPU flag (in its function)."""
    child: cst.CSTNode = node
    for ancestor in tree.ancestors(node):
        if isinstance(ancestor, (cst.If, cst.IfExp, cst.While)) and child is not ancestor.test:
            if _mentions_device_flag(ancestor.test):
                return True
        if isinstance(ancestor, (cst.FunctionDef, cst.Module)):
            return False
        child = ancestor
    return False


def _wrapper_call(node: cst.CSTNode | None) -> bool:
    return type(node) is cst.Call and callee_name(node) in WRAPPERS


def _wrapped_names(scope: cst.CSTNode) -> set[str]:
    """Names the function hands to DDP/DataParallel as the module: modules."""
    names = set()
    for node in walk(scope, into_scopes=False):
        if _wrapper_call(node):
            assert type(node) is cst.Call
            first = node.args[0] if node.args else None
            if first is not None and first.keyword is None and type(first.value) is cst.Name:
                names.add(first.value.value)
    return names


def _tensor_or_module(tree: Tree, call: cst.Call) -> bool:
    """Whether the receiver of ``<receiver>.cuda(...)`` is certainly a tensor or a module."""
    assert type(call.func) is cst.Attribute
    receiver = call.func.value
    if type(receiver) is cst.Call:
        name = dotted_name(receiver.func) or ""
        parts = name.split(".")
        if len(parts) == 2 and parts[0] == "torch" and parts[1] in FACTORIES:
            return True
        if parts[0] in ("nn", "torch") and "nn" in parts and parts[-1][:1].isupper():
            return True  # nn.Linear(...), torch.nn.DataParallel(...)
        if _wrapper_call(receiver):
            return True
    arg = tree.parent(call)
    if type(arg) is cst.Arg and arg.keyword is None and _wrapper_call(tree.parent(arg)):
        wrapper = tree.parent(arg)
        assert type(wrapper) is cst.Call
        if wrapper.args[0] is arg:
            return True  # DDP(model.cuda(), ...): what DDP wraps is a module
    return type(receiver) is cst.Name and receiver.value in _wrapped_names(tree.scope(call))


def _or_cpu(device: cst.BaseExpression, module: cst.Module, quote: str) -> cst.BaseExpression:
    code = module.code_for_node(device)
    if not isinstance(device, _ATOMS):
        code = f"({code})"
    return cst.parse_expression(
        f"{code} if {CHECK} else {quote}cpu{quote}", config=module.config_for_parsing
    )


class GpuPlacementOnCpu(Rule):
    code = "PRT013"
    name = "gpu-placement-on-cpu"
    summary = "x.cuda(), x.cuda(local_rank) and x.to(local_rank) fall back to the CPU without CUDA."
    rationale = __doc__
    settles = False  # a placement inside another's receiver is rewritten in the next pass
    triggers = (".cuda(", "rank")
    examples = (
        Example(
            before="""
                import torch
                model = DDP(model.cuda(), device_ids=[local_rank])
                ids = torch.tensor(batch, dtype=torch.long).to(local_rank)
                labels = torch.tensor(ys).cuda(args.local_rank)
            """,
            after="""
                import torch
                model = DDP(model.to("cuda" if torch.cuda.is_available() else "cpu"), device_ids=[local_rank])
                ids = torch.tensor(batch, dtype=torch.long).to(local_rank if torch.cuda.is_available() else "cpu")
                labels = torch.tensor(ys).to(args.local_rank if torch.cuda.is_available() else "cpu")
            """,  # noqa: E501
            messages=(
                ".cuda() needs CUDA: move to the CPU when it is not available",
                ".to(local_rank) needs CUDA: move to the CPU when it is not available",
                ".cuda(args.local_rank) needs CUDA: move to the CPU when it is not available",
            ),
        ),
        Example(
            before="""
                criterion = make_criterion().cuda()
            """,
            after=None,
            reports=1,
            messages=(
                "make_criterion().cuda() needs CUDA, and it is not certain to be a tensor or a "
                "module (which .to() the CPU): guard it with torch.cuda.is_available() by hand",
            ),
        ),
        Example(
            before="""
                if args.n_gpu > 0:
                    model.cuda()
                batch = batch.to(args.device)
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        module = tree.module
        quote = preferred_quote(tree.code)
        for call in tree.nodes(cst.Call):
            func = call.func
            if type(func) is not cst.Attribute or func.attr.value not in ("cuda", "to"):
                continue
            if dotted_name(func.value) == "torch":  # torch.cuda(...) is no placement
                continue
            positional = [a for a in call.args if a.keyword is None]
            if func.attr.value == "to":
                if not positional or not _is_rank(positional[0].value):
                    continue
                if mentions_cuda_check(call) or _guarded(tree, call):
                    continue
                device = positional[0].value
                ctx.fix(
                    call,
                    f".to({module.code_for_node(device)}) needs CUDA: move to the CPU when it is "
                    "not available",
                    {device: _or_cpu(device, module, quote)},
                    imports=("torch",),
                )
                continue
            self._cuda(ctx, call, positional, quote)

    def _cuda(
        self, ctx: RuleContext, call: cst.Call, positional: list[cst.Arg], quote: str
    ) -> None:
        tree, module = ctx.tree, ctx.tree.module
        assert type(call.func) is cst.Attribute
        if _guarded(tree, call):
            return
        named = keyword_arg(call, "device")
        devices = positional + ([named] if named is not None else [])
        where = module.code_for_node(call)
        if len(where) > 50 or "\n" in where:  # a long receiver: the call alone says it
            where = "this .cuda()"
        if len(devices) > 1 or (devices and not _is_rank(devices[0].value)):
            ctx.report(  # .cuda(args.gpu), .cuda(None): not the rank's GPU for certain
                call,
                f"{where} needs CUDA, and its device is not certain to be the rank's GPU: guard "
                "it with torch.cuda.is_available() by hand",
            )
            return
        if not _tensor_or_module(tree, call):
            ctx.report(
                call,
                f"{where} needs CUDA, and it is not certain to be a tensor or a module (which "
                ".to() the CPU): guard it with torch.cuda.is_available() by hand",
            )
            return
        to = call.func.attr.with_changes(value="to")
        if devices:
            device = devices[0].value
            ctx.fix(
                call,
                f".cuda({module.code_for_node(device)}) needs CUDA: move to the CPU when it is "
                "not available",
                {call.func.attr: to, device: _or_cpu(device, module, quote)},
                imports=("torch",),
            )
            return
        cuda = cst.SimpleString(f"{quote}cuda{quote}")
        new = call.with_changes(
            func=call.func.with_changes(attr=to),
            args=[cst.Arg(_or_cpu(cuda, module, quote)), *call.args],
        )
        ctx.fix(
            call,
            ".cuda() needs CUDA: move to the CPU when it is not available",
            {call: new},
            imports=("torch",),
        )
