"""DDP014 wrap-sharded-model: a script that shards its data across ranks trains one model.

Half-distributed scripts (CodeT5's ``run_gen.py``/``run_clone.py``/``run_defect.py``) create a
process group and give every rank its own shard through a ``DistributedSampler``, but wrap the
model only in ``DataParallel`` (for ``n_gpu > 1``, which is 1 under a launcher): nothing
synchronises the ranks, so each trains its own model on 1/N of the data, and whichever rank saves
last decides the checkpoint. ``ddpfix verify`` sees it as replicas out of sync.

Where the data are sharded under a local-rank test (``RandomSampler(d) if args.local_rank == -1
else DistributedSampler(d)``), a process group is set up (``init_process_group`` in the file, or
a call to a ``set_dist``-like helper that does it elsewhere; without one the rank code is
dormant and DDP001 reports it), the file constructs no ``DistributedDataParallel`` and prepares
nothing with accelerate, the rule wraps the model right after its ``DataParallel`` block::

    if args.n_gpu > 1:
        model = torch.nn.DataParallel(model)
    if args.local_rank != -1:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[args.local_rank] if torch.cuda.is_available() else None
        )

so a single process (``local_rank == -1``) runs exactly as before. The wrapper forwards
``model(...)``, ``train()``/``eval()``, ``parameters()`` and the rest of ``nn.Module``'s own
interface; what it does not have is taken from the model inside it: after the wrap, and in the
script's functions the wrapped model is passed to, ``model.generate(...)``, ``model.config``,
``model.save_pretrained(...)``, and ``state_dict``/``load_state_dict`` (whose keys would gain a
``module.`` prefix) become ``(model.module if hasattr(model, "module") else model).X``.
``find_unused_parameters=True`` only where the script puts a pretrained transformers model
(``RobertaForSequenceClassification``, ``RobertaModel``, ``model_class.from_pretrained``) inside a
model class of its own, which then bypasses part of it (GraphCodeBERT's unused head, UniXcoder's
unused pooler): those parameters would make DDP raise at the second step. Elsewhere it stays off
(it costs a graph traversal a step); a model with other unused parameters makes DDP raise,
naming them, which ``ddpfix verify`` shows. No ``DataParallel`` block to
follow, or no local-rank test to gate on: reported, not rewritten.

A loop exit that every rank decides on state only rank 0 updates (a patience count or an
early-stop mark set in rank 0's evaluation gate) would, once wrapped, let rank 0 leave while
the others wait in their next all-reduce. Where it is sure, the wrap carries a broadcast of that
state from rank 0 right after rank 0's gate, so every rank reads rank 0's value before its exit
test::

    if args.local_rank in [-1, 0]:
        ...  # evaluate; patience += 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        _ddpfix_shared = [patience]
        torch.distributed.broadcast_object_list(_ddpfix_shared, src=0)
        patience = _ddpfix_shared[0]
    if patience > args.patience:
        break

When the gate's test has other terms that every rank computes alike (``and epoch % args.eval_every
== 0``), the broadcast runs under them too (only when rank 0 may have updated the state). Sure
means (``patches/_divergence.py``, :func:`broadcasts`): the state is a local name of the
function (or a container it holds), that every rank starts from the same literal, that no other
name can alias and that every other rank never changes; rank 0 leaves its gate only at its end;
every rank reaches the gate alike (the tests around it and the loops it runs in are
rank-uniform, ``patches/_uniform.py``, counting exit tests on the broadcast state as uniform);
and the tests that read the state are in the gate's loop or after it. Otherwise (CodeT5's
``run_multi_gen.py``: its exit reads ``is_early_stop[cur_task]`` at a task drawn at random on
each rank) the wrap is withdrawn by the rank model's post-condition and reported, with the
reason.

The block followed is one that wraps the model every rank trains: in a function that steps an
optimizer (or calls ``backward``) after it, or that passes the model on to one that does. A
``DataParallel`` block in ``evaluate()``/``test()``, or in any function only rank 0 runs, is never
followed: constructing DDP there would be a collective rank 0 reaches alone (a hang under the
legacy launcher), and the training model would stay unsynchronised all the same; with no other
block the rule reports.

A model the training loop hands to a call that rebuilds it as a functional copy (``higher``'s
``innerloop_ctx``/``monkeypatch``, ``torch.func.functional_call``, functorch's
``make_functional``, learn2learn's ``MAML``/``clone_module``, ``copy.deepcopy``), in the function
of the block or one the model is passed to, is not wrapped: ``higher`` cannot rebuild a DDP
wrapper (TypeError on every rank) and a functional copy never runs the wrapper's forward, so
nothing would be all-reduced. That is reported, with the by-hand fix (average the gradients).
Parameters frozen after the block (``p.requires_grad = False``, ``requires_grad_()``) withhold
the wrap too, reported: DDP registers the parameters that need a gradient when it wraps, and one
frozen later makes every rank fail at the next step. The model a project's own factory builds
in a sibling module (CodeT5's ``build_or_load_gen_model`` in ``models.py``, a ``RobertaModel``
inside its ``Seq2Seq``) is judged from that module, read next to the patched file, for
``find_unused_parameters``. When the script trains more than one model through
``DataParallel`` blocks (co-teaching's ``model2``), the first is wrapped and each other one is
reported: one wrap per model would need its own gate.

The wrap makes every early stop a joint decision. When a training loop may stop early on a
score every rank reads back from files they all rewrite (CodeT5's ``run_gen.py`` with
``--do_eval_bleu``: ``eval_bleu_epoch`` writes ``test_e0.gold`` and scores it from disk; the
analysis is ``patches/_shared_files.py``), ranks that read one another's half-written copies
could stop at different epochs and the others then hang in their next all-reduce. Where that
is certainly safe (``patches/_early_stop.py``: a loop over a rank-uniform ``range``, every
``break`` inside the evaluation, nothing the other ranks read bound in it, no training, no
collective, the model only passed to evaluations or unwrapped), the evaluation statement runs on
global rank 0 alone and its decision is broadcast, so the wrap stands with nothing to report::

    _ddpfix_stop = [False]
    if args.do_eval_bleu and int(os.environ.get("RANK", args.local_rank)) in [-1, 0]:
        result = eval_bleu_epoch(args, dev_data, <unwrapped model>, "e%d" % cur_epoch)
        ...  # best score, patience
                _ddpfix_stop[0] = True  # was: break
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.broadcast_object_list(_ddpfix_stop, src=0)
    if _ddpfix_stop[0]:
        break

A ``do_eval`` block (CodeT5's ``run_gen.py``) is DDP011's to rewrite so, in the same run; this
rule does it for an evaluation under any other test (``if args.do_eval_bleu:``), and DDP004
gives the evaluation the unwrapped model. Otherwise the wrap is still made (without it the
ranks train different models) and the hazard is reported at it, saying why it was not
rewritten.
"""

