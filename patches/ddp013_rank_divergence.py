"""DDP013 rank-divergence: what still goes wrong once every rank really has its rank; an exit
that only rank 0 takes at a step every rank reaches is split so that every rank leaves.

Reading ``LOCAL_RANK`` (DDP001) turns on every rank test of a script: code that never ran apart
under a launcher (every process was rank -1) now runs on some ranks and not others. The other
rules fix the shapes they know; this one judges the patched result with the rank model
(``patches/_ranks.py``) and reports what is left:

- a name that a rank reads but never binds: ``tb_writer = SummaryWriter()`` under ``if
  args.local_rank in [-1, 0]:`` and ``tb_writer.add_scalar(...)`` in code every rank runs raises
  ``UnboundLocalError`` on rank 1;
- a ``return`` or ``break`` that only rank 0 takes out of code that synchronises (an early stop
  decided from rank 0's evaluation): the other ranks wait for it in their next collective;
- state that rank 0 alone updates and every rank leaves a loop on (``patience += 1`` in rank 0's
  evaluation gate, then ``if patience > args.patience: break`` on every rank; CodeT5's
  ``is_early_stop[task] = 1``, which every rank's loop top ``continue``s past), in a loop whose
  steps join a collective on every rank (a backward through a DDP wrapper, a barrier): once rank
  0's copy changes, rank 0 leaves or skips steps alone (``patches/_divergence.py``). A fix that
  would make such a loop synchronise (DDP001 waking the rank, DDP014's wrap) is withdrawn by the
  same post-condition, unless it carries a broadcast of the state from rank 0 right after rank
  0's gate (DDP014 does, where :func:`patches._divergence.broadcasts` is sure every rank reaches
  that point alike); the report says why ddpfix does not broadcast it. A lambda or nested
  function made inside the rank-0 gate runs on rank 0 only: what it reads is bound there;
- weights (or optimizer state) that only rank 0 loads while every rank trains on: a
  ``load_state_dict`` (or a ``p.copy_(...)`` over ``model.parameters()``) into the trained
  model (the model wrapped, an alias of it such as ``model = self.model`` or
  ``model.module``) or into its optimizer, under a rank-0 gate (any
  form the rank model knows: ``self.is_world_process_zero()``, ``args.local_rank in [-1, 0]``,
  ``dist.get_rank() == 0``, ``accelerator.is_main_process``), or reading a value only rank 0
  binds (a self-training trainer's ``best_state_dict``, kept in rank 0's evaluation gate and
  reloaded ``if best_state_dict is not None`` at the start of phase two), inside a loop whose
  steps join the gradient all-reduce on every rank, or before such a loop once the model is
  wrapped (an optimizer at any point). DDP broadcasts the parameters once, when it wraps the
  model: the replicas silently diverge (no hang, no error; ``patches/_divergence.py``). A load
  before the wrap (shared by it), on every rank, or after training (rank 0 reloading the best
  checkpoint for its final test) is fine. Reported, never rewritten: broadcasting a state dict
  from rank 0 needs every rank at that point with a buffer of the same layout, which ddpfix
  cannot promise; a fix that makes a version do this (DDP001 waking a rank gate around such a
  load) is withdrawn by the same post-condition.

One such exit it fixes: a rank-0 gate that ends training at a step every rank reaches
(CodeReviewer's ``if args.global_rank == 0 and global_step == args.train_steps:`` evaluate,
save, ``return``). Rank 0 returns alone, and the other ranks die in their next gradient
all-reduce ("Connection closed by peer") or hang on NCCL. The gate is split: the rest of its
test decides the exit on every rank, the rank test keeps the side effects on rank 0::

    if global_step == args.train_steps:
        if args.global_rank == 0:
            ...  # evaluate, save
        return

It is split only when every rank, reaching the gate at the same point of training, decides the
same (``patches/_uniform.py`` says when; it rests on the premise DDP training itself rests on:
the k-th iteration of a loop that all-reduces gradients in every iteration meets the k-th on
every other rank, and, in a module that shards its data with a ``DistributedSampler``, every
epoch has as many of them on every rank):

- the gate is an ``and`` of rank tests and other terms, has no ``else``, ends with the exit
  (``return``, ``break``, ``sys.exit(...)``, ``exit(...)``), and has no comment between its
  terms (the split rebuilds the test from them);
- every other term is rank-uniform: literals, attributes of the parsed command line
  (``args`` bound from ``parse_args()`` or passed it) that nothing assigns a per-rank value, on
  some ranks only, or by a computed name (``setattr(args, k, v)``), and counters bound from int
  literals and updated only by ``+= <int>`` or as ``range``/``enumerate`` indexes of a loop in
  step (a start read from the rank is not), on every rank, under uniform tests, in loops in
  step (not a loop over a rank's own data), outside a ``try`` body, ``except`` or ``else``
  clause (a ``finally`` is fine), with no ``continue``, ``break`` or ``return`` decided by a
  rank's own data before or around them, and no nested function rebinding them. A
  term read from a loss, a metric, an evaluation, a file, the clock, randomness or a rank is not;
- the gate itself runs on every rank, under such tests only, in loops in step;
- a rank test that is false in a lone process (``args.global_rank == 0`` with rank -1) is split
  only when every path to the gate calls ``init_process_group`` first (a call with no test,
  loop, ``try`` or earlier exit around it, before the gate or before every call of its
  function): a lone process without a launcher cannot pass that call, so it never reaches the
  gate; otherwise the lone process, which never left there, would;
- the statements moved under the rank test join no collective (the other ranks would not join
  it either), leave nothing early (no other ``return``, ``break``, ``continue``, ``raise``,
  ``yield``), and pass no name to a module function that calls what it receives, unless it is
  an evaluation; an evaluation or a forward (``model(x)``) there is accepted only in a module
  that wraps the model in DDP itself, where DDP004 (a companion: ``--select DDP013`` alone
  warns) sees the wrapper and unwraps it behind the rank test; a wrapper built where this file
  does not show (``model = build_model(args)``) may be what rank 0 runs, and its forward
  broadcasts buffers to ranks that have left;
- the value returned (or the exit status) reads nothing only rank 0 binds there, and after a
  ``break`` no code reads what only rank 0 bound there (every rank now runs what follows the
  loop).

Otherwise the exit is reported, with the reason. ``return`` leaves the function on every rank;
``break`` stays where it was, so every rank leaves the same loop.

A script whose rank stays dormant under a modern launcher (it reads its rank only from
``--local_rank``, which torchrun and accelerate never pass: ``patches/_ranks.rank_dormant``)
runs as N lone copies of one run; what the model finds with the rank read then happens only once
the script reads LOCAL_RANK (DDP001's report says why it does not yet), and the report begins
so ("once the script reads its rank from LOCAL_RANK ..."). What the lone copies do now is
reported in its own words: an exit, or the patience deciding one, behind the launcher's
``RANK`` (a gate the script wrote itself; ddpfix withdraws its own) in a loop that trains on
hangs nothing, since no process group exists: the other processes train on past rank 0's early
stop and overwrite its saves.

It reports once, on the final output, so it never reports what another rule fixed (the split is
a fix like any rule's, proposed in every pass). Collectives
reached by rank 0 alone are DDP003's to report (barrier pairs are such halves on purpose).
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patches._gates import conjuncts
from patches._names import names_bound_in, parameters, walk
from patches._ranks import (
    LONE,
    OTHER,
    RANK0,
    SINGLE,
    RankModel,
    dormant_violations,
    model,
    rank_dormant,
    synchronises,
    truth,
    violations,
)
from patches._syntax import callee_name, dominates, dotted_name, is_eval_call
from patches._uniform import PROCESS_EXITS, Uniformity

#: The rank model's post-conditions this rule reports on the final output.
_REPORTED = ("binding", "exit", "state", "weights")
#: How a report of the rank model begins in a version whose rank stays dormant under the
#: launcher (``patches/_ranks.rank_dormant``): it happens once the rank is read, not yet.
_WOKEN = (
    "once the script reads its rank from LOCAL_RANK (as DDP001 asks; until then every "
    "process keeps local_rank -1 and does the same here): "
)
_LEAVING = (cst.Return, cst.Raise, cst.Yield, cst.Await)


def _exit_of(statement: cst.BaseStatement) -> cst.CSTNode | None:
    """The exit a statement is, when it is one: ``return``, ``break``, ``sys.exit(...)``."""
    if type(statement) is not cst.SimpleStatementLine or len(statement.body) != 1:
        return None
    small = statement.body[0]
    if isinstance(small, (cst.Return, cst.Break)):
        return small
    if type(small) is cst.Expr and type(small.value) is cst.Call:
        if dotted_name(small.value.func) in PROCESS_EXITS:
            return small.value
    return None


def _rank_term(term: cst.BaseExpression) -> bool:
    """A term true on rank 0 and false on every other rank of a job."""
    return truth(term, RANK0) is True and truth(term, OTHER) is False


def _joined(module: cst.Module, terms: list[cst.BaseExpression]) -> cst.BaseExpression:
    """``a and b`` of the terms, each as written (parenthesised when it spans lines)."""
    parts = []
    for term in terms:
        code = module.code_for_node(term).strip()
        parts.append(f"({code})" if "\n" in code and not term.lpar else code)
    return cst.parse_expression(" and ".join(parts))


class _Split:
    """One gate ending in an exit, and whether (and how) it can be split."""

    def __init__(self, m: RankModel, uniformity: Uniformity, gate: cst.If, exit_: cst.CSTNode):
        self.m, self.uniformity, self.gate, self.exit = m, uniformity, gate, exit_
        terms = conjuncts(gate.test)
        self.ranks = [t for t in terms if _rank_term(t)]
        self.rest = [t for t in terms if not _rank_term(t)]
        body = gate.body
        assert type(body) is cst.IndentedBlock
        self.moved = list(body.body[:-1])
        self.last = body.body[-1]

    def why_not(self) -> str | None:
        """Why the split would not be the same decision on every rank (None when it is)."""
        m, uniformity = self.m, self.uniformity
        if not self.rest:
            return "no other test decides it (every rank would leave at once)"
        if _comments_between(self.gate.test, [*self.ranks, *self.rest]):
            return "comments between its terms would be lost"
        for term in self.rest:
            why = uniformity.why_not(term, leaving=self.exit)
            if why:
                return f"the test may differ between ranks: {why}"
        if any(truth(t, SINGLE) is False for t in self.ranks) and not _grouped_before(m, self.gate):
            return (
                "a lone process (rank -1) never leaves here, and would: not every path to it "
                "calls init_process_group first (which a lone process without a launcher "
                "cannot pass)"
            )
        if m.runs(self.gate, OTHER) is False or m.runs(self.gate, RANK0) is False:
            return "the gate itself runs on some ranks only"
        for test, _ in m.conditions(self.gate):
            why = uniformity.why_not(test, leaving=self.exit)
            if why:
                return f"a test around it may differ between ranks: {why}"
        why = uniformity.placed(self.gate, "the gate", leaving=self.exit)
        if why:
            return f"it may be reached at different steps: {why}"
        for statement in self.moved:
            why = self._moved(statement)
            if why:
                return why
        if type(self.exit) is cst.Break:  # the code after the loop now runs on every rank
            carried = set().union(*(m.carried_out(s) for s in self.moved)) if self.moved else set()
            if carried:
                name = sorted(carried)[0]
                return f"only rank 0 binds {name} there, and the code after the loop reads it"
        value = self._value()
        if value is not None:
            bound = set().union(*(names_bound_in(s) for s in self.moved)) if self.moved else set()
            read = {n.value for n in walk(value, into_scopes=True) if type(n) is cst.Name}
            if read & bound:
                name = sorted(read & bound)[0]
                return f"the value it leaves with reads {name}, which only rank 0 binds there"
        return None

    def _moved(self, statement: cst.CSTNode) -> str | None:
        m = self.m
        for node in _own_nodes(statement):
            if type(node) is cst.Call:
                joined = m.collective(node, RANK0)
                if joined is not None:
                    return f"rank 0 joins {joined} there, which the other ranks never would"
                if dotted_name(node.func) in PROCESS_EXITS:
                    return "it leaves earlier on rank 0 too"
                forwarded = _forwarded(m, node)
                if forwarded is not None:
                    return (
                        f"rank 0 runs {forwarded} there, maybe through the DDP wrapper (whose "
                        "forward broadcasts buffers to ranks that would have left)"
                    )
                unseen = None if _wraps_here(m) else _maybe_wrapped(m, self.uniformity, node)
                if unseen is not None:
                    return (
                        f"rank 0 runs {unseen} there, maybe through a DDP wrapper built where "
                        "this file does not show (its forward broadcasts buffers to ranks that "
                        "would have left)"
                    )
            if isinstance(node, _LEAVING) or (
                isinstance(node, (cst.Break, cst.Continue))
                and not _loop_between(m, node, statement)
            ):
                return "it leaves earlier on rank 0 too"
        return None

    def _value(self) -> cst.BaseExpression | None:
        if type(self.exit) is cst.Return:
            return self.exit.value
        if type(self.exit) is cst.Call and self.exit.args:
            return self.exit.args[0].value
        return None

    def rewrite(self) -> cst.If:
        module = self.m.tree.module
        body = self.gate.body
        assert type(body) is cst.IndentedBlock
        statements: list[cst.BaseStatement] = []
        if self.moved:
            inner = cst.If(test=_joined(module, self.ranks), body=cst.IndentedBlock(self.moved))
            statements.append(inner)
        statements.append(self.last)
        return self.gate.with_changes(
            test=_joined(module, self.rest), body=body.with_changes(body=statements)
        )


def _forwarded(m: RankModel, call: cst.Call) -> str | None:
    """``helper(model)`` where ``helper`` (a module function that is not an evaluation, which
    DDP004 unwraps) calls the parameter it receives: a forward of whatever is passed, perhaps
    the DDP wrapper. Its name as ``helper()``; None when it forwards nothing it receives."""
    name = callee_name(call)
    function = m.functions.get(name or "") if type(call.func) is cst.Name else None
    if function is None or is_eval_call(call):
        return None
    params = [p.name.value for p in parameters(function)]
    received = set()
    for index, arg in enumerate(call.args):
        if arg.star or type(arg.value) is not cst.Name:
            continue
        if arg.keyword is not None:
            received.add(arg.keyword.value)
        elif index < len(params):
            received.add(params[index])
    for node in walk(function.body, into_scopes=True):
        if type(node) is cst.Call and type(node.func) is cst.Name:
            if node.func.value in received:
                return f"{name}()"
    return None


def _grouped_before(m: RankModel, node: cst.CSTNode, seen: frozenset[str] = frozenset()) -> bool:
    """Whether every process that reaches ``node`` has called ``init_process_group`` first:
    a call of it (or of a module function that always makes one) that always runs, before
    ``node`` in its function, or before every call of that function in the module. A lone
    process started without a launcher cannot pass that call, so it never gets here."""
    tree = m.tree
    scope = m.scope(node)
    for call in tree.nodes(cst.Call):
        if m.scope(call) is not scope or not tree.after(node, call):
            continue
        if _groups(m, call, seen) and dominates(tree, call, node):
            return True
    if type(scope) is not cst.FunctionDef or scope.name.value in seen:
        return False
    name = scope.name.value
    sites = [c for c in m.module_calls() if type(c.func) is cst.Name and c.func.value == name]
    return bool(sites) and all(_grouped_before(m, c, seen | {name}) for c in sites)


def _groups(m: RankModel, call: cst.Call, seen: frozenset[str]) -> bool:
    """Whether ``call`` always runs where it is and makes an ``init_process_group`` call."""
    if not _always_runs(m, call):
        return False
    name = callee_name(call)
    if name == "init_process_group":
        return True
    if type(call.func) is not cst.Name or name not in m.functions or name in seen:
        return False
    function = m.functions[name]
    return any(
        type(inner) is cst.Call and _groups(m, inner, seen | {name})
        for inner in walk(function.body, into_scopes=False)
    )


def _always_runs(m: RankModel, node: cst.CSTNode) -> bool:
    """No test, loop or ``try`` around ``node`` in its function, and no exit before it."""
    tree = m.tree
    scope = m.scope(node)
    for ancestor in tree.ancestors(node):
        if ancestor is scope:
            break
        if isinstance(
            ancestor, (cst.If, cst.IfExp, cst.For, cst.While, cst.Try, cst.BooleanOperation)
        ):
            return False
    body = scope.body if type(scope) is cst.FunctionDef else scope
    for inner in walk(body, into_scopes=False):
        if not tree.after(node, inner):
            continue
        if isinstance(inner, (cst.Return, cst.Raise)) or (
            type(inner) is cst.Call and dotted_name(inner.func) in PROCESS_EXITS
        ):
            return False
    return True


def _wraps_here(m: RankModel) -> bool:
    """Whether this module wraps the model in DDP itself (``DistributedDataParallel(...)``,
    under any alias): then DDP004 sees the wrapper and unwraps what rank 0 evaluates alone."""
    names = {"DistributedDataParallel"}
    for node in m.tree.nodes(cst.ImportFrom):
        if isinstance(node.names, cst.ImportStar):
            continue
        for alias in node.names:
            asname = alias.asname.name if alias.asname is not None else None
            if dotted_name(alias.name) == "DistributedDataParallel" and isinstance(
                asname, cst.Name
            ):
                names.add(asname.value)
    return any(callee_name(call) in names for call in m.tree.nodes(cst.Call))


def _maybe_wrapped(m: RankModel, uniformity: Uniformity, call: cst.Call) -> str | None:
    """``model(x)`` or ``evaluate(args, model)`` where ``model`` is a name of this frame (not
    the command line), in a module that does not wrap the model itself: it may be a DDP
    wrapper built elsewhere, which DDP004 cannot see. The call as ``name()``; None otherwise."""
    scope = m.scope(call)
    bound = names_bound_in(scope)
    if type(scope) is cst.FunctionDef:
        bound |= {p.name.value for p in parameters(scope)}
    bound -= set(m.functions)
    if type(call.func) is cst.Name and call.func.value in bound:
        return f"{call.func.value}()"
    if not is_eval_call(call):
        return None
    for arg in call.args:
        value = arg.value
        if type(value) is cst.Name and value.value in bound:
            if uniformity.command_line(value) is None:
                continue  # the parsed command line, not a model
            return f"{callee_name(call)}()"
    return None


def _comments_between(test: cst.BaseExpression, terms: list[cst.BaseExpression]) -> bool:
    """Whether ``test`` has comments outside its terms (``a  # why`` before ``and b``): the
    split rebuilds the test from its terms, which would drop them."""
    inside = sum(_comments(term) for term in terms)
    return _comments(test) > inside


def _comments(node: cst.CSTNode) -> int:
    count = 0
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) is cst.Comment:
            count += 1
        stack.extend(current.children)
    return count


def _own_nodes(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    return walk(node, into_scopes=False)


def _loop_between(m: RankModel, node: cst.CSTNode, top: cst.CSTNode) -> bool:
    """Whether a loop inside ``top`` holds ``node`` (its ``break`` stays in there)."""
    for ancestor in m.tree.ancestors(node):
        if isinstance(ancestor, (cst.For, cst.While)):
            return True
        if ancestor is top:
            return False
    return False


def _candidates(m: RankModel) -> Iterator[tuple[cst.If, cst.CSTNode]]:
    """Gates with a rank test among their ``and`` terms, no ``else``, ending in an exit that
    only some ranks take, out of code that synchronises."""
    tree = m.tree
    for gate in tree.nodes(cst.If):
        if gate.orelse is not None or type(gate.body) is not cst.IndentedBlock:
            continue
        exit_ = _exit_of(gate.body.body[-1])
        if exit_ is None or not any(_rank_term(t) for t in conjuncts(gate.test)):
            continue
        if not m.subset(exit_):
            continue
        if type(exit_) is cst.Call:
            left: cst.CSTNode | None = tree.module  # the process ends: every later collective
        elif type(exit_) is cst.Break:
            left = next(
                (a for a in tree.ancestors(exit_) if isinstance(a, (cst.For, cst.While))), None
            )
        else:
            left = m.scope(exit_)
        if left is not None and synchronises(m, left):
            yield gate, exit_


def _what(exit_: cst.CSTNode) -> str:
    """What an exit does, as a verb phrase."""
    if type(exit_) is cst.Return:
        return "returns"
    return "leaves the loop" if type(exit_) is cst.Break else "exits"


class RankDivergence(Rule):
    code = "DDP013"
    name = "rank-divergence"
    summary = "Every rank leaves at a step-limit exit rank 0 took alone; report other divergence."
    rationale = __doc__
    judges_output = True
    triggers = (
        "local_rank",
        "LOCAL_RANK",
        "global_rank",
        "get_rank",
        "is_main_process",
        "is_world_process_zero",
    )
    companions = ("DDP004",)
    companion_reason = (
        "a step-limit exit split so that every rank leaves keeps rank 0's evaluation behind the "
        "rank test, and only DDP004 takes the DDP wrapper off what rank 0 then evaluates alone"
    )
    examples = (
        Example(
            before="""
                def main(args, model, optimizer, loader):
                    dist.init_process_group(backend="nccl")
                    global_step = 0
                    for epoch in range(args.train_epochs):
                        for step, batch in enumerate(loader, 1):
                            model(batch).backward()
                            optimizer.step()
                            global_step += 1
                            if args.global_rank == 0 and global_step == args.train_steps:
                                save_model(model, args.output_dir)
                                return
            """,
            after="""
                def main(args, model, optimizer, loader):
                    dist.init_process_group(backend="nccl")
                    global_step = 0
                    for epoch in range(args.train_epochs):
                        for step, batch in enumerate(loader, 1):
                            model(batch).backward()
                            optimizer.step()
                            global_step += 1
                            if global_step == args.train_steps:
                                if args.global_rank == 0:
                                    save_model(model, args.output_dir)
                                return
            """,
            messages=(
                "only rank 0 returns here, out of code that synchronises (the other ranks wait "
                "for it in their next collective): every rank now returns when global_step == "
                "args.train_steps, the same on every rank at the same step; rank 0 alone runs "
                "the rest of the block first",
            ),
        ),
        Example(
            before="""
                def main(args, model, optimizer, loader):
                    for step, batch in enumerate(loader):
                        loss = model(batch)
                        loss.backward()
                        optimizer.step()
                        if args.global_rank == 0 and loss.item() < args.target_loss:
                            save_model(model, args.output_dir)
                            return
            """,
            reports=1,
            messages=(
                "only rank 0 returns here, out of code that synchronises: the other ranks wait "
                "for it in their next collective (hang); not split: the test may differ between "
                "ranks: loss.item() is computed by each rank",
            ),
        ),
        Example(
            before="""
                def main(args, model, loader):
                    if args.local_rank in [-1, 0]:
                        tb_writer = SummaryWriter()
                    for step, batch in enumerate(loader):
                        loss = model(batch)
                        tb_writer.add_scalar('loss', loss.item(), step)
            """,
            reports=1,
            messages=(
                "'tb_writer' is read on the other ranks, which never binds it (UnboundLocalError)",
            ),
        ),
        Example(
            before="""
                def train(args, model, loader, optimizer):
                    if args.local_rank != -1:
                        model = torch.nn.parallel.DistributedDataParallel(model)
                    patience, best = 0, float("inf")
                    for epoch in range(args.epochs):
                        for batch in loader:
                            model(batch).mean().backward()
                            optimizer.step()
                        if args.local_rank in [-1, 0]:
                            loss = evaluate(args, model)
                            if loss < best:
                                best, patience = loss, 0
                            else:
                                patience += 1
                        if patience > args.patience:
                            break
            """,
            reports=1,
            messages=(
                "'patience' is updated on rank 0 only (`patience += 1`) and every rank reads it "
                "to decide whether to leave the loop (`if patience > args.patience:`), where "
                "every rank joins the DDP gradient all-reduce of backward() at each step: once "
                "rank 0's copy changes, the ranks take different paths and the others wait in "
                "their next collective (hang); decide it on every rank, or broadcast it from "
                "rank 0 (ddpfix does not: rank 0's gate (`if args.local_rank in [-1, 0]`) runs "
                "between runs of a training loop, which only a DistributedSampler makes equally "
                "long on every rank)",
            ),
        ),
        Example(
            before="""
                def train(args, model, optimizer, loader):
                    model = torch.nn.parallel.DistributedDataParallel(model)
                    best = None
                    for epoch in range(args.epochs):
                        if epoch == args.phase_two_epoch and best is not None:
                            model.load_state_dict(best)
                        for batch in loader:
                            model(batch).mean().backward()
                            optimizer.step()
                        if args.local_rank in [-1, 0]:
                            best = copy.deepcopy(model.state_dict())
            """,
            reports=1,
            messages=(
                "`model.load_state_dict(best)` changes model's weights on rank 0 only (it reads "
                "'best', which only rank 0 binds (`best = copy.deepcopy(model.state_dict())`): "
                "the other ranks still hold their first value), and every rank trains on "
                "afterwards (`for epoch in range(args.epochs)` joins the DDP gradient all-reduce "
                "of backward()): DDP broadcasts the parameters only when it wraps the model, so "
                "the replicas silently diverge; do it on every rank (or broadcast the state "
                "from rank 0; ddpfix does not)",
            ),
        ),
        Example(
            before="""
                def main(args, model, loader):
                    tb_writer = None
                    if args.local_rank in [-1, 0]:
                        tb_writer = SummaryWriter()
                    for step, batch in enumerate(loader):
                        if tb_writer is not None:
                            tb_writer.add_scalar('loss', model(batch).item(), step)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        m = model(ctx.tree)
        uniformity = Uniformity(m)
        unsplit: dict[int, str] = {}
        split: set[int] = set()
        for gate, exit_ in _candidates(m):
            candidate = _Split(m, uniformity, gate, exit_)
            why = candidate.why_not()
            what = _what(exit_)
            if why is None:
                condition = " ".join(
                    ctx.tree.module.code_for_node(_joined(ctx.tree.module, candidate.rest)).split()
                )
                ctx.fix(
                    gate,
                    f"only rank 0 {what} here, out of code that synchronises (the other ranks "
                    f"wait for it in their next collective): every rank now {what} when "
                    f"{condition}, the same on every rank at the same step; rank 0 alone runs "
                    "the rest of the block first",
                    {gate: candidate.rewrite()},
                )
                split.add(id(exit_))
            elif type(exit_) is cst.Call:
                if ctx.judging:
                    ctx.report(
                        exit_,
                        f"only rank 0 {what} here, out of code that synchronises: the other "
                        f"ranks wait for it in their next collective (hang); not split: {why}",
                    )
            else:
                unsplit[id(exit_)] = why
        if not ctx.judging:
            return  # the reports below judge the final version only
        reported: set[tuple[str, ...]] = set()
        found = list(violations(ctx.tree, _REPORTED).items())
        # A version whose rank stays dormant runs as lone copies: what they do is reported
        # first (it wins over the same place's hazard once the rank is read), and a hazard of
        # the rank model that the lone copies do not have yet is said to come with the rank.
        now = dormant_violations(ctx.tree, _REPORTED) if rank_dormant(ctx.tree) else None
        if now is not None:
            found = [(k, v) for k, v in now.items() if k[-1] == LONE] + found
        for key, violation in found:
            if violation.node is None or key[0] not in _REPORTED:
                continue
            if key[0] == "binding" and "UnboundLocalError" not in violation.message:
                continue  # out-of-step state is the fixing rules' post-condition
            if id(violation.node) in split:
                continue  # the fix proposed on this version speaks for it
            first = key[:3]  # one report per name (or exit) and function
            if first in reported:
                continue
            reported.add(first)
            why = unsplit.get(id(violation.node))
            message = violation.message if why is None else f"{violation.message}; not split: {why}"
            if now is not None and key[-1] != LONE and key not in now:
                message = f"{_WOKEN}{message}"
            ctx.report(violation.node, message)
