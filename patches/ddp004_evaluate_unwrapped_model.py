"""DDP004 evaluate-unwrapped-model: rank 0 evaluates the model, not its DDP wrapper.

The forward of ``DistributedDataParallel`` is a collective: it broadcasts module buffers (RoBERTa
has ``position_ids``) and, in training mode, prepares a gradient all-reduce. When rank 0 evaluates
alone, the other ranks never join: gloo aborts with a collective mismatch, NCCL hangs until the
process-group timeout.

Where a name holds a wrapped model (``model = DistributedDataParallel(model, ...)`` with any import
path or alias, apex included, or a parameter that a caller passes a wrapped model for) and an
evaluate/test-like function is called with it behind a gate that only rank 0 (or a lone process)
passes, the argument becomes ``model.module if hasattr(model, "module") else model``. The last
assignment before the call decides (a model reloaded with ``from_pretrained`` is not wrapped).
Calls that every rank makes are left alone: there the wrapper is right.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._gates import _GateState
from patches._syntax import (
    callee_name,
    dotted_name,
    is_eval_call,
    module_functions,
    preferred_quote,
    walk,
)

WRAPPER = "DistributedDataParallel"


def _wrapper_aliases(module: cst.Module) -> set[str]:
    """Local names bound to DistributedDataParallel (``from ... import X as DDP``)."""
    names = {WRAPPER}
    for node in walk(module, into_functions=True):
        if isinstance(node, cst.ImportFrom) and not isinstance(node.names, cst.ImportStar):
            for alias in node.names:
                if dotted_name(alias.name) == WRAPPER and alias.asname is not None:
                    asname = alias.asname.name
                    if isinstance(asname, cst.Name):
                        names.add(asname.value)
    return names


def _parameters(function: cst.FunctionDef) -> list[str]:
    params = function.params
    return [p.name.value for p in (*params.posonly_params, *params.params)]


class _WrapFlow(_GateState):
    """Follows, in source order, which local names hold a DDP-wrapped model.

    The last assignment seen before a use decides: ``model = DDP(model)`` wraps, a later
    ``model = Model.from_pretrained(...)`` unwraps. Parameters start wrapped when some caller
    passes a wrapped model for them (``wrapped_params``).
    """

    def __init__(self, aliases: set[str], wrapped_params: dict[str, set[str]]) -> None:
        _GateState.__init__(self)
        self.aliases = aliases
        self.wrapped_params = wrapped_params
        self.state: list[dict[str, bool]] = [{}]

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool | None:
        initial = self.wrapped_params.get(node.name.value, set())
        self.state.append({name: True for name in initial})
        return super().visit_FunctionDef(node)

    def leave_FunctionDef(
        self, original_node: cst.FunctionDef, updated_node: cst.FunctionDef | None = None
    ) -> cst.FunctionDef | None:
        self.state.pop()
        return super().leave_FunctionDef(original_node, updated_node)

    def leave_Assign(
        self, original_node: cst.Assign, updated_node: cst.Assign | None = None
    ) -> cst.Assign | None:
        wraps = (
            isinstance(original_node.value, cst.Call)
            and callee_name(original_node.value) in self.aliases
        )
        for target in original_node.targets:
            node = target.target
            elements = node.elements if isinstance(node, (cst.Tuple, cst.List)) else ()
            for name in [node, *(e.value for e in elements)]:
                if isinstance(name, cst.Name):
                    self.state[-1][name.value] = wraps and name is node
        return updated_node

    def is_wrapped(self, node: cst.BaseExpression) -> bool:
        return isinstance(node, cst.Name) and self.state[-1].get(node.value, False)


class _PassedWrapped(_WrapFlow, cst.CSTVisitor):
    """Finds the parameters of module functions that receive a wrapped model."""

    def __init__(self, aliases: set[str], wrapped_params: dict[str, set[str]], functions):
        _WrapFlow.__init__(self, aliases, wrapped_params)
        cst.CSTVisitor.__init__(self)
        self.functions = functions

    def visit_Call(self, node: cst.Call) -> None:
        if not (isinstance(node.func, cst.Name) and node.func.value in self.functions):
            return
        params = _parameters(self.functions[node.func.value])
        received = self.wrapped_params.setdefault(node.func.value, set())
        for index, arg in enumerate(node.args):
            if arg.star or not self.is_wrapped(arg.value):
                continue
            if arg.keyword is not None:
                received.add(arg.keyword.value)
            elif index < len(params):
                received.add(params[index])


def _wrapped_parameters(module: cst.Module, aliases: set[str]) -> dict[str, set[str]]:
    functions = module_functions(module)
    wrapped: dict[str, set[str]] = {}
    while True:
        before = {name: set(params) for name, params in wrapped.items()}
        module.visit(_PassedWrapped(aliases, wrapped, functions))
        if wrapped == before:
            return wrapped


class _Unwrap(_WrapFlow, cst.CSTTransformer):
    def __init__(self, ctx: RuleContext, aliases: set[str]) -> None:
        _WrapFlow.__init__(self, aliases, _wrapped_parameters(ctx.module, aliases))
        cst.CSTTransformer.__init__(self)
        self.ctx = ctx
        self.quote = preferred_quote(ctx.module.code)

    def _unwrapped(self, name: str) -> cst.BaseExpression:
        q = self.quote
        return cst.parse_expression(f"{name}.module if hasattr({name}, {q}module{q}) else {name}")

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        if not is_eval_call(original_node) or not self.in_rank_zero_region():
            return updated_node
        args = []
        changed = []
        for arg in updated_node.args:
            if not arg.star and self.is_wrapped(arg.value):
                assert isinstance(arg.value, cst.Name)
                changed.append(arg.value.value)
                arg = arg.with_changes(value=self._unwrapped(arg.value.value))
            args.append(arg)
        if not changed:
            return updated_node
        self.ctx.report(
            original_node,
            f"rank 0 evaluates alone: pass the unwrapped {changed[0]} (DDP's forward is a "
            "collective the other ranks never join)",
            fixed=True,
        )
        return updated_node.with_changes(args=args)


class EvaluateUnwrappedModel(Rule):
    code = "DDP004"
    name = "evaluate-unwrapped-model"
    summary = "Evaluation that runs on rank 0 alone gets model.module, not the DDP wrapper."
    rationale = __doc__
    triggers = (WRAPPER, "DDP(")
    examples = (
        Example(
            before=(
                "def train(args, model):\n"
                "    if args.local_rank != -1:\n"
                "        model = torch.nn.parallel.DistributedDataParallel(model)\n"
                "    if args.local_rank in [-1, 0] and args.evaluate_during_training:\n"
                "        results = evaluate(args, model, eval_when_training=True)\n"
            ),
            after=(
                "def train(args, model):\n"
                "    if args.local_rank != -1:\n"
                "        model = torch.nn.parallel.DistributedDataParallel(model)\n"
                "    if args.local_rank in [-1, 0] and args.evaluate_during_training:\n"
                '        results = evaluate(args, model.module if hasattr(model, "module") '
                "else model, eval_when_training=True)\n"
            ),
        ),
        Example(
            before=(
                "def train(args, model):\n"
                "    model = DDP(model)\n"
                "    results = evaluate(args, model)\n"
            ),
        ),
        Example(
            before=(
                "def main(args, model):\n"
                "    if args.do_eval and args.local_rank in [-1, 0]:\n"
                "        evaluate(args, model)\n"
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> cst.Module:
        return ctx.module.visit(_Unwrap(ctx, _wrapper_aliases(ctx.module)))