from __future__ import annotations

import re
from pathlib import Path

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Replacement, Tree
from patches._divergence import broadcasts
from patches._early_stop import GROUP, DecideOnRankZero, RankZeroStop, model_names, rank_zero_stop
from patches._gates import in_rank_zero_region, rank_zero_functions
from patches._importers import parse_file, project_modules
from patches._names import walk
from patches._ranks import RankModel, model
from patches._shared_files import ReadBack, reached_functions, scored_exits
from patches._syntax import (
    _EVAL_NAME,
    EVAL_FLAGS,
    callee_name,
    calls_in,
    dotted_name,
    global_rank_zero,
    import_map,
    module_functions,
    one_line,
    preferred_quote,
    unwrapped,
)

#: What ``DistributedDataParallel`` answers itself (``nn.Module``'s interface); every other
#: attribute of the model is taken from the module inside it.
MODULE_API = frozenset(
    {
        "module", "forward", "train", "eval", "parameters", "named_parameters", "buffers",
        "named_buffers", "children", "named_children", "modules", "named_modules", "zero_grad",
        "to", "cuda", "cpu", "half", "float", "double", "bfloat16", "apply", "requires_grad_",
        "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
        "register_buffer", "register_parameter", "training", "type",
    }
)  # fmt: skip
_SAMPLER = "DistributedSampler"


def _local_rank_in(node: cst.CSTNode) -> cst.Attribute | cst.Name | None:
    """The ``args.local_rank``-like expression a test reads, if any."""
    for child in walk(node, into_scopes=True):
        if type(child) is cst.Attribute and child.attr.value == "local_rank":
            return child
        if type(child) is cst.Name and child.value == "local_rank":
            return child
    return None


def _sharding_gate(tree: Tree, call: cst.Call) -> cst.Attribute | cst.Name | None:
    """The local-rank expression that decides whether ``call`` (a sampler) is built."""
    for ancestor in tree.ancestors(call):
        if isinstance(ancestor, (cst.IfExp, cst.If)):
            found = _local_rank_in(ancestor.test)
            if found is not None:
                return found
        if isinstance(ancestor, (cst.FunctionDef, cst.ClassDef)):
            return None
    return None


def _trains(tree: Tree, sampler: cst.Call) -> bool:
    """Whether ``sampler`` shards *training* data: its function steps an optimizer (or calls
    ``backward``), or the name it is bound to says train. An evaluation's DistributedSampler
    is DDP005's business."""
    scope = tree.scope(sampler)
    if type(scope) is cst.FunctionDef and _EVAL_NAME.search(scope.name.value):
        return False
    statement = tree.statement(sampler)
    if type(statement) is cst.Assign and any(
        "train" in tree.module.code_for_node(t.target).lower() for t in statement.targets
    ):
        return True
    return any(callee_name(call) in ("backward", "step") for call in calls_in(scope))


