"""TRN001 parameters-after-optimizer: a layer created after the optimizer never trains.

An optimizer holds the parameters it was given when it was built. A layer created afterwards (a
trainer that adds its LM head once the optimizer exists, a probe added in a fine-tuning loop)
receives gradients, so the loss looks alive, but the optimizer never updates it: in the project
this rule comes from, masked-LM loss sat at the random-guess level for a whole run. The rule
reports a module with parameters (``nn.Linear``, ``nn.Embedding``, ``nn.Parameter``...) created in
the same function after an optimizer was constructed, unless it is handed to an optimizer later
(``add_param_group(...)`` or a new optimizer whose arguments name it). Report only: where
the layer belongs is the author's call. ``ddpfix verify`` confirms it at run time (ORPHAN).
"""

from __future__ import annotations

import re

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._syntax import callee_name, dominates, dotted_name

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


class ParametersAfterOptimizer(Rule):
    code = "TRN001"
    name = "parameters-after-optimizer"
    summary = "A layer created after the optimizer gets gradients but is never updated (report)."
    rationale = __doc__
    settles = True
    triggers = ("optim", "Adam", "SGD")
    examples = (
        Example(
            before=(
                "class Trainer:\n"
                "    def __init__(self, model):\n"
                "        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)\n"
                "        self.lm_head = nn.Linear(768, 50265)\n"
            ),
            reports=1,
        ),
        Example(
            before=(
                "def build(model):\n"
                "    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)\n"
                "    loss_fct = nn.CrossEntropyLoss()\n"
                "    return optimizer, loss_fct\n"
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        calls = [a for a in tree.nodes(cst.Assign) if isinstance(a.value, cst.Call)]
        optimizers = [a for a in calls if _is_optimizer(a.value)]  # type: ignore[arg-type]
        if not optimizers:
            return
        for assign in calls:
            if not _creates_parameters(assign.value):  # type: ignore[arg-type]
                continue
            scope = tree.scope(assign)
            before = [
                o
                for o in optimizers
                if tree.scope(o) is scope
                and tree.order(o) < tree.order(assign)
                and dominates(tree, o, assign)  # not built in another branch
            ]
            if not before:
                continue
            target = tree.module.code_for_node(assign.targets[0].target)
            later = [
                c
                for c in tree.nodes(cst.Call)
                if tree.order(c) > tree.order(assign) and tree.scope(c) is scope
            ]
            if any(
                (callee_name(c) == "add_param_group" or _is_optimizer(c))
                and target in tree.module.code_for_node(c)
                for c in later
            ):
                continue  # handed to the optimizer after all
            line = tree.position(before[-1])[0]
            ctx.report(
                assign,
                f"{target} is created after the optimizer (line {line}): it will get "
                "gradients but its parameters never reach the optimizer",
            )
