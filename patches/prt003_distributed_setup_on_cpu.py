"""PRT003 distributed-setup-on-cpu: choose backend and device by ``torch.cuda.is_available()``.

The template's distributed branch hard-codes the GPU: ``torch.cuda.set_device(args.local_rank)``,
``torch.device("cuda", args.local_rank)`` and ``init_process_group(backend="nccl")``. On a machine
without CUDA (a laptop, a CI runner, ``ddpfix verify`` simulating ranks on the CPU) the first call
raises. The rule keeps every GPU path exactly as it was and adds the CPU alternative next to it:
``set_device`` runs only when CUDA is available, the device falls back to ``torch.device("cpu")``
and the backend to ``"gloo"``. On a multi-GPU machine the patched script behaves as before (NCCL,
one device per rank).

Some forks steer CPU machines away from the distributed branch instead: ``if args.local_rank ==
-1 or args.no_cuda or not torch.cuda.is_available(): <device only> else: <init_process_group>``.
Launched on the CPU, every rank then skips the process group while its rank still drives
``barrier()`` and ``DistributedSampler`` calls ("Default process group has not been
initialized"). The rule drops the ``not torch.cuda.is_available()`` term from such a test, so
launched ranks set up the group, with the CPU and gloo fallbacks above; a single process
(``local_rank == -1``) takes the same branch as before.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._args import keyword_arg
from patches._gates import rank_comparison
from patches._syntax import (
    callee_name,
    calls_in,
    dotted_name,
    is_cuda_check,
    mentions_cuda_check,
    string_value,
)

CHECK = "torch.cuda.is_available()"


def _checked(tree: Tree, node: cst.CSTNode) -> bool:
    """Whether ``node`` already sits under a CUDA check (an ``if`` or a conditional)."""
    for ancestor in tree.ancestors(node):
        if isinstance(ancestor, (cst.If, cst.IfExp)) and mentions_cuda_check(ancestor.test):
            return True
        if isinstance(ancestor, (cst.FunctionDef, cst.Module)):
            return False
    return False


def _compared(tree: Tree, node: cst.CSTNode) -> bool:
    """Whether ``node`` is an operand of a comparison (``args.device == torch.device("cuda")``):
    a test of the device, not a placement; on a machine without CUDA it is already false."""
    return type(tree.parent(node)) in (cst.Comparison, cst.ComparisonTarget)


#: Where a conditional expression replacing a value needs no parentheses: it is the whole value
#: of an assignment, an argument, an element, a return. Anywhere else (the branch of another
#: conditional, ``.type`` after it, an operand) ``a if c else b`` would bind differently.
_FREE = (cst.Assign, cst.AnnAssign, cst.AugAssign, cst.Arg, cst.Element, cst.Return)


def _or_terms(node: cst.BaseExpression) -> list[cst.BaseExpression]:
    if type(node) is cst.BooleanOperation and type(node.operator) is cst.Or:
        return _or_terms(node.left) + _or_terms(node.right)
    return [node]


def _without_cpu_escape(gate: cst.If) -> cst.BaseExpression | None:
    """``local_rank == -1 or ... or not torch.cuda.is_available()`` whose ``else`` sets up the
    process group → the same test without the CUDA term; None for any other ``if``."""
    if type(gate.orelse) is not cst.Else or gate.test.lpar:
        return None
    terms = _or_terms(gate.test)
    escapes = [
        t
        for t in terms
        if type(t) is cst.UnaryOperation
        and type(t.operator) is cst.Not
        and is_cuda_check(t.expression)
    ]
    single = [t for t in terms if (found := rank_comparison(t)) and found[1] == frozenset({-1})]
    if len(escapes) != 1 or not single or len(terms) < 2:
        return None
    if not any(callee_name(c) == "init_process_group" for c in calls_in(gate.orelse.body)):
        return None
    rest = [t for t in terms if t is not escapes[0]]
    test = rest[0]
    for term in rest[1:]:
        test = cst.BooleanOperation(left=test, operator=cst.Or(), right=term)
    return test


def _named_backend(tree: Tree, name: cst.BaseExpression) -> list[cst.SimpleString]:
    """The ``"nccl"`` literals a backend held in a name comes from (``args.dist_backend =
    'nccl'`` before ``init_process_group(backend=args.dist_backend)``, FreeYOLO and DETR-style
    ``init_distributed_mode``; ``--dist_backend``'s ``default='nccl'``; a parameter's
    ``backend="nccl"`` default), when every value the name is given is a literal: those are the
    script's own choice of NCCL. Empty when anything else may set it."""
    spelt = dotted_name(name)
    assert spelt is not None
    attribute = spelt.rsplit(".", 1)[-1]
    flags = {f"--{attribute}", f"--{attribute.replace('_', '-')}"}
    found: list[cst.SimpleString] = []
    for node in tree.nodes(cst.Assign):
        if any(dotted_name(t.target) == spelt for t in node.targets):
            if type(node.value) is not cst.SimpleString or _checked(tree, node):
                return []
            if string_value(node.value) == "nccl":
                found.append(node.value)
    if "." not in spelt:  # a parameter's default: ``def setup(backend="nccl")``
        scope = next((a for a in tree.ancestors(name) if type(a) is cst.FunctionDef), None)
        if scope is not None:
            for param in (*scope.params.params, *scope.params.kwonly_params):
                default = param.default
                if param.name.value == spelt and type(default) is cst.SimpleString:
                    if string_value(default) == "nccl":
                        found.append(default)
    if "." in spelt:
        for call in tree.nodes(cst.Call):
            if callee_name(call) != "add_argument":
                continue
            if not any(string_value(a.value) in flags for a in call.args if a.keyword is None):
                continue
            default = keyword_arg(call, "default")
            if default is not None and type(default.value) is cst.SimpleString:
                if string_value(default.value) == "nccl":
                    found.append(default.value)
    return found