def _wraps_data_parallel(statement: cst.CSTNode) -> str | None:
    """``model = torch.nn.DataParallel(model)`` → ``model``."""
    if type(statement) is not cst.SimpleStatementLine or len(statement.body) != 1:
        return None
    assign = statement.body[0]
    if not (type(assign) is cst.Assign and len(assign.targets) == 1):
        return None
    target, value = assign.targets[0].target, assign.value
    if not (type(target) is cst.Name and type(value) is cst.Call):
        return None
    if callee_name(value) != "DataParallel" or not value.args:
        return None
    first = value.args[0].value
    return target.value if type(first) is cst.Name and first.value == target.value else None


#: The wrapper :func:`_wrap` calls, as a dotted name.
_DDP = "torch.nn.parallel.DistributedDataParallel"


def _wrap(model: str, rank: str, unused: bool = False) -> cst.If:
    extra = ",\n        find_unused_parameters=True,\n    " if unused else "\n    "
    devices = f"device_ids=[{rank}] if torch.cuda.is_available() else None"
    code = f"if {rank} != -1:\n    {model} = {_DDP}(\n        {model}, {devices}{extra})\n"
    return cst.ensure_type(cst.parse_statement(code), cst.If)


def _transformers_model(call: cst.Call, imported: dict[str, tuple[str, str | None]]) -> bool:
    """A call that builds a transformers model: ``X.from_pretrained(...)`` of anything but a
    tokenizer or config, or a class imported from ``transformers`` whose name says it is a model
    (``RobertaForSequenceClassification(config=config)``, ``RobertaModel(config)``)."""
    func = call.func
    if callee_name(call) == "from_pretrained" and type(func) is cst.Attribute:
        owner = (dotted_name(func.value) or "").lower()
        return bool(owner) and not owner.endswith(("tokenizer", "config", "tokenizer_class"))
    if type(func) is not cst.Name:
        return False
    module, _ = imported.get(func.value, ("", None))
    return (
        module.split(".")[0] == "transformers"
        and not func.value.startswith("DataCollator")  # DataCollatorForLanguageModeling
        and ("For" in func.value or func.value.endswith("Model"))
    )


def _pretrained_model_inside(tree: Tree) -> bool:
    """Whether the script puts a pretrained transformers model inside a model class of its own
    (GraphCodeBERT's ``Model(RobertaForSequenceClassification...)``, which calls
    ``encoder.roberta`` and a classifier of its own; UniXcoder's ``Model(RobertaModel...)``,
    which reads the hidden states, not the pooler), by name or built in the call itself
    (``Model(RobertaForSequenceClassification(config=config), config, tokenizer, args)``):
    the parts it bypasses never get a gradient, and DDP must be told to look for unused
    parameters (CodeXGLUE's own DDP wraps do)."""
    imported = import_map(tree)
    pretrained: set[str] = set()
    for assign in tree.nodes(cst.Assign):
        value = assign.value
        if type(value) is not cst.Call or len(assign.targets) != 1:
            continue
        target = assign.targets[0].target
        if type(target) is not cst.Name:
            continue
        func = value.func
        if _transformers_model(value, imported):
            pretrained.add(target.value)
        elif (
            type(func) is cst.Name
            and "For" not in func.value
            and func.value[:1].isupper()  # a class of the project's, not count_parameters()
            and imported.get(func.value, ("", None))[0].split(".")[0]
            not in ("transformers", "torch")
            and any(
                (type(a.value) is cst.Name and a.value.value in pretrained)
                or (type(a.value) is cst.Call and _transformers_model(a.value, imported))
                for a in value.args
            )
        ):
            return True
    return False


def _built_in_sibling(tree: Tree, here: Path | None) -> bool:
    """Whether the script builds its model with a function of a module next to it that puts a
    pretrained transformers model inside a model class of its own (CodeT5's
    ``build_or_load_gen_model`` in ``models.py``: a ``RobertaModel`` inside its ``Seq2Seq``,
    which reads the hidden states, never the pooler)."""
    if here is None:
        return False
    called = {callee_name(c) for c in tree.nodes(cst.Call)}
    for local, path in project_modules(here, tree).items():
        if local in called:
            other = parse_file(path)
            if other is not None and _pretrained_model_inside(other):
                return True
    return False


#: Where a parameter is frozen or thawed: a wrap made before it expects the old set.
_FREEZES = frozenset({"requires_grad_"})


