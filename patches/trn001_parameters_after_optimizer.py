"""TRN001 parameters-after-optimizer: a layer created after the optimizer never trains.

An optimizer holds the parameters it was given when it was built. A layer created afterwards (a
trainer that adds its LM head once the optimizer exists, a probe added in a fine-tuning loop)
receives gradients, so the loss looks alive, but the optimizer never updates it: in the project
this rule comes from, masked-LM loss sat at the random-guess level for a whole run. The rule
reports a module with parameters (``nn.Linear``, ``nn.Embedding``, ``nn.Parameter``...) created
after an optimizer was constructed, in three shapes:

- in the same function, after the optimizer is built there;
- in a function or method that receives an already-built optimizer as a parameter (named
  ``optimizer``, ``optim``, ``<something>_optimizer``, or annotated ``Optimizer``): a trainer whose
  ``__init__(self, model, optimizer)`` creates ``self.lm_head``;
- in a module function or class ``__init__`` that attaches it to an object it is passed
  (``model.classifier = nn.Linear(...)``), called after the caller built its optimizer.

A layer is not reported when it is handed to an optimizer afterwards (``add_param_group(...)``
naming it, or a new optimizer built from it or from ``<owner>.parameters()``; in a class, any
method counts; in the mirrored shape, any optimizer the caller builds after the call), when its
parameters are frozen (``requires_grad_(False)``, ``requires_grad = False``), or when a function
that receives the optimizer returns the layer to its caller. Report only: where the layer belongs
is the author's call. ``ddpfix verify`` confirms it at run time (ORPHAN).
"""

from __future__ import annotations

import re

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._names import walk
from patches._syntax import callee_name, dominates, dotted_name, module_functions

_OPTIMIZER = re.compile(
    r"^(Adam|AdamW|SGD|Adagrad|Adadelta|Adamax|NAdam|RAdam|RMSprop|LBFGS|Adafactor|Lamb|LAMB)$"
)
_WITH_PARAMETERS = re.compile(
    r"^(Linear|Bilinear|LazyLinear|Embedding|EmbeddingBag|Conv\w*|ConvTranspose\w*|LayerNorm|"
    r"GroupNorm|BatchNorm\w*|InstanceNorm\w*|LSTM|GRU|RNN|LSTMCell|GRUCell|RNNCell|"
    r"MultiheadAttention|Transformer\w*|Parameter|ParameterList|ParameterDict|PReLU)$"
)


def _is_optimizer(call: cst.Call) -> bool:
    name = callee_name(call) or ""
    return bool(_OPTIMIZER.match(name)) or ".optim." in f".{dotted_name(call.func) or ''}."


def _creates_parameters(call: cst.Call) -> bool:
    dotted = dotted_name(call.func) or ""
    name = callee_name(call) or ""
    return bool(_WITH_PARAMETERS.match(name)) and (
        dotted.startswith(("nn.", "torch.nn.")) or dotted in ("Parameter",)
    )


# A parameter that holds an optimizer already built by the caller.
_OPTIMIZER_PARAM = re.compile(r"^(?:\w+_)?(?:optimizer|optimiser|optim)$")


def _code(tree: Tree, node: cst.CSTNode) -> str:
    return tree.module.code_for_node(node)


def _names(target: str, code: str) -> bool:
    """Whether ``code`` hands ``target``'s parameters over: it names the layer, or the
    ``parameters()`` of the object that owns it (``self.parameters()`` for ``self.head``)."""
    if target in code:
        return True
    owner = target.rpartition(".")[0]
    return bool(owner) and (f"{owner}.parameters(" in code or f"{owner}.named_parameters(" in code)


def _hands_over(tree: Tree, target: str, calls: list[cst.Call]) -> bool:
    """An ``add_param_group(...)`` or a new optimizer among ``calls`` that takes the layer."""
    return any(
        (callee_name(c) == "add_param_group" or _is_optimizer(c)) and _names(target, _code(tree, c))
        for c in calls
    )


def _false(node: cst.BaseExpression) -> bool:
    return type(node) is cst.Name and node.value == "False"


def _owned_by(tree: Tree, node: cst.CSTNode, target: str) -> bool:
    """``node`` is ``target`` or a part of it (``self.head.weight`` for ``self.head``)."""
    code = _code(tree, node)
    return code == target or code.startswith(f"{target}.")


def _switched_off(tree: Tree, node: cst.CSTNode, receiver: cst.CSTNode, target: str) -> bool:
    """``receiver`` (what ``node`` turns ``requires_grad`` off for) is part of ``target``, or the
    loop around ``node`` walks ``target.parameters()`` (``for p in head.parameters(): ...``)."""
    if _owned_by(tree, receiver, target):
        return True
    loop = next((a for a in tree.ancestors(node) if type(a) is cst.For), None)
    return loop is not None and f"{target}.parameters(" in _code(tree, loop.iter)