def _expression(code: str, module: cst.Module) -> cst.BaseExpression:
    return cst.parse_expression(code, config=module.config_for_parsing)


class DistributedSetupOnCpu(Rule):
    code = "PRT003"
    name = "distributed-setup-on-cpu"
    summary = "NCCL backend, cuda device and set_device fall back to gloo/CPU without CUDA."
    rationale = __doc__
    settles = False  # dropping a CPU escape exposes the distributed branch to the fixes above
    triggers = ("nccl", "set_device", '"cuda"', "'cuda'")
    examples = (
        Example(
            before="""
                import torch
                torch.cuda.set_device(args.local_rank)
                device = torch.device('cuda', args.local_rank)
                torch.distributed.init_process_group(backend='nccl')
            """,
            after="""
                import torch
                if torch.cuda.is_available():
                    torch.cuda.set_device(args.local_rank)
                device = torch.device('cuda', args.local_rank) if torch.cuda.is_available() else torch.device('cpu')
                torch.distributed.init_process_group(backend='nccl' if torch.cuda.is_available() else 'gloo')
            """,  # noqa: E501
            messages=(
                "torch.cuda.set_device needs CUDA: call it only when CUDA is available",
                "a cuda device needs CUDA: fall back to the CPU",
                "NCCL needs CUDA: use gloo when CUDA is not available",
            ),
        ),
        Example(
            before="""
                import torch
                device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
                dist.init_process_group(backend=args.backend)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        module = tree.module
        for gate in tree.nodes(cst.If):
            kept = _without_cpu_escape(gate)
            if kept is not None:
                ctx.fix(
                    gate,
                    "without CUDA this test sends launched ranks past init_process_group: let "
                    "them set up the process group (on gloo and the CPU)",
                    {gate.test: kept},
                )
        chosen: set[int] = set()
        for call in tree.nodes(cst.Call):
            name = callee_name(call)
            if name == "init_process_group":
                arg = keyword_arg(call, "backend")
                if arg is None and call.args and call.args[0].keyword is None:
                    arg = call.args[0]  # the backend is the first parameter
                if arg is None or _checked(tree, arg):
                    continue
                literals = [arg.value] if string_value(arg.value) == "nccl" else []
                if not literals and dotted_name(arg.value) is not None:
                    literals = _named_backend(tree, arg.value)
                for literal in literals:
                    if id(literal) in chosen:
                        continue  # the same choice, passed to another init_process_group
                    chosen.add(id(literal))
                    assert type(literal) is cst.SimpleString
                    q = literal.quote
                    code = module.code_for_node(literal)
                    new = _expression(f"{code} if {CHECK} else {q}gloo{q}", module)
                    ctx.fix(
                        call if literal is arg.value else literal,
                        "NCCL needs CUDA: use gloo when CUDA is not available",
                        {literal: new},
                        imports=("torch",),
                    )
            elif dotted_name(call.func) in ("torch.device", "device") and call.args:
                first = string_value(call.args[0].value)
                if (
                    first
                    and first.startswith("cuda")
                    and not _compared(tree, call)
                    and not _checked(tree, call)
                ):
                    q = cst.ensure_type(call.args[0].value, cst.SimpleString).quote
                    code = module.code_for_node(call)
                    new = _expression(f"{code} if {CHECK} else torch.device({q}cpu{q})", module)
                    if type(tree.parent(call)) not in _FREE:
                        new = new.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
                    ctx.fix(
                        call,
                        "a cuda device needs CUDA: fall back to the CPU",
                        {call: new},
                        imports=("torch",),
                    )
            elif (dotted_name(call.func) or "").endswith("cuda.set_device"):
                line = tree.parent(tree.parent(call))  # Call <- Expr <- SimpleStatementLine
                if (
                    type(line) is cst.SimpleStatementLine
                    and len(line.body) == 1
                    and isinstance(tree.parent(line), (cst.IndentedBlock, cst.Module))
                    and not _checked(tree, call)
                ):
                    guard = cst.parse_statement(
                        f"if {CHECK}:\n    pass\n", config=module.config_for_parsing
                    )
                    assert type(guard) is cst.If and type(guard.body) is cst.IndentedBlock
                    body = guard.body.with_changes(body=[line.with_changes(leading_lines=[])])
                    new_line = guard.with_changes(body=body, leading_lines=line.leading_lines)
                    ctx.fix(
                        call,
                        "torch.cuda.set_device needs CUDA: call it only when CUDA is available",
                        {line: new_line},
                        imports=("torch",),
                    )
