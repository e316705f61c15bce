"""DDP003 rank-zero-evaluate-and-save: evaluate and save on rank 0, not only without a launcher.

Legacy scripts guard evaluation and checkpointing with ``args.local_rank == -1`` ("Only evaluate
when single GPU otherwise metrics may not average well"). Under a launcher no process has rank -1,
so nothing is evaluated or saved, and a later ``results[...]`` dies after hours of training. The
rule rewrites that requirement to ``local_rank in [-1, 0]`` in an ``if`` whose body evaluates
(calls an evaluate/test/validate-like function) or saves (``torch.save``, ``save_pretrained``,
``json.dump``, ``open(..., "w")``, ...). It matches the comparison in either operand order and ``in
[-1]``, alone or as one term of an ``and`` chain (over backslash continuations, with the comments
kept); only that comparison is rewritten.

Left byte-identical: ``if`` statements with an ``else``/``elif`` (the other branch was written for
the distributed case), comparisons under ``or``/``not`` (``== -1 or args.no_cuda`` device setup,
``== -1 or get_rank() == 0`` which is already right), bodies that neither evaluate nor save
(sampler choice, barriers), and gates that already admit rank 0. When the evaluation itself joins
collectives (``all_gather``, ``barrier``...), running it on rank 0 alone would hang; the rule
reports it without a fix. An evaluation that the script already runs on rank 0 alone (``local_rank
in [-1, 0]``, ``get_rank() == 0``) gets the same analysis and the same report, so a gate is never
rewritten by one rule while the hang it holds goes unsaid. Only collectives rank 0 can reach count:
not those behind ``local_rank not in [-1, 0]``, nor the HF template's cache barriers ``if
args.local_rank == 0 and not evaluate:`` when the call passes ``evaluate=True`` (literal flags are
followed through the calls, with the functions' defaults).

This rule alone reproduces the two bugs of the popular ``sed`` fix: rank 0 then evaluates through
the DDP wrapper (DDP004) and through a DistributedSampler shard (DDP005). Select them together.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._gates import RANK0, calls_collectives, conjuncts, rank_comparison
from patches._ranks import OTHER, RankModel, model
from patches._ranks import RANK0 as RANK0_KIND
from patches._syntax import callee_name, calls_in, is_eval_call, is_save_call, module_functions


def _single_process_terms(test: cst.BaseExpression) -> list[cst.Comparison]:
    terms = []
    for term in conjuncts(test):
        found = rank_comparison(term)
        if found is not None and found[2] and found[1] == frozenset({-1}):
            assert type(term) is cst.Comparison
            terms.append(term)
    return terms


def _rank_zero(term: cst.Comparison) -> cst.Comparison:
    found = rank_comparison(term)
    assert found is not None
    rank = found[0]
    old = term.comparisons[0].operator
    before = getattr(old, "whitespace_before", cst.SimpleWhitespace(" "))
    after = getattr(old, "whitespace_after", cst.SimpleWhitespace(" "))
    space = cst.SimpleWhitespace(" ")
    operator = cst.In(
        whitespace_before=before if before.value else space,
        whitespace_after=after if after.value else space,
    )
    values = cst.List(
        [
            cst.Element(
                cst.UnaryOperation(cst.Minus(), cst.Integer("1")),
                comma=cst.Comma(whitespace_after=space),
            ),
            cst.Element(cst.Integer("0")),
        ]
    )
    return cst.Comparison(
        left=rank,
        comparisons=[cst.ComparisonTarget(operator=operator, comparator=values)],
        lpar=term.lpar,
        rpar=term.rpar,
    )


def _joins_collectives(body: cst.BaseSuite, functions: dict[str, cst.FunctionDef]) -> str | None:
    for call in calls_in(body):
        name = callee_name(call)
        if type(call.func) is cst.Name and name in functions:
            if is_eval_call(call) and calls_collectives(
                functions[name], functions, kind=RANK0, call=call
            ):
                return name
    return None


class RankZeroEvaluateAndSave(Rule):
    code = "DDP003"
    name = "rank-zero-evaluate-and-save"
    summary = "Evaluate and save on rank 0 (local_rank in [-1, 0]), not only when local_rank == -1."
    rationale = __doc__
    settles = False  # its rank-0 gates are what DDP008 then makes global
    triggers = ("local_rank",)
    companions = ("DDP004", "DDP005")
    companion_reason = (
        "rank 0 will evaluate alone through the DDP wrapper (collective mismatch or hang) and "
        "through a DistributedSampler shard (incomplete, misaligned predictions)"
    )
    examples = (
        Example(
            before="""
                if args.local_rank == -1 and args.evaluate_during_training:  # single GPU
                    results = evaluate(args, model, tokenizer)
            """,
            after="""
                if args.local_rank in [-1, 0] and args.evaluate_during_training:  # single GPU
                    results = evaluate(args, model, tokenizer)
            """,
            messages=(
                "evaluation gated on local_rank == -1 never runs under a launcher; run it on "
                "rank 0 (local_rank in [-1, 0])",
            ),
        ),
        Example(
            before="""
                if args.save_steps > 0 and -1 == args.local_rank \\
                        and args.evaluate_during_training:
                    torch.save(model.state_dict(), path)
            """,
            after="""
                if args.save_steps > 0 and args.local_rank in [-1, 0] \\
                        and args.evaluate_during_training:
                    torch.save(model.state_dict(), path)
            """,
            messages=(
                "save gated on local_rank == -1 never runs under a launcher; run it on rank 0 "
                "(local_rank in [-1, 0])",
            ),
        ),
        Example(
            before="""
                if args.local_rank == -1 or args.no_cuda:
                    device = torch.device('cuda')
                else:
                    torch.cuda.set_device(args.local_rank)
            """,
        ),
        Example(
            before="""
                if args.local_rank == -1:
                    train_sampler = RandomSampler(train_data)
                else:
                    train_sampler = DistributedSampler(train_data)
            """,
        ),
        Example(
            before="""
                if args.do_eval and (args.local_rank == -1 or dist.get_rank() == 0):
                    evaluate(args, model)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        functions = module_functions(ctx.module)
        ranks = model(ctx.tree)
        for gate in ctx.tree.nodes(cst.If):
            terms = _single_process_terms(gate.test)
            if not terms:
                self._check_rank_zero_gate(ctx, gate, ranks, functions)
                continue
            if gate.orelse is not None:
                continue
            calls = list(calls_in(gate.body))
            evaluates = any(is_eval_call(c) for c in calls)
            if not (evaluates or any(is_save_call(c) for c in calls)):
                continue
            collective = _joins_collectives(gate.body, functions)
            if collective:
                ctx.report(
                    gate,
                    f"{collective}() joins collectives; running it on rank 0 alone would hang. "
                    "Run it on every rank instead of gating it on local_rank == -1",
                )
                continue
            what = "evaluation" if evaluates else "save"
            ctx.fix(
                gate,
                f"{what} gated on local_rank == -1 never runs under a launcher; run it on rank 0 "
                "(local_rank in [-1, 0])",
                {term: _rank_zero(term) for term in terms},
            )

    def _check_rank_zero_gate(
        self, ctx: RuleContext, gate: cst.If, ranks: RankModel, functions: dict
    ) -> None:
        """The same analysis for gates that already run on rank 0 alone, whichever rule
        touches them: an evaluation there that joins a collective is a hang already."""
        if ranks.runs(gate.body, OTHER) is not False or ranks.runs(gate.body, RANK0_KIND) is False:
            return
        if ranks.runs(gate, OTHER) is False:
            return  # inside a rank-0 region already: reported at its outermost gate
        # the module's evaluation functions rank 0 reaches here (names first: they are cheap)
        evaluations = (
            c
            for c in calls_in(gate.body)
            if type(c.func) is cst.Name and is_eval_call(c) and callee_name(c) in functions
        )
        collective = next(
            (
                callee_name(c)
                for c in evaluations
                if ranks.runs(c, RANK0_KIND) is not False and ranks.collective(c, RANK0_KIND)
            ),
            None,
        )
        if collective:
            ctx.report(
                gate,
                f"{collective}() joins collectives but only rank 0 runs it here: the other ranks "
                "never join them (a hang). Run it on every rank, or remove its collectives",
            )
