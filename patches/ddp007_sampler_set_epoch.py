"""DDP007 sampler-set-epoch: reshuffle a DistributedSampler every epoch.

A ``DistributedSampler`` shuffles with a seed derived from its epoch, and the epoch only changes
when the training loop calls ``sampler.set_epoch(epoch)``. Almost every legacy script forgets it,
so every epoch visits the data in exactly the same order on every rank. The rule finds the
DataLoader whose ``sampler=`` may be a DistributedSampler (built directly, by a conditional
expression, or by an ``if``/``else``), the epoch loop that iterates over that DataLoader (``for idx
in range(...)``, ``for epoch in trange(...)``, any loop variable, the DataLoader used directly or
through ``enumerate``/``tqdm``), and inserts at the top of the epoch loop::

    if hasattr(train_sampler, "set_epoch"):
        train_sampler.set_epoch(idx)

The guard keeps the single-process path (a RandomSampler has no ``set_epoch``) unchanged. A loop
that already calls ``set_epoch`` on that sampler is left alone.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree, walk
from patches._syntax import callee_name, preferred_quote

SAMPLER = "DistributedSampler"


def _may_be_distributed(value: cst.CSTNode) -> bool:
    return any(isinstance(n, cst.Call) and callee_name(n) == SAMPLER for n in walk(value))


def _distributed_samplers(tree: Tree, scope: cst.CSTNode) -> set[str]:
    """Names in ``scope`` assigned something that may be a DistributedSampler."""
    names = set()
    for assign in tree.nodes(cst.Assign):
        if tree.scope(assign) is scope and _may_be_distributed(assign.value):
            for target in assign.targets:
                if isinstance(target.target, cst.Name):
                    names.add(target.target.value)
    return names


def _loaders(tree: Tree, scope: cst.CSTNode, samplers: set[str]) -> dict[str, str]:
    """DataLoader variable -> the sampler variable it draws from."""
    found = {}
    for assign in tree.nodes(cst.Assign):
        value = assign.value
        if tree.scope(assign) is not scope or not isinstance(value, cst.Call):
            continue
        if callee_name(value) != "DataLoader":
            continue
        for arg in value.args:
            if arg.keyword and arg.keyword.value == "sampler" and isinstance(arg.value, cst.Name):
                if arg.value.value in samplers:
                    for target in assign.targets:
                        if isinstance(target.target, cst.Name):
                            found[target.target.value] = arg.value.value
    return found


def _iterates_over(tree: Tree, loop: cst.For, loaders: dict[str, str]) -> str | None:
    """The sampler of the loader that an inner loop of ``loop`` walks through, if any."""
    wrapped: dict[str, str] = {}  # bar = tqdm(train_dataloader) / bar = train_dataloader
    for node in walk(loop.body):
        if isinstance(node, cst.Assign):
            for name in walk(node.value):
                if isinstance(name, cst.Name) and name.value in loaders:
                    for target in node.targets:
                        if isinstance(target.target, cst.Name):
                            wrapped[target.target.value] = loaders[name.value]
        if isinstance(node, cst.For) and node is not loop:
            for name in walk(node.iter):
                if isinstance(name, cst.Name):
                    if name.value in loaders:
                        return loaders[name.value]
                    if name.value in wrapped:
                        return wrapped[name.value]
    return None


def _already_set(loop: cst.For, sampler: str) -> bool:
    for node in walk(loop.body):
        if isinstance(node, cst.Call) and callee_name(node) == "set_epoch":
            receiver = node.func.value if isinstance(node.func, cst.Attribute) else None
            if isinstance(receiver, cst.Name) and receiver.value == sampler:
                return True
    return False


class SamplerSetEpoch(Rule):
    code = "DDP007"
    name = "sampler-set-epoch"
    summary = "Call sampler.set_epoch(epoch) at the top of each epoch of a DistributedSampler loop."
    rationale = __doc__
    settles = True
    triggers = (SAMPLER,)
    examples = (
        Example(
            before=(
                "def train(args, dataset):\n"
                "    train_sampler = RandomSampler(dataset) if args.local_rank == -1 "
                "else DistributedSampler(dataset)\n"
                "    train_dataloader = DataLoader(dataset, sampler=train_sampler)\n"
                "    for idx in range(args.epoch):\n"
                "        bar = tqdm(train_dataloader)\n"
                "        for step, batch in enumerate(bar):\n"
                "            step_once(batch)\n"
            ),
            after=(
                "def train(args, dataset):\n"
                "    train_sampler = RandomSampler(dataset) if args.local_rank == -1 "
                "else DistributedSampler(dataset)\n"
                "    train_dataloader = DataLoader(dataset, sampler=train_sampler)\n"
                "    for idx in range(args.epoch):\n"
                '        if hasattr(train_sampler, "set_epoch"):\n'
                "            train_sampler.set_epoch(idx)\n"
                "        bar = tqdm(train_dataloader)\n"
                "        for step, batch in enumerate(bar):\n"
                "            step_once(batch)\n"
            ),
        ),
        Example(
            before=(
                "sampler = DistributedSampler(dataset)\n"
                "loader = DataLoader(dataset, sampler=sampler)\n"
                "for epoch in range(3):\n"
                "    sampler.set_epoch(epoch)\n"
                "    for batch in loader:\n"
                "        step_once(batch)\n"
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        quote = preferred_quote(tree.code)
        cache: dict[int, dict[str, str]] = {}
        for loop in tree.nodes(cst.For):
            if not isinstance(loop.target, cst.Name) or not isinstance(
                loop.body, cst.IndentedBlock
            ):
                continue
            scope = tree.scope(loop)
            if id(scope) not in cache:
                cache[id(scope)] = _loaders(tree, scope, _distributed_samplers(tree, scope))
            loaders = cache[id(scope)]
            if not loaders or any(isinstance(a, cst.For) for a in tree.ancestors(loop)):
                continue  # not an outermost loop, or no distributed loader here
            sampler = _iterates_over(tree, loop, loaders)
            if sampler is None or _already_set(loop, sampler):
                continue
            epoch = loop.target.value
            code = (
                f"if hasattr({sampler}, {quote}set_epoch{quote}):\n"
                f"    {sampler}.set_epoch({epoch})\n"
            )
            guard = cst.parse_statement(code, config=tree.module.config_for_parsing)
            body = loop.body.with_changes(body=[guard, *loop.body.body])
            ctx.fix(
                loop,
                f"{sampler} is a DistributedSampler here: call set_epoch({epoch}) every epoch, "
                "or every epoch repeats the same shuffle",
                {loop: loop.with_changes(body=body)},
            )