def _frozen_after(tree: Tree, statement: cst.CSTNode, name: str) -> cst.CSTNode | None:
    """A ``p.requires_grad = ...`` (or ``requires_grad_()``) after the ``DataParallel`` block
    at ``statement`` in its function: DDP registers the parameters that need a gradient when it
    wraps, and a parameter frozen afterwards never gets one ("Expected to have finished
    reduction in the prior iteration" at the next step, on every rank)."""
    scope = tree.scope(statement)
    for node in walk(scope, into_scopes=False):
        if not tree.after(node, statement):
            continue
        if type(node) is cst.Attribute and node.attr.value == "requires_grad":
            parent = tree.parent(node)
            if type(parent) is cst.AssignTarget:
                return tree.statement(node)
        if type(node) is cst.Call and callee_name(node) in _FREEZES:
            return tree.statement(node)
    return None


class WrapShardedModel(Rule):
    code = "DDP014"
    name = "wrap-sharded-model"
    summary = "Data sharded with a DistributedSampler but no DDP wrap: wrap the model."
    rationale = __doc__
    settles = False  # the wrap is a collective, and rank-0 evaluation then needs DDP004
    triggers = (_SAMPLER,)
    examples = (
        Example(
            before="""
                import torch
                def main(args, model, data):
                    set_dist(args)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                    train_sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
                    train(args, model, train_sampler)
                    preds = model.generate(data)
            """,  # noqa: E501
            after="""
                import torch
                def main(args, model, data):
                    set_dist(args)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(
                            model, device_ids=[args.local_rank] if torch.cuda.is_available() else None
                        )
                    train_sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
                    train(args, model, train_sampler)
                    preds = (model.module if hasattr(model, "module") else model).generate(data)
            """,  # noqa: E501
            messages=(
                "the data are sharded across ranks (line 6) but nothing synchronises the models: "
                "each rank trains its own; wrap the model in DistributedDataParallel when "
                "launched",
                "model is wrapped in DistributedDataParallel when launched (DDP014): take what "
                "the wrapper does not answer itself from the module inside it",
            ),
        ),
        Example(
            before="""
                def main(args, model, data):
                    set_dist(args)
                    train_sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
                    train(args, model, train_sampler)
            """,  # noqa: E501
            reports=1,
            messages=(
                "the data are sharded across ranks but the model is never wrapped in "
                "DistributedDataParallel: every rank trains its own model; wrap it by hand (no "
                "DataParallel block to follow)",
            ),
        ),
        Example(  # the only DataParallel block is in an evaluation rank 0 runs alone
            before="""
                import torch
                def evaluate(args, model):
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                    return score(model)
                def main(args, model, data, optimizer):
                    set_dist(args)
                    train_sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
                    for batch in DataLoader(data, sampler=train_sampler):
                        model(batch).backward()
                        optimizer.step()
                    if args.local_rank in [-1, 0]:
                        evaluate(args, model)
            """,  # noqa: E501
            reports=1,
            messages=(
                "the data are sharded across ranks but the model is never wrapped in "
                "DistributedDataParallel: every rank trains its own model; wrap it by hand (the "
                "only DataParallel blocks, in evaluate(), are not where every rank trains the "
                "model)",
            ),
        ),
        Example(  # meta-learning over a functional copy of the model
            before="""
                import torch
                def main(args, model, data, optimizer):
                    set_dist(args)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                    train_sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
                    for batch in DataLoader(data, sampler=train_sampler):
                        with higher.innerloop_ctx(model, inner_opt) as (fast_model, diffopt):
                            fast_model(batch).backward()
                        optimizer.step()
            """,  # noqa: E501
            reports=1,
            messages=(
                "the data are sharded across ranks but model is never wrapped in "
                "DistributedDataParallel, and it is handed to innerloop_ctx(), which builds a "
                "functional copy of the module: a wrapper there fails (higher) or its forward "
                "never runs, so nothing is all-reduced; average the gradients by hand (all_reduce "
                "each parameter's .grad before the optimizer step)",
            ),
        ),
        Example(  # parameters frozen after the only place a wrap can follow
            before="""
                import torch
                def main(args, model, data, optimizer):
                    set_dist(args)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                    if args.freeze:
                        for name, parameter in model.named_parameters():
                            if "encoder" in name:
                                parameter.requires_grad = False
                    train_sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
                    for batch in DataLoader(data, sampler=train_sampler):
                        model(batch).backward()
                        optimizer.step()
            """,  # noqa: E501
            reports=1,
            messages=(
                "the data are sharded across ranks but the model is never wrapped in "
                "DistributedDataParallel, and parameters are frozen here, after the only place "
                "a wrap can follow: a wrap made before it expects gradients for them (a "
                "RuntimeError at the second step on every rank); wrap the model after the "
                "freezing, by hand",
            ),
        ),
        Example(  # two models trained on the shards (co-teaching)
            before="""
                import torch
                def main(args, model, model2, data, optimizer, optimizer2):
                    set_dist(args)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                        model2 = torch.nn.DataParallel(model2)
                    train_sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
                    for batch in DataLoader(data, sampler=train_sampler):
                        (model(batch) + model2(batch)).backward()
                        optimizer.step()
                        optimizer2.step()
            """,  # noqa: E501
            after="""
                import torch
                def main(args, model, model2, data, optimizer, optimizer2):
                    set_dist(args)
                    if args.n_gpu > 1:
                        model = torch.nn.DataParallel(model)
                        model2 = torch.nn.DataParallel(model2)
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(
                            model, device_ids=[args.local_rank] if torch.cuda.is_available() else None
                        )
                    train_sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
                    for batch in DataLoader(data, sampler=train_sampler):
                        (model(batch) + model2(batch)).backward()
                        optimizer.step()
                        optimizer2.step()
            """,  # noqa: E501
            reports=1,
            messages=(
                "the data are sharded across ranks (line 7) but nothing synchronises the models: "
                "each rank trains its own; wrap the model in DistributedDataParallel when "
                "launched",
                "model2 is also trained on the sharded data, and only model is wrapped in "
                "DistributedDataParallel: each rank trains its own model2; wrap it as well, by "
                "hand",
            ),
        ),
        Example(  # already one model: nothing to do
            before="""
                import torch
                def main(args, model, data):
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
                    train_sampler = RandomSampler(data) if args.local_rank == -1 else DistributedSampler(data)
                    train(args, model, train_sampler)
            """,  # noqa: E501
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        if ".prepare(" in tree.code:
            return
        if "DistributedDataParallel" in tree.code:
            # a wrap of ours from an earlier pass: the unwraps another fix held back
            for site, name, rank in _own_wraps(tree):
                self._fix_unwraps(ctx, site, name, preferred_quote(tree.code))
                _decide_scored_exits(ctx, site, rank)
                _report_others(ctx, name)
            return
        if not _sets_up_process_group(tree):
            return  # DataParallel only, with dormant rank code: DDP001 reports it
        samplers = [
            c for c in tree.nodes(cst.Call) if callee_name(c) == _SAMPLER and _trains(tree, c)
        ]
        gated = [(c, _sharding_gate(tree, c)) for c in samplers]
        gated = [(c, rank) for c, rank in gated if rank is not None]
        if not gated:
            return
        sampler, rank = gated[0]
        blocks = [
            (s, name)
            for s in tree.nodes(cst.SimpleStatementLine)
            if (name := _wraps_data_parallel(s)) is not None
        ]
        wraps = [(s, name) for s, name in blocks if _wraps_training_model(tree, s, name)]
        if not wraps:
            where = ", ".join(dict.fromkeys(_function_of(tree, s) for s, _ in blocks))
            ctx.report(
                sampler,
                "the data are sharded across ranks but the model is never wrapped in "
                "DistributedDataParallel: every rank trains its own model; wrap it by hand "
                + (
                    f"(the only DataParallel blocks, in {where}, are not where every rank "
                    "trains the model)"
                    if blocks
                    else "(no DataParallel block to follow)"
                ),
            )
            return
        statement, name = wraps[0]
        rebuilt = _rebuilt(tree, statement, name)
        if rebuilt is not None:
            ctx.report(
                rebuilt,
                f"the data are sharded across ranks but {name} is never wrapped in "
                f"DistributedDataParallel, and it is handed to {callee_name(rebuilt)}(), which "
                "builds a functional copy of the module: a wrapper there fails (higher) or its "
                "forward never runs, so nothing is all-reduced; average the gradients by hand "
                "(all_reduce each parameter's .grad before the optimizer step)",
            )
            return
        frozen = _frozen_after(tree, statement, name)
        if frozen is not None:
            ctx.report(
                frozen,
                "the data are sharded across ranks but the model is never wrapped in "
                "DistributedDataParallel, and parameters are frozen here, after the only place "
                "a wrap can follow: a wrap made before it expects gradients for them (a "
                "RuntimeError at the second step on every rank); wrap the model after the "
                "freezing, by hand",
            )
            return
        _report_others(ctx, name)
        unused = _pretrained_model_inside(tree) or _built_in_sibling(tree, ctx.path)
        holder = tree.parent(tree.parent(statement))  # IndentedBlock → its If
        site = holder if type(holder) is cst.If else statement
        rank_code = tree.module.code_for_node(rank)
        replacements: dict[cst.CSTNode, Replacement] = {
            site: Around(after=(_wrap(name, rank_code, unused),))
        }
        shared = ""
        plans, _ = broadcasts(model(tree))  # what is refused withdraws the wrap (post-condition)
        for plan in plans:
            replacements[plan.gate] = Around(after=(plan.statement(),))
        if plans:
            names = ", ".join(dict.fromkeys(n for plan in plans for n in plan.names))
            shared = (
                f"; every rank decides a loop exit on {names}, which rank 0 alone updates: "
                "broadcast from rank 0 right after its update, so every rank leaves alike"
            )
        ctx.fix(
            statement,
            f"the data are sharded across ranks (line {tree.position(sampler)[0]}) but nothing "
            "synchronises the models: each rank trains its own; wrap the model in "
            "DistributedDataParallel when launched" + shared,
            replacements,
            imports=("torch",),
        )
        # the unwraps come in the next pass, from the wrap applied (``_own_wraps``): a wrap
        # withdrawn by a post-condition leaves nothing to unwrap
        _decide_scored_exits(ctx, statement, rank)

    def _fix_unwraps(self, ctx: RuleContext, site: cst.CSTNode, name: str, quote: str) -> None:
        for node, new in self._unwrap(ctx.tree, site, name, quote).items():
            ctx.fix(
                node,
                f"{name} is wrapped in DistributedDataParallel when launched (DDP014): take "
                "what the wrapper does not answer itself from the module inside it",
                {node: new},
            )

    def _unwrap(
        self, tree: Tree, site: cst.CSTNode, name: str, quote: str
    ) -> dict[cst.CSTNode, Replacement]:
        """Non-``nn.Module`` attributes of the wrapped model, after the wrap and in the
        functions it is passed to, taken from the module inside."""
        scope = tree.scope(site)
        found: dict[cst.CSTNode, Replacement] = {}
        functions = module_functions(tree.module)
        receivers: list[tuple[cst.FunctionDef, str]] = []
        for node in walk(scope, into_scopes=False):
            if not tree.after(node, site):
                continue
            if type(node) is cst.Attribute and _reads(node, name):
                found[node.value] = _parenthesized(unwrapped(name, quote))
            if type(node) is cst.Call and type(node.func) is cst.Name:
                callee = functions.get(node.func.value)
                if callee is not None and callee is not scope:
                    receivers += _receiving(callee, node, name)
        for function, param in receivers:
            for node in walk(function.body, into_scopes=False):
                if type(node) is cst.Attribute and _reads(node, param):
                    found[node.value] = _parenthesized(unwrapped(param, quote))
        return found


#: Calls that train a model: an optimizer (or scheduler) step, a backward pass.
_TRAINING_CALLS = frozenset({"backward", "step"})


def _function_of(tree: Tree, node: cst.CSTNode) -> str:
    scope = tree.scope(node)
    return f"{scope.name.value}()" if type(scope) is cst.FunctionDef else "the module"


def _wraps_training_model(tree: Tree, statement: cst.CSTNode, name: str) -> bool:
    """Whether the ``DataParallel`` block at ``statement`` wraps the model every rank trains:
    it is not behind a rank-0 gate nor in a function only rank 0 runs (constructing DDP there
    is a collective rank 0 would reach alone: an ``evaluate()`` with its own DataParallel
    block), and its function steps an optimizer / calls ``backward`` itself after it, or
    passes ``name`` after it to a module function that does (directly or through the
    functions it calls) or to a function of another module not named like an evaluation."""
    only, _ = rank_zero_functions(tree)
    scope = tree.scope(statement)
    if in_rank_zero_region(tree, statement):
        return False
    if type(scope) is cst.FunctionDef and scope.name.value in only:
        return False
    functions = module_functions(tree.module)
    later = [c for c in calls_in(scope) if tree.after(c, statement)]
    if any(_training_call(c) for c in later):
        return True
    if type(scope) is cst.FunctionDef and _EVAL_NAME.search(scope.name.value):
        return False
    for call in later:
        if not _passes(call, name):
            continue
        callee = functions.get(call.func.value) if type(call.func) is cst.Name else None
        if callee is None and not _EVAL_NAME.search(callee_name(call) or ""):
            return True  # a training function of another module: ``train(args, model, ...)``
        if callee is not None and callee is not scope and _receiving(callee, call, name):
            if _steps(callee, functions, set()):
                return True
    return False


def _training_blocks(tree: Tree) -> list[tuple[cst.CSTNode, str]]:
    """The ``name = DataParallel(name)`` statements that wrap a model every rank trains."""
    return [
        (s, name)
        for s in tree.nodes(cst.SimpleStatementLine)
        if (name := _wraps_data_parallel(s)) is not None and _wraps_training_model(tree, s, name)
    ]


def _report_others(ctx: RuleContext, wrapped: str) -> None:
    """Other trained models of the script's ``DataParallel`` blocks (co-teaching's ``model2``)
    stay one per rank: the wrap is made for the first alone, the others are reported."""
    for statement, other in _training_blocks(ctx.tree):
        if other != wrapped:
            ctx.report(
                statement,
                f"{other} is also trained on the sharded data, and only {wrapped} is wrapped in "
                f"DistributedDataParallel: each rank trains its own {other}; wrap it as well, "
                "by hand",
            )


#: Calls that rebuild the module they are given as a functional copy (meta-learning, functorch):
#: a DDP wrapper handed to them is never called, or cannot be rebuilt at all.
_REBUILDERS = frozenset(
    {
        "innerloop_ctx",
        "monkeypatch",
        "functional_call",
        "make_functional",
        "make_functional_with_buffers",
        "clone_module",
        "MAML",
        "MetaSGD",
        "deepcopy",
    }
)


def _rebuilt(tree: Tree, statement: cst.CSTNode, name: str) -> cst.Call | None:
    """A call after the ``DataParallel`` block at ``statement`` (or in a module function the
    model is passed to from there) that rebuilds the model as a functional copy."""
    scope = tree.scope(statement)
    functions = module_functions(tree.module)
    places = [(c, name) for c in calls_in(scope) if tree.after(c, statement)]
    seen: set[str] = set()
    while places:
        call, held = places.pop()
        if callee_name(call) in _REBUILDERS and _passes(call, held):
            return call
        callee = functions.get(call.func.value) if type(call.func) is cst.Name else None
        if callee is None or callee is scope or callee.name.value in seen:
            continue
        for function, param in _receiving(callee, call, held):
            seen.add(function.name.value)
            places += [(c, param) for c in calls_in(function)]
    return None


def _passes(call: cst.Call, name: str) -> bool:
    return any(type(a.value) is cst.Name and a.value.value == name for a in call.args)


def _training_call(call: cst.Call) -> bool:
    return callee_name(call) in _TRAINING_CALLS


def _steps(
    function: cst.FunctionDef, functions: dict[str, cst.FunctionDef], seen: set[str]
) -> bool:
    """Whether ``function`` steps an optimizer or calls ``backward``, itself or through the
    module functions it calls (``train()`` calling ``train_epoch()``)."""
    seen.add(function.name.value)
    for call in calls_in(function):
        if _training_call(call):
            return True
        callee = functions.get(call.func.value) if type(call.func) is cst.Name else None
        if callee is not None and callee.name.value not in seen and _steps(callee, functions, seen):
            return True
    return False


_DECIDED = (
    "the model is wrapped in DistributedDataParallel when launched, and this evaluation writes "
    "files, reads them back to score and decides the training loop's early stop: it runs on "
    "global rank 0 alone (with the unwrapped model), and its decision is broadcast so that "
    "every rank leaves the loop at the same iteration"
)


#: Why DDP014 leaves an evaluation alone: DDP011 rewrites it (or reports it, saying why).
_DDP011S = "a do_eval block, DDP011's"


def _decide_scored_exits(ctx: RuleContext, site: cst.CSTNode, rank: cst.BaseExpression) -> None:
    """The wrap makes every rank's early stop a joint decision: one scored from files every
    rank rewrites and reads back (CodeT5's ``eval_bleu_epoch``) need not agree, and a rank
    that leaves the loop alone leaves the others waiting in their next all-reduce. Where it is
    certainly safe the evaluation runs on rank 0 and its decision is broadcast
    (``patches/_early_stop.py``); a ``do_eval`` block is DDP011's to rewrite so; otherwise the
    hazard is reported at the wrap."""
    tree = ctx.tree
    m = model(tree)
    for loop, scored in scored_exits(m):
        plan = _rank_zero_stop(m, loop, scored, rank)
        if isinstance(plan, RankZeroStop):
            assert type(rank) is cst.Attribute  # _rank_zero_stop refuses a bare name
            quote = preferred_quote(tree.code)
            args = tree.module.code_for_node(rank.value)
            decide = DecideOnRankZero(
                [plan], args, global_rank_zero(rank.value, quote), launched=GROUP
            )
            body = loop.body.visit(decide)
            assert isinstance(body, cst.BaseSuite)  # it rewrites statements in it
            ctx.fix(plan.statement, _DECIDED, {loop.body: body}, imports=("os", "torch"))
            continue
        who = f"{scored.function}()" if scored.function else "the loop"
        read = one_line(tree, scored.read, 60)
        ctx.report(
            site,
            "the model is wrapped in DistributedDataParallel when launched, but its training "
            f"loop may stop early on a score every rank reads back from {scored.file}, which "
            f"{who} writes on every rank (`{read}`): ranks that read one "
            "another's half-written copies can stop at different epochs, and the others hang in "
            "their next all-reduce; write and score on rank 0 and broadcast the decision, by hand"
            + ("" if plan == _DDP011S else f" (not rewritten: {plan})"),
        )
        return


def _rank_zero_stop(
    m: RankModel, loop: cst.For | cst.While, scored: ReadBack, rank: cst.BaseExpression
) -> RankZeroStop | str:
    """The plan to run the evaluation statement of ``loop`` that reaches ``scored`` on rank 0,
    or why there is none (a ``do_eval`` block: DDP011 rewrites it, or reports it)."""
    tree = m.tree
    function = tree.scope(loop)
    if type(function) is not cst.FunctionDef or type(rank) is not cst.Attribute:
        return "the loop is in no function, or the rank is no option"
    holds = [node for node in (scored.write, scored.read) if tree.contains(loop, node)]
    functions = module_functions(tree.module)
    for call in calls_in(loop):
        name = callee_name(call)
        if type(call.func) is cst.Name and name in functions:
            reached = {name, *(f.name.value for f in reached_functions(m, functions[name].body))}
            if scored.function in reached:
                holds.append(call)
    if not holds:
        return "the evaluation's call is not found in the loop"
    plan = rank_zero_stop(tree, function, loop, holds, model_names(m, function))
    if isinstance(plan, RankZeroStop) and any(
        type(node) is cst.If
        and any(
            type(n) is cst.Attribute and n.attr.value in EVAL_FLAGS
            for n in walk(node.test, into_scopes=False)
        )
        for node in walk(plan.statement, into_scopes=False)
    ):
        return _DDP011S
    return plan


_SETUP_HELPER = re.compile(r"^_?(?:set|setup|set_up|init|initialize)_?(?:dist|distributed|ddp)\w*$")


def _sets_up_process_group(tree: Tree) -> bool:
    """``init_process_group`` in this file, or a call to a helper that does it elsewhere (CodeT5's
    ``set_dist(args)`` from ``configs.py``). Without one, wrapping would need a process group
    nobody creates."""
    if "init_process_group" in tree.code:
        return True
    return any(_SETUP_HELPER.match(callee_name(call) or "") for call in tree.nodes(cst.Call))


def _parenthesized(expression: cst.BaseExpression) -> cst.BaseExpression:
    """The conditional as the receiver of an attribute: ``(m.module if ... else m).generate``."""
    return expression.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


def _own_wraps(tree: Tree) -> list[tuple[cst.If, str, cst.BaseExpression]]:
    """The wraps this rule inserted: ``if <rank> != -1: X = torch.nn.parallel.
    DistributedDataParallel(X, device_ids=... if torch.cuda.is_available() else None)`` right
    after a ``DataParallel`` block."""
    found = []
    for node in tree.nodes(cst.If):
        body = node.body.body if type(node.body) is cst.IndentedBlock else ()
        if node.orelse is not None or len(body) != 1:
            continue
        line = body[0]
        if not (type(line) is cst.SimpleStatementLine and len(line.body) == 1):
            continue
        assign = line.body[0]
        if not (
            type(assign) is cst.Assign
            and type(assign.value) is cst.Call
            and len(assign.targets) == 1
            and isinstance(assign.targets[0].target, cst.Name)
        ):
            continue
        name = assign.targets[0].target.value
        test = node.test
        if type(test) is not cst.Comparison or dotted_name(assign.value.func) != _DDP:
            continue  # cheap: building the wraps to compare is a parse each
        rank_code = tree.module.code_for_node(test.left)
        mine = node.with_changes(leading_lines=())
        if not any(_wrap(name, rank_code, unused).deep_equals(mine) for unused in (False, True)):
            continue  # a wrap of the script's own: not ours to unwrap around
        holder = tree.parent(node)
        siblings = list(holder.body) if isinstance(holder, (cst.IndentedBlock, cst.Module)) else []
        index = next((i for i, s in enumerate(siblings) if s is node), 0)
        previous = siblings[index - 1] if index else None
        if type(previous) is cst.If and any(_wraps_data_parallel(s) for s in previous.body.body):
            found.append((previous, assign.targets[0].target.value, test.left))
    return found


def _reads(attribute: cst.Attribute, name: str) -> bool:
    """``name.X`` for an X the wrapper does not answer itself."""
    return (
        type(attribute.value) is cst.Name
        and attribute.value.value == name
        and attribute.attr.value not in MODULE_API
        and dotted_name(attribute) is not None
    )


def _receiving(
    function: cst.FunctionDef, call: cst.Call, name: str
) -> list[tuple[cst.FunctionDef, str]]:
    """(function, parameter) for each parameter ``call`` passes ``name`` as."""
    params = [p.name.value for p in function.params.params]
    found = []
    for index, arg in enumerate(call.args):
        if type(arg.value) is cst.Name and arg.value.value == name and arg.star == "":
            if arg.keyword is not None:
                found.append((function, arg.keyword.value))
            elif index < len(params):
                found.append((function, params[index]))
    return found