def _freezes(tree: Tree, target: str, nodes: list[cst.CSTNode]) -> bool:
    """``target.requires_grad_(False)``, ``target.weight.requires_grad = False``, or a loop over
    ``target.parameters()`` that switches them off: a frozen layer is not meant to train."""
    for node in nodes:
        if (
            type(node) is cst.Call
            and callee_name(node) == "requires_grad_"
            and type(node.func) is cst.Attribute
            and node.args
            and _false(node.args[0].value)
            and _switched_off(tree, node, node.func.value, target)
        ):
            return True
        if type(node) is cst.Assign and _false(node.value):
            for assign_target in node.targets:
                t = assign_target.target
                if (
                    type(t) is cst.Attribute
                    and t.attr.value == "requires_grad"
                    and _switched_off(tree, node, t.value, target)
                ):
                    return True
    return False


def _enclosing_class(tree: Tree, function: cst.FunctionDef) -> cst.ClassDef | None:
    parent = tree.parent(tree.parent(function) or function)  # FunctionDef <- block <- ClassDef
    return parent if type(parent) is cst.ClassDef else None


def _region(
    tree: Tree, scope: cst.FunctionDef | cst.Module, layer: cst.Assign
) -> list[cst.CSTNode]:
    """Where the layer may still be handed over or frozen: after it in its own function, and,
    for an attribute of ``self``, in every other method of the class."""
    nodes = [n for n in walk(scope, into_scopes=False) if tree.order(n) > tree.order(layer)]
    target = _code(tree, layer.targets[0].target)
    if type(scope) is cst.FunctionDef and target.startswith("self."):
        cls = _enclosing_class(tree, scope)
        if cls is not None:
            nodes += [n for n in walk(cls, into_scopes=True) if not tree.contains(scope, n)]
    return nodes


def _parameters(function: cst.FunctionDef) -> list[cst.Param]:
    params = function.params
    return [*params.posonly_params, *params.params, *params.kwonly_params]


def _optimizer_parameter(function: cst.FunctionDef) -> str | None:
    """The parameter that receives an already-built optimizer, by name or annotation."""
    for param in _parameters(function):
        annotation = param.annotation
        annotated = annotation is not None and (dotted_name(annotation.annotation) or "").endswith(
            "Optimizer"
        )
        if annotated or _OPTIMIZER_PARAM.match(param.name.value):
            return param.name.value
    return None


def _returned(function: cst.FunctionDef, name: str) -> bool:
    """Whether ``function`` returns the local ``name`` (its caller then decides where it goes)."""
    return any(
        type(node) is cst.Return
        and node.value is not None
        and any(
            type(n) is cst.Name and n.value == name for n in walk(node.value, into_scopes=False)
        )
        for node in walk(function.body, into_scopes=False)
    )


def _arguments(callee: cst.FunctionDef, call: cst.Call, method: bool) -> dict[str, str]:
    """Parameter name → the plain name or attribute path the call passes for it."""
    positional = [p.name.value for p in (*callee.params.posonly_params, *callee.params.params)]
    if method:
        positional = positional[1:]
    bound: dict[str, str] = {}
    for index, arg in enumerate(call.args):
        if arg.star:
            break  # unpacked: the following positions are unknown
        name = arg.keyword.value if arg.keyword is not None else None
        if name is None and index < len(positional):
            name = positional[index]
        text = dotted_name(arg.value)
        if name is not None and text is not None:
            bound[name] = text
    return bound


def _callees(module: cst.Module) -> dict[str, tuple[cst.FunctionDef, bool]]:
    """Module functions, and classes by their ``__init__`` (a method: ``self`` is not passed)."""
    found = {name: (fn, False) for name, fn in module_functions(module).items()}
    for statement in module.body:
        if type(statement) is cst.ClassDef and type(statement.body) is cst.IndentedBlock:
            for item in statement.body.body:
                if type(item) is cst.FunctionDef and item.name.value == "__init__":
                    found[statement.name.value] = (item, True)
    return found


