"""DDP006 eval-results-always-bound: never read evaluation results that were not computed.

The template evaluates under a gate and reads the results after it::

    if args.local_rank in [-1, 0] and args.evaluate_during_training:
        results = evaluate(args, model, tokenizer)
    if results['eval_f1'] > best_f1:
        ...save checkpoint-best-f1...

Whenever the gate is false (no ``--evaluate_during_training``, or any rank but 0) the read raises
UnboundLocalError, after a full epoch of training and before any checkpoint exists. The rule moves
the statements that follow the gate in the same block, up to the last one that reads the results,
into the gate's body, so they run exactly when the results exist. Comments and blank lines move
with them. It applies only when the gate's body is the sole place the name is bound in its scope;
a read elsewhere (an outer block, an earlier loop iteration), or statements to move that would
change control flow (``return``, a ``break`` of the enclosing loop), is reported without a fix.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst
from libcst.metadata import ScopeProvider

from patcher.rule import Example, Rule, RuleContext
from patches._syntax import is_eval_call, walk


def _evaluated_names(if_node: cst.If) -> list[str]:
    """Names bound directly in the gate's body from an evaluate-like call."""
    names = []
    if not isinstance(if_node.body, cst.IndentedBlock):
        return names
    for statement in if_node.body.body:
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        for small in statement.body:
            if (
                isinstance(small, cst.Assign)
                and isinstance(small.value, cst.Call)
                and is_eval_call(small.value)
            ):
                for target in small.targets:
                    node = target.target
                    elements = node.elements if isinstance(node, (cst.Tuple, cst.List)) else ()
                    for candidate in [node, *(e.value for e in elements)]:
                        if isinstance(candidate, cst.Name):
                            names.append(candidate.value)
    return names


def _leaves_block(statements: Sequence[cst.CSTNode]) -> bool:
    """Whether moving ``statements`` would change where control goes: a ``return``, or a
    ``break``/``continue`` of the loop around them."""
    for statement in statements:
        loops = 0
        stack: list[tuple[cst.CSTNode, int]] = [(statement, 0)]
        while stack:
            node, loops = stack.pop()
            if isinstance(node, (cst.Return, cst.Yield)):
                return True
            if isinstance(node, (cst.Break, cst.Continue)) and loops == 0:
                return True
            if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue
            inner = loops + isinstance(node, (cst.For, cst.While))
            stack.extend((child, inner) for child in node.children)
    return False


def _candidates(body: Sequence[cst.CSTNode]) -> bool:
    return any(isinstance(s, cst.If) and _evaluated_names(s) for s in body)


class _Move(cst.CSTTransformer):
    def __init__(self, ctx: RuleContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.scopes = ctx.wrapper.resolve(ScopeProvider)

    def _outside_reads(self, gate: cst.If, name: str) -> set[cst.CSTNode] | None:
        """Reads of ``name`` outside ``gate``; None when it is bound anywhere else too."""
        scope = self.scopes.get(gate)
        if scope is None:
            return None
        inside = {id(n) for n in walk(gate.body)}
        if any(id(a.node) not in inside for a in scope.assignments[name]):
            return None
        return {a.node for a in scope.accesses[name] if id(a.node) not in inside}

    def _rewrite(
        self, original: Sequence[cst.BaseStatement], updated: Sequence[cst.BaseStatement]
    ) -> list[cst.BaseStatement]:
        out = list(updated)
        index = 0
        while index < len(original):
            gate = original[index]
            if not isinstance(gate, cst.If) or not isinstance(gate.body, cst.IndentedBlock):
                index += 1
                continue
            for name in _evaluated_names(gate):
                reads = self._outside_reads(gate, name)
                if not reads:
                    continue
                last = None
                covered: set[int] = set()
                for later in range(index + 1, len(original)):
                    hits = {id(n) for n in walk(original[later]) if n in reads}
                    if hits:
                        last, covered = later, covered | hits
                movable = last is not None and len(covered) == len(reads)
                if not movable or _leaves_block(original[index + 1 : last + 1]):
                    self.ctx.report(
                        gate,
                        f"{name!r} is read where the evaluation may not have run; "
                        "guard that read by hand",
                        fixed=False,
                    )
                    continue
                moved = out[index + 1 : last + 1]
                target = out[index]
                assert isinstance(target, cst.If) and isinstance(target.body, cst.IndentedBlock)
                first = moved[0]
                moved[0] = first.with_changes(
                    leading_lines=[*target.body.footer, *first.leading_lines]
                )
                body = target.body.with_changes(body=[*target.body.body, *moved], footer=[])
                out[index : last + 1] = [target.with_changes(body=body)]
                original = [*original[: index + 1], *original[last + 1 :]]
                self.ctx.report(
                    gate,
                    f"{name!r} is only bound when this gate passes: the {len(moved)} "
                    "statement(s) after it that read it now run inside it",
                    fixed=True,
                )
                break
            index += 1
        return out

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        if not _candidates(original_node.body):
            return updated_node
        return updated_node.with_changes(body=self._rewrite(original_node.body, updated_node.body))

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        if not _candidates(original_node.body):
            return updated_node
        return updated_node.with_changes(body=self._rewrite(original_node.body, updated_node.body))


class _HasCandidate(cst.CSTVisitor):
    found = False

    def visit_If(self, node: cst.If) -> bool:
        if _evaluated_names(node):
            self.found = True
        return not self.found


class EvalResultsAlwaysBound(Rule):
    code = "DDP006"
    name = "eval-results-always-bound"
    summary = "Reads of gated evaluation results move inside the gate (no UnboundLocalError)."
    rationale = __doc__
    triggers = ("local_rank", "evaluat", "eval(", "test(")
    examples = (
        Example(
            before=(
                "def train(args, model):\n"
                "    for step in range(10):\n"
                "        if args.local_rank in [-1, 0] and args.evaluate_during_training:\n"
                "            results = evaluate(args, model)\n"
                "            # Save model checkpoint\n"
                "\n"
                "        if results['eval_f1'] > best_f1:\n"
                "            best_f1 = results['eval_f1']\n"
                "            save(model)\n"
                "        log(step)\n"
            ),
            after=(
                "def train(args, model):\n"
                "    for step in range(10):\n"
                "        if args.local_rank in [-1, 0] and args.evaluate_during_training:\n"
                "            results = evaluate(args, model)\n"
                "            # Save model checkpoint\n"
                "\n"
                "            if results['eval_f1'] > best_f1:\n"
                "                best_f1 = results['eval_f1']\n"
                "                save(model)\n"
                "        log(step)\n"
            ),
        ),
        Example(
            before=(
                "def main(args, model):\n"
                "    results = {}\n"
                "    if args.do_eval:\n"
                "        results = evaluate(args, model)\n"
                "    return results\n"
            ),
        ),
    )

    def run(self, ctx: RuleContext) -> cst.Module:
        probe = _HasCandidate()
        ctx.module.visit(probe)
        if not probe.found:
            return ctx.module
        return ctx.module.visit(_Move(ctx))
