"""DDP011 rank-zero-eval-blocks: evaluation blocks that write files run on one process.

The seq2seq scripts (and some forks of the classification template) evaluate and test in blocks
gated only on their flags: ``if args.do_eval:`` inside the epoch loop, ``if args.do_test:`` at the
end. Under a launcher every rank runs them: each decodes the whole dev set, and all of them write
``dev.output``, ``test_1.output`` and the checkpoints to the same paths at once. The rule adds a
global rank-0 condition to such a block, ``if args.do_eval and int(os.environ.get("RANK",
args.local_rank)) in [-1, 0]:`` (``(args.do_eval or args.do_test) and ...`` when the flags are
joined by ``or``), when the block writes files and trains nothing (no ``backward()``, no optimizer
step, no call to a train function). Blocks already behind a rank condition, and blocks in scripts
without ``--local_rank``, are left alone, as are DataParallel-only scripts whose ``--local_rank``
is declared and never read: there is no rank until DDP016 converts them, and it comes first.

What every rank does around the block decides the form of the rewrite (the rank model,
``patches/_ranks.py``):

- Writes made by a function the block calls count (``test(...)`` writing ``test_1.output``).
- A block that reaches a collective (``dist.barrier()``, accelerate's ``gather``, the HF
  ``Trainer``'s ``evaluate``/``predict``, which gather across ranks) must run on every rank: it is
  never gated. The functions it calls are followed with the literal flags it passes (the
  template's ``evaluate()`` calls ``load_and_cache_examples(..., evaluate=True)``, whose barriers
  sit behind ``not evaluate``: that block reaches none, and is gated like any other). It is
  reported when it writes files itself outside a rank-0 condition (an
  ``accelerator.is_main_process`` guard counts); Trainer and accelerate methods that write
  (``save_metrics``, ``save_model``) do so on the main process by themselves. A DDP wrap that
  an evaluation function makes of its own model and can do without (CodeXGLUE token-level
  completion's ``eval_acc()``: ``patches/_eval_wraps.py``), in a function only this block
  calls, does not count: the block is gated and the wrap removed in the same rewrite (the
  function then runs on rank 0 alone, where the wrap would wait for the other ranks forever).
- A block that also updates training state, names it binds that are read outside it (the
  seq2seq template resets ``tr_loss``, ``nb_tr_steps`` and ``eval_flag``, which drive gradient
  accumulation), keeps those updates on every rank: when they are plain assignments at the top of
  the block, only the rest (evaluation, writes, logging) moves under an inner ``if int(os.environ.
  get("RANK", args.local_rank)) in [-1, 0]:``. Not when the rest also leaves the loop (a
  ``break``, ``continue`` or ``return``): under that test only rank 0 would take the exit, the
  others training on alone; an early stop is then decided on rank 0 and broadcast, as below, or
  the block is handled as the next case. Otherwise (state updated all through the evaluation,
  an early stop decided from its score) only its writes do: each run of write-only statements
  (saves, ``if not os.path.exists(d): os.makedirs(d)``, blocks of them, with the logs and path
  names between them) goes under that test, and the evaluation and the state updates stay on
  every rank, which all score the same model on the same data and so decide alike. When the
  evaluation shards its data (a ``DistributedSampler`` reached from the block) they would not:
  the block is reported. Gating all of it would make the ranks step on different iterations.
  Nor do they when the score is read back from files every rank rewrites at once (CodeT5's
  ``eval_bleu_epoch`` writes ``test_e0.gold``/``.output`` on every rank and scores them with
  ``_bleu(gold_fn, output_fn)``; ``patches/_shared_files.py`` follows the calls from the block):
  a rank that reads another's half-written copy can stop alone, and once the model is wrapped
  in DDP (DDP014) the others hang in their next all-reduce. Such a block that decides an early
  stop (a ``break`` of its loop) runs on global rank 0 alone when that is certainly safe
  (``patches/_early_stop.py``: a loop over a rank-uniform ``range``, every ``break`` inside the
  block, nothing the other ranks read bound in it, no training, no collective, the model only
  passed to evaluations or unwrapped): each ``break`` sets a flag, what followed a ``break`` in
  the block runs under ``if not <flag>:``, and every rank receives rank 0's flag right after the
  block and leaves the loop on it, at the same iteration; DDP004 then gives the evaluations the
  unwrapped model (CodeT5's ``eval_ppl_epoch`` computes its loss through the model: as a DDP
  forward on rank 0 alone it would hang)::

    _ddpfix_stop = [False]
    if args.do_eval and int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:
        ...  # the evaluation, its writes, the best checkpoints, the summary log
                _ddpfix_stop[0] = True  # was: break
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.broadcast_object_list(_ddpfix_stop, src=0)
    if _ddpfix_stop[0]:
        break

  Otherwise (the best score read after the loop, a ``return``, a loop over the data: the report
  says which) the block's own writes are still gated (one writer per checkpoint) and the block
  is reported, naming the function and the file: writing and scoring on rank 0 and
  broadcasting the decision is then a rewrite by hand.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree, children
from patches._dataparallel import dataparallel_only
from patches._early_stop import GROUP, DecideOnRankZero, RankZeroStop, model_names, rank_zero_stop
from patches._eval_wraps import EvalWrap, evaluation_wraps
from patches._gates import OTHER, RANK0, gates, in_rank_zero_region, truth
from patches._names import BINDERS, SCOPES, bound_names, filled_name, walk
from patches._ranks import NODE0 as NODE0_KIND
from patches._ranks import OTHER as OTHER_KIND
from patches._ranks import RANK0 as RANK0_KIND
from patches._ranks import RankModel, innermost_loop, model
from patches._shared_files import ReadBack, read_back
from patches._syntax import (
    EVAL_FLAGS,
    callee_name,
    calls_in,
    dotted_name,
    global_rank_zero,
    is_collective_call,
    is_eval_call,
    is_save_call,
    module_functions,
    one_line,
    preferred_quote,
)
from patches._writes import gate_writes, is_write, library_call

FLAGS = EVAL_FLAGS


def _flag(test: cst.BaseExpression) -> cst.Attribute | None:
    for node in walk(test, into_scopes=False):
        if type(node) is cst.Attribute and node.attr.value in FLAGS:
            return node
    return None


def _trains(body: cst.BaseSuite) -> bool:
    """``loss.backward()``, ``optimizer.step()`` or a call to a ``train...`` function
    (``model.train()`` only switches a mode)."""
    for call in calls_in(body):
        name = callee_name(call) or ""
        receiver = dotted_name(call.func.value) if type(call.func) is cst.Attribute else ""
        if name == "backward" or (name == "step" and "optim" in (receiver or "")):
            return True
        if type(call.func) is cst.Name and name.startswith("train"):
            return True
    return False


def _as_and_operand(test: cst.BaseExpression) -> cst.BaseExpression:
    """``a or b`` gets parentheses before ``and rank``: ``a or b and rank`` is ``a or (b and
    rank)``, and the block would still run on every rank when ``a`` holds."""
    binds_looser = (
        type(test) is cst.BooleanOperation and type(test.operator) is cst.Or
    ) or isinstance(test, (cst.IfExp, cst.Lambda, cst.NamedExpr))
    if binds_looser and not test.lpar:
        return test.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return test


def _joined_text(ranks: RankModel, call: cst.Call) -> str:
    """The collective a call of the block joins: ``the collective torch.distributed.barrier()``
    itself, or ``a collective through evaluate()`` in a function the block calls."""
    if is_collective_call(call):
        return f"the collective {dotted_name(call.func) or 'call'}()"
    return f"a collective through {ranks.collective(call, RANK0_KIND)}"


def _reached_calls(body: cst.BaseSuite, functions: dict[str, cst.FunctionDef]) -> list[cst.Call]:
    """The calls in ``body`` and, transitively, in the module functions it calls."""
    found: list[cst.Call] = []
    pending: list[cst.CSTNode] = [body]
    seen: set[str] = set()
    while pending:
        for call in calls_in(pending.pop()):
            found.append(call)
            name = callee_name(call)
            if type(call.func) is cst.Name and name in functions and name not in seen:
                seen.add(name)
                pending.append(functions[name].body)
    return found


def _state_prefix(body: cst.BaseSuite, state: set[str]) -> int | None:
    """How many leading statements only reset ``state`` (plain assignments without calls);
    None when the rest of the block still binds some of it or fills it (``d[k] = v``)."""
    if type(body) is not cst.IndentedBlock:
        return None
    count = 0
    for statement in body.body:
        if type(statement) is not cst.SimpleStatementLine or not all(
            isinstance(small, (cst.Assign, cst.AugAssign))
            and not any(type(n) is cst.Call for n in walk(small.value, into_scopes=False))
            and {n.value for n in bound_names(_target_holder(small))} <= state
            for small in statement.body
        ):
            break
        count += 1
    rest = body.body[count:]
    if count == 0 or not rest:
        return None
    for statement in rest:
        for binder in walk(statement, into_scopes=False):
            if isinstance(binder, BINDERS) and {n.value for n in bound_names(binder)} & state:
                return None
            if filled_name(binder) in state:  # ``handles[task] = ...`` fills it
                return None
    return count


def _target_holder(small: cst.BaseSmallStatement) -> cst.CSTNode:
    if type(small) is cst.Assign:
        if len(small.targets) == 1:
            return small.targets[0]
        return cst.AssignTarget(cst.Tuple([cst.Element(t.target) for t in small.targets]))
    return small


def _split(node: cst.If, keep: int, rank: cst.Comparison) -> cst.If:
    """``node`` with its first ``keep`` statements as they are and the rest under ``rank``."""
    assert type(node.body) is cst.IndentedBlock
    statements = list(node.body.body)
    rest = statements[keep:]
    inner = cst.If(
        test=rank,
        body=cst.IndentedBlock(body=rest),
        leading_lines=[],
    )
    return node.with_changes(body=node.body.with_changes(body=[*statements[:keep], inner]))


#: What leaves a block early (concrete types: tested by ``type``, without ``ABCMeta``).
_EXITS = frozenset({cst.Break, cst.Continue, cst.Return})


def _leaves(body: cst.BaseSuite, ranks: RankModel) -> str | None:
    """``break``/``continue``/``return`` taken from inside ``body`` out of it (an early stop):
    a decision every rank must make alike. One that no process can take (UniXcoder's ``if
    patience == -1: break`` on a counter that never goes below zero) is no early stop."""
    stack: list[cst.CSTNode] = [body]
    while stack:
        node = stack.pop()
        if type(node) in _EXITS and ranks.dead(node):
            continue
        if isinstance(node, (cst.Break, cst.Continue)):
            return "an early " + ("stop" if type(node) is cst.Break else "continue")
        if type(node) is cst.Return:
            return "an early return"
        if isinstance(node, (cst.For, cst.While)):
            stack.extend(children(node.orelse) if node.orelse else ())  # its own break is inside
            continue
        if isinstance(node, SCOPES):
            continue
        stack.extend(children(node))
    return None


def _only_dropped_wraps(
    tree: Tree, block: cst.If, call: cst.Call, functions: dict[str, cst.FunctionDef]
) -> bool:
    """Whether every collective ``call`` joins is a DDP wrap that an evaluation function makes
    of its own model (``patches/_eval_wraps.py``) in a function that only this block (or code
    on rank 0 alone) calls: the gate removes the wrap with it. A function the other ranks
    still call at another site keeps its wrap there, and so keeps the block on every rank."""
    wraps = evaluation_wraps(tree)
    if is_collective_call(call):
        reached = [call]
    elif type(call.func) is cst.Name and call.func.value in functions:
        reached = _reached_calls(functions[call.func.value].body, functions)
    else:
        return False
    collectives = [c for c in reached if is_collective_call(c)]
    if not collectives or any(id(c) not in wraps for c in collectives):
        return False
    holders = {wraps[id(c)].function.name.value for c in collectives}
    return all(_called_only_from(tree, name, block) for name in holders)


def _wraps_reached(tree: Tree, calls: list[cst.Call]) -> list[EvalWrap]:
    """The evaluation wraps among ``calls`` (what the block reaches): they go with the gate."""
    wraps = evaluation_wraps(tree)
    found = {id(w.statement): w for c in calls if (w := wraps.get(id(c))) is not None}
    return list(found.values())


def _called_only_from(tree: Tree, name: str, block: cst.If) -> bool:
    """Whether every use of the module function ``name`` is a call inside ``block`` or in a
    region only rank 0 runs (it is never passed around by name)."""
    for node in tree.nodes(cst.Name):
        if node.value != name or tree.contains(block, node):
            continue
        parent = tree.parent(node)
        if type(parent) is cst.FunctionDef and parent.name is node:
            continue
        if not (type(parent) is cst.Call and parent.func is node):
            return False
        if not in_rank_zero_region(tree, parent):
            return False
    return True


def _scored(tree: Tree, flag: str, leaves: str, scored: ReadBack) -> str:
    """The report of an every-rank evaluation scored from files every rank rewrites."""
    who = f"{scored.function}()" if scored.function else "it"
    read = one_line(tree, scored.read, 60)
    return (
        f"this {flag} block keeps its evaluation on every rank for {leaves} it decides, but "
        f"{who} writes {scored.file} on every rank and reads it back (`{read}`) to score: a "
        "rank that reads another rank's half-written copy scores differently and can make "
        f"{leaves} alone while the others wait in their next collective (a hang once the "
        "model is wrapped in DDP); write and score on rank 0 and broadcast the decision, by hand"
    )


_DECIDED = (
    "every rank runs this {flag} block, which writes files{how} and decides an early stop: it "
    "runs on global rank 0 alone (with the unwrapped model), and its decision is broadcast so "
    "that every rank leaves the loop at the same iteration"
)


def _rank_zero_stop(ranks: RankModel, block: cst.If) -> RankZeroStop | str:
    """The plan to run ``block`` (and the loop statement holding it) on global rank 0 with its
    early stop broadcast (``patches/_early_stop.py``), or why there is none."""
    tree = ranks.tree
    loop = innermost_loop(tree, block)
    if not isinstance(loop, (cst.For, cst.While)):
        return "it is in no loop"
    function = tree.scope(loop)
    if type(function) is not cst.FunctionDef:
        return "its loop is in no function"
    return rank_zero_stop(tree, function, loop, [block], model_names(ranks, function))


def _global_rank_zero_only(ranks: RankModel, call: cst.Call) -> bool:
    return ranks.runs(call, OTHER_KIND) is False and ranks.runs(call, NODE0_KIND) is False


def _rank_gated(tree: Tree, node: cst.If) -> bool:
    tests = [node.test, *gates(tree, node)]
    return any(truth(t, OTHER) is not None or truth(t, RANK0) is not None for t in tests)


class RankZeroEvalBlocks(Rule):
    code = "DDP011"
    name = "rank-zero-eval-blocks"
    summary = "do_eval/do_test blocks that write files run on global rank 0 only."
    rationale = __doc__
    settles = False  # the block becomes a rank-0 region: DDP004/DDP005 may apply inside
    triggers = ("do_eval", "do_test", "do_predict", "do_infer")
    examples = (
        Example(
            before="""
                import os
                def eval_acc(args, model, blocks):
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
                    with open(os.path.join(args.output_dir, 'predictions.txt'), 'w') as f:
                        f.write(decode(model(blocks)))
                parser.add_argument('--local_rank', type=int, default=-1)
                if args.do_eval:
                    eval_acc(args, model, blocks)
            """,
            after="""
                import os
                def eval_acc(args, model, blocks):
                    with open(os.path.join(args.output_dir, 'predictions.txt'), 'w') as f:
                        f.write(decode(model(blocks)))
                parser.add_argument('--local_rank', type=int, default=-1)
                if args.do_eval and int(os.environ.get('RANK', args.local_rank)) in [-1, 0]:
                    eval_acc(args, model, blocks)
            """,
            messages=(
                "eval_acc() now runs on rank 0 alone: it evaluates model unwrapped (building the "
                "DDP wrapper is a collective the other ranks would never join; an evaluation has "
                "no gradients to synchronise)",
                "every rank runs this do_eval block and writes the same files: run it on global "
                "rank 0",
            ),
        ),
        Example(
            before="""
                import os
                parser.add_argument('--local_rank', type=int, default=-1)
                if args.do_test:
                    with open(os.path.join(args.output_dir, 'test.output'), 'w') as f:
                        f.write(decode(model))
            """,
            after="""
                import os
                parser.add_argument('--local_rank', type=int, default=-1)
                if args.do_test and int(os.environ.get('RANK', args.local_rank)) in [-1, 0]:
                    with open(os.path.join(args.output_dir, 'test.output'), 'w') as f:
                        f.write(decode(model))
            """,
            messages=(
                "every rank runs this do_test block and writes the same files: run it on global "
                "rank 0",
            ),
        ),
        Example(  # an early stop scored from files every rank rewrites: decided on rank 0
            before="""
                import os
                def score(args, model, data):
                    path = os.path.join(args.output_dir, 'dev.output')
                    with open(path, 'w') as f:
                        f.write(decode(model(data)))
                    return bleu(path, args.gold_file)
                def train(args, model, data):
                    best, bad = 0, 0
                    for epoch in range(args.epochs):
                        step(model, data)
                        if args.do_eval:
                            dev = score(args, model, data)
                            if dev > best:
                                best, bad = dev, 0
                            else:
                                bad += 1
                                if bad > args.patience:
                                    break
                parser.add_argument('--local_rank', type=int, default=-1)
            """,
            after="""
                import os
                import torch
                def score(args, model, data):
                    path = os.path.join(args.output_dir, 'dev.output')
                    with open(path, 'w') as f:
                        f.write(decode(model(data)))
                    return bleu(path, args.gold_file)
                def train(args, model, data):
                    best, bad = 0, 0
                    for epoch in range(args.epochs):
                        step(model, data)
                        # ddpfix: rank 0 evaluates and decides the early stop; every rank follows it
                        _ddpfix_stop = [False]
                        if args.do_eval and int(os.environ.get('RANK', args.local_rank)) in [-1, 0]:
                            dev = score(args, model, data)
                            if dev > best:
                                best, bad = dev, 0
                            else:
                                bad += 1
                                if bad > args.patience:
                                    _ddpfix_stop[0] = True
                        if torch.distributed.is_available() and torch.distributed.is_initialized():
                            torch.distributed.broadcast_object_list(_ddpfix_stop, src=0)
                        if _ddpfix_stop[0]:
                            break
                parser.add_argument('--local_rank', type=int, default=-1)
            """,
            messages=(
                "every rank runs this do_eval block, which writes files, reads them back to "
                "score and decides an early stop: it runs on global rank 0 alone (with the "
                "unwrapped model), and its decision is broadcast so that every rank leaves the "
                "loop at the same iteration",
            ),
        ),
        Example(
            before="""
                parser.add_argument('--local_rank', type=int, default=-1)
                if args.do_train:
                    loss.backward()
                    torch.save(model.state_dict(), 'model.bin')
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        if "local_rank" not in tree.code or dataparallel_only(tree):
            return  # no rank; a DataParallel-only script gets one from DDP016 first
        quote = preferred_quote(tree.code)
        functions = module_functions(tree.module)
        ranks = model(tree)
        for node in tree.nodes(cst.If):
            flag = _flag(node.test)
            if flag is None or node.orelse is not None or _rank_gated(tree, node):
                continue
            calls = _reached_calls(node.body, functions)
            # a write its callee already keeps on global rank 0 (DDP017's test()) is no reason
            writes = any(
                is_save_call(c) and not library_call(c) and not _global_rank_zero_only(ranks, c)
                for c in calls
            )
            if all(
                ranks.runs(c, OTHER_KIND) is False
                for c in calls_in(node.body)
                if is_save_call(c) or is_eval_call(c) or callee_name(c) in functions
            ):
                continue  # split already: what it does beyond state resets is on rank 0
            if (
                not writes
                or _trains(node.body)
                or not any(is_eval_call(c) or is_save_call(c) for c in calls)
            ):
                continue
            # the block's own calls, each judged with the literal flags it passes on (the
            # template's evaluate() → load_and_cache_examples(..., evaluate=True), whose
            # barriers sit behind ``not evaluate``: none is reached)
            joined = next(
                (
                    c
                    for c in calls_in(node.body)
                    if ranks.collective(c, RANK0_KIND)
                    and not _only_dropped_wraps(tree, node, c, functions)
                ),
                None,
            )
            if joined is not None:
                unguarded = [
                    c
                    for c in calls_in(node.body)
                    if is_save_call(c)
                    and not library_call(c)
                    and ranks.runs(c, OTHER_KIND) is not False
                ]
                if not library_call(joined) or unguarded:
                    ctx.report(
                        node,
                        f"this {flag.attr.value} block writes files on every rank but reaches "
                        f"{_joined_text(ranks, joined)}, so every rank must run it: gate only "
                        "its writes on rank 0, by hand",
                    )
                continue
            wraps = _wraps_reached(tree, calls)
            removed: dict[cst.CSTNode, list[cst.BaseStatement]] = {w.statement: [] for w in wraps}
            unwrap = [
                (
                    w.statement,
                    f"{w.function.name.value}() now runs on rank 0 alone: it evaluates {w.name} "
                    "unwrapped (building the DDP wrapper is a collective the other ranks would "
                    "never join; an evaluation has no gradients to synchronise)",
                )
                for w in wraps
            ]
            rank = global_rank_zero(flag.value, quote)
            state = ranks.carried_out(node.body)
            what = f"every rank runs this {flag.attr.value} block and writes the same files"
            leaves = _leaves(node.body, ranks)
            if leaves:  # an early stop decided here: every rank must take it
                state = {*state, leaves}
            if not state:
                test = cst.BooleanOperation(
                    left=_as_and_operand(node.test), operator=cst.And(), right=rank
                )
                ctx.fix(
                    node,
                    f"{what}: run it on global rank 0",
                    {node: node.with_changes(test=test), **removed},
                    also=unwrap,
                    imports=("os",),
                )
                continue
            names = ", ".join(sorted(state))
            keep = _state_prefix(node.body, state)
            # the split would take the exit to rank 0 alone, the other ranks training on
            exit_split = keep is not None and leaves is not None
            if exit_split:
                keep = None
            if keep is None and wraps:  # its evaluation stays on every rank, with the wrap
                ctx.report(
                    node,
                    f"this {flag.attr.value} block writes files on every rank but reaches the "
                    f"collective {dotted_name(wraps[0].call.func) or 'call'}(), so every rank "
                    "must run it: gate only its writes on rank 0, by hand",
                )
                continue
            if keep is None:
                scored = read_back(ranks, node.body) if leaves else None
                decides = scored is not None or exit_split
                plan = _rank_zero_stop(ranks, node) if decides else None
                if isinstance(plan, RankZeroStop):
                    args = tree.module.code_for_node(flag.value)
                    decide = DecideOnRankZero([plan], args, rank, launched=GROUP)
                    body = plan.loop.body.visit(decide)
                    assert isinstance(body, cst.BaseSuite)  # it rewrites statements in it
                    how = ", reads them back to score" if scored else ""
                    ctx.fix(
                        node,
                        _DECIDED.format(flag=flag.attr.value, how=how),
                        {plan.loop.body: body},
                        imports=("os", "torch"),
                    )
                    continue
                if scored is not None:
                    why = f" (not rewritten: {plan})" if plan else ""
                    ctx.report(node, _scored(tree, flag.attr.value, leaves or "", scored) + why)
                direct = [c for c in calls_in(node.body) if is_write(c)]
                if direct and all(ranks.runs(c, OTHER_KIND) is False for c in direct):
                    continue  # its writes are on rank 0 already (a pass before gated them)
                sharded = any(callee_name(c) == "DistributedSampler" for c in calls)
                gated = None if sharded else gate_writes(tree, node.body, state, rank)
                if gated is None:
                    ctx.report(
                        node,
                        f"{what}, but it also updates training state read outside it ({names}): "
                        "gate only its evaluation and writes on rank 0, by hand",
                    )
                    continue
                same = "" if scored else ", which all score the same model on the same data"
                ctx.fix(
                    node,
                    f"{what}: its writes run on global rank 0; its evaluation and the training "
                    f"state it updates ({names}) stay on every rank{same}",
                    {node: node.with_changes(body=gated)},
                    imports=("os",),
                )
                continue
            ctx.fix(
                node,
                f"{what}: its evaluation and writes run on global rank 0; the training state "
                f"it resets ({names}) stays on every rank",
                {node: _split(node, keep, rank), **removed},
                also=unwrap,
                imports=("os",),
            )