class ParametersAfterOptimizer(Rule):
    code = "TRN001"
    name = "parameters-after-optimizer"
    summary = "A layer created after the optimizer gets gradients but is never updated (report)."
    rationale = __doc__
    settles = True
    triggers = ("optim", "Adam", "SGD")
    examples = (
        Example(
            before="""
                class Trainer:
                    def __init__(self, model):
                        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
                        self.lm_head = nn.Linear(768, 50265)
            """,
            reports=1,
            messages=(
                "self.lm_head is created after the optimizer (line 3): it will get gradients but "
                "its parameters never reach the optimizer",
            ),
        ),
        Example(
            before="""
                class Trainer:
                    def __init__(self, encoder, optimizer):
                        self.optimizer = optimizer  # built by the caller
                        self.lm_head = nn.Linear(768, 50265)
            """,
            reports=1,
            messages=(
                "self.lm_head is created after the optimizer this function receives (optimizer, "
                "built by its caller): it will get gradients but its parameters never reach the "
                "optimizer unless added with optimizer.add_param_group(...)",
            ),
        ),
        Example(
            before="""
                def add_classifier(model, num_labels):
                    model.classifier = nn.Linear(768, num_labels)

                def main(args, model):
                    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
                    add_classifier(model, args.num_labels)
            """,
            reports=1,
            messages=(
                "add_classifier() attaches model.classifier after main() built the optimizer: it "
                "will get gradients but its parameters never reach the optimizer (build the "
                "optimizer after the call, or add them with add_param_group)",
            ),
        ),
        Example(
            before="""
                class Trainer:
                    def __init__(self, encoder, optimizer):
                        self.lm_head = nn.Linear(768, 50265)
                        optimizer.add_param_group({'params': self.lm_head.parameters()})
            """,
        ),
        Example(
            before="""
                def main(args, model):
                    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
                    add_classifier(model, args.num_labels)
                    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
            """,
        ),
        Example(
            before="""
                def build(model):
                    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
                    loss_fct = nn.CrossEntropyLoss()
                    return optimizer, loss_fct
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        assigns = [a for a in tree.nodes(cst.Assign) if type(a.value) is cst.Call]
        # a.value is a Call (assigns); arg-type: mypy does not narrow through the filter
        layers = [a for a in assigns if _creates_parameters(a.value)]  # type: ignore[arg-type]
        if not layers:
            return
        optimizers = [a for a in assigns if _is_optimizer(a.value)]  # type: ignore[arg-type]
        callees = _callees(tree.module)
        for layer in layers:
            scope = tree.scope(layer)
            target_node = layer.targets[0].target
            target = _code(tree, target_node)
            region = _region(tree, scope, layer)
            calls = [n for n in region if type(n) is cst.Call]
            if _hands_over(tree, target, calls) or _freezes(tree, target, region):
                continue
            before = [
                o
                for o in optimizers
                if tree.scope(o) is scope
                and tree.order(o) < tree.order(layer)
                and dominates(tree, o, layer)  # not built in another branch
            ]
            if before:
                line = tree.position(before[-1])[0]
                ctx.report(
                    layer,
                    f"{target} is created after the optimizer (line {line}): it will get "
                    "gradients but its parameters never reach the optimizer",
                )
                continue
            if type(scope) is not cst.FunctionDef:
                continue
            param = _optimizer_parameter(scope)
            if param is not None and not (
                type(target_node) is cst.Name and _returned(scope, target)
            ):
                ctx.report(
                    layer,
                    f"{target} is created after the optimizer this function receives ({param}, "
                    "built by its caller): it will get gradients but its parameters never reach "
                    f"the optimizer unless added with {param}.add_param_group(...)",
                )
                continue
            message = _mirrored(tree, layer, target, scope, optimizers, callees)
            if message is not None:
                ctx.report(layer, message)


def _mirrored(
    tree: Tree,
    layer: cst.Assign,
    target: str,
    function: cst.FunctionDef,
    optimizers: list[cst.Assign],
    callees: dict[str, tuple[cst.FunctionDef, bool]],
) -> str | None:
    """The report for a layer that ``function`` attaches to an object it is passed, when a
    caller built its optimizer before the call and builds none (nor adds the layer) after it."""
    owner = target.partition(".")[0]
    if owner == target or owner not in {p.name.value for p in _parameters(function)}:
        return None
    names = [name for name, (fn, _) in callees.items() if fn is function]
    for call in tree.nodes(cst.Call):
        if not (type(call.func) is cst.Name and call.func.value in names):
            continue
        callee, method = callees[call.func.value]
        passed = _arguments(callee, call, method).get(owner)
        scope = tree.scope(call)
        built = [
            o
            for o in optimizers
            if tree.scope(o) is scope
            and tree.order(o) < tree.order(call)
            and dominates(tree, o, call)
        ]
        if passed is None or not built:
            continue
        outer = passed + target[len(owner) :]
        after = [n for n in walk(scope, into_scopes=False) if tree.order(n) > tree.order(call)]
        rebuilt = any(type(n) is cst.Call and _is_optimizer(n) for n in after)
        added = _hands_over(tree, outer, [n for n in after if type(n) is cst.Call])
        if rebuilt or added or _freezes(tree, outer, after):
            continue
        caller = f"{scope.name.value}()" if type(scope) is cst.FunctionDef else "module code"
        seen_as = f" ({outer} there)" if outer != target else ""
        return (
            f"{call.func.value}() attaches {target} after {caller} built the optimizer{seen_as}: "
            "it will get gradients but its parameters never reach the optimizer (build the "
            "optimizer after the call, or add them with add_param_group)"
        )
    return None
