"""In-batch negatives: a training loss that scores each query against every candidate of its batch.

GraphCodeBERT's and UniXcoder's code search train with ``scores = torch.einsum("ab,cb->ac",
nl_vec, code_vec)`` and ``CrossEntropyLoss()(scores, torch.arange(n))``: the other examples of
the batch are the negatives. DataParallel computes it on the global batch; one DDP process per
GPU would see only its share, so the candidates must come from every process. This module finds
that loss when its shape is certain and builds the rewrite DDP016 applies:

- the candidate vectors are gathered with an autograd function added to the script
  (:data:`GATHER_SOURCE`: ``all_gather`` forward; backward sums every process's gradient of the
  candidates and keeps this process's block, so with DDP's gradient averaging the update is the
  one of the global batch);
- the labels are offset by ``rank * <local candidates>`` (this process's block of the gather);
- both only when a process group exists; otherwise the original expressions run unchanged.

Anything less certain (several score products, a symmetric loss reading the score matrix again,
a loss whose reduction is not the default mean, labels not an ``arange`` of the local batch,
a memory bank as candidates) is left to DDP016's report.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from patches._names import walk
from patches._syntax import callee_name, calls_in, dotted_name

_PRODUCTS = frozenset({"einsum", "matmul", "mm", "bmm"})
_SUBSCRIPTS = re.compile(r"^([a-z])([a-z]),([a-z])\2->\1\3$")
_LOSSES = frozenset({"cross_entropy"})
_LOSS_CLASSES = frozenset({"CrossEntropyLoss"})
_SPACE = cst.SimpleWhitespace(" ")

GATHER_CLASS = "DdpfixAllGather"
#: The gather the rewrite calls. Not ``torch.distributed.nn.functional.all_gather``: on gloo its
#: backward (an all-to-all emulated with scatters) receives into ``empty_like`` buffers of the
#: incoming gradient, which keep its strides, and ``einsum``'s backward hands it a transposed
#: one; the candidates' gradients come out scrambled (torch 2.13, measured). This one sums the
#: gradient with an ``all_reduce`` (gloo and NCCL) and keeps this process's block.
GATHER_SOURCE = f'''

class {GATHER_CLASS}(torch.autograd.Function):
    """ddpfix: the rows of every process in rank order; backward sums each process's gradient
    and keeps this process's block (in-batch negatives over the global batch under DDP)."""

    @staticmethod
    def forward(ctx, tensor):
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(parts, tensor)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        return grad.chunk(torch.distributed.get_world_size())[torch.distributed.get_rank()]
'''

COMMENT = (
    "# ddpfix: when launched, score against the candidates of every process (in-batch "
    "negatives over the global batch)"
)


def scores_batch_by_batch(function: cst.FunctionDef) -> bool:
    """A batch x batch score matrix (``einsum``/matmul) against ``arange`` labels somewhere in
    the function: under DataParallel the batch is global; split per process, it shrinks."""
    names = {callee_name(c) for c in calls_in(function)}
    matrix = names & _PRODUCTS or any(
        type(n) is cst.BinaryOperation and type(n.operator) is cst.MatrixMultiply
        for n in walk(function.body, into_scopes=False)
    )
    return bool(matrix) and "arange" in names


@dataclass(frozen=True)
class InBatchLoss:
    """The pieces of one in-batch-negatives loss in a training function."""

    scores: cst.SimpleStatementLine  # scores = torch.einsum("ab,cb->ac", nl_vec, code_vec)
    candidates: cst.Name  # code_vec, inside that statement
    labels: cst.Call  # torch.arange(n, device=...), the loss call's target


def find(function: cst.FunctionDef) -> InBatchLoss | None:
    """The function's in-batch-negatives loss, when its shape is one we can rewrite exactly."""
    products = [n for n in walk(function.body, into_scopes=False) if _is_product(n)]
    if len(products) != 1:
        return None
    found = _score_statement(function, products[0])
    if found is None:
        return None
    statement, target, candidates = found
    if not _model_output(function, candidates.value):
        return None
    arange = [c for c in calls_in(function.body) if callee_name(c) == "arange"]
    if len(arange) != 1 or not _local_arange(arange[0], target):
        return None
    labels = arange[0]
    loss = _loss_call(function, labels, target)
    if loss is None or not _only_read_by(function, target, statement, loss, labels):
        return None
    loop = _loop_around(function.body, statement)
    if loop is None or not _inside(loop, loss) or not _trains(loop):
        return None
    return InBatchLoss(statement, candidates, labels)


def _is_product(node: cst.CSTNode) -> bool:
    if type(node) is cst.Call:
        return callee_name(node) in _PRODUCTS
    return type(node) is cst.BinaryOperation and type(node.operator) is cst.MatrixMultiply


def _score_statement(
    function: cst.FunctionDef, product: cst.CSTNode
) -> tuple[cst.SimpleStatementLine, str, cst.Name] | None:
    """``scores = <product>`` as a statement of its own, bound once in the function: the
    statement, the score name and the candidates' name node."""
    for line in _statements(function.body):
        if len(line.body) != 1 or not isinstance(line.body[0], cst.Assign):
            continue
        assign = line.body[0]
        if assign.value is not product:
            continue
        if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, cst.Name):
            return None
        target = assign.targets[0].target.value
        candidates = _candidates(product)
        if candidates is None or _bindings(function, target) != 1:
            return None
        return line, target, candidates
    return None


def _candidates(product: cst.CSTNode) -> cst.Name | None:
    """The name whose rows are the columns of the score matrix: ``code`` in
    ``einsum("ab,cb->ac", nl, code)``, ``nl @ code.t()``, ``torch.matmul(nl, code.T)``.
    None for anything else (a query scored against itself, a memory bank, batched products)."""
    if type(product) is cst.Call:
        name = callee_name(product)
        if any(a.keyword or a.star for a in product.args):
            return None
        if name == "einsum" and dotted_name(product.func) == "torch.einsum":
            if len(product.args) != 3:
                return None
            spec = product.args[0].value
            if type(spec) is not cst.SimpleString:
                return None
            value = spec.evaluated_value
            letters = value.replace(" ", "") if isinstance(value, str) else None
            match = _SUBSCRIPTS.match(letters) if letters is not None else None
            if match is None or len(set(match.groups())) != 3:
                return None
            query, candidates = product.args[1].value, product.args[2].value
        elif name in ("matmul", "mm") and dotted_name(product.func) == f"torch.{name}":
            if len(product.args) != 2:
                return None
            query, candidates = product.args[0].value, _transposed(product.args[1].value)
        else:
            return None
    elif type(product) is cst.BinaryOperation:
        query, candidates = product.left, _transposed(product.right)
    else:
        return None
    if type(query) is not cst.Name or type(candidates) is not cst.Name:
        return None
    return candidates if candidates.value != query.value else None


def _model_output(function: cst.FunctionDef, name: str) -> bool:
    """``name`` is bound once, to a call of a model the function receives (``code_vec =
    model(code_inputs=...)``): one row per example of this process's batch. Not a memory bank
    (``torch.cat([code_vec, queue])``), which gathered would repeat the bank once a process."""
    params = {p.name.value for p in function.params.params}
    values = [
        line.body[0].value
        for line in _statements(function.body)
        if len(line.body) == 1
        and isinstance(line.body[0], cst.Assign)
        and len(line.body[0].targets) == 1
        and isinstance(line.body[0].targets[0].target, cst.Name)
        and line.body[0].targets[0].target.value == name
    ]
    if len(values) != 1 or _bindings(function, name) != 1 or not isinstance(values[0], cst.Call):
        return False
    root = dotted_name(values[0].func)
    return root is not None and root.split(".")[0] in params


def _transposed(node: cst.BaseExpression) -> cst.BaseExpression | None:
    """``x`` of ``x.t()``, ``x.T``, ``x.transpose(0, 1)``."""
    if type(node) is cst.Attribute and node.attr.value == "T":
        return node.value
    if type(node) is cst.Call and type(node.func) is cst.Attribute:
        method, args = node.func.attr.value, [a.value for a in node.args]
        numbers = [a.value for a in args if type(a) is cst.Integer]
        if (method == "t" and not args) or (
            method == "transpose" and len(numbers) == 2 == len(args) and set(numbers) == {"0", "1"}
        ):
            return node.func.value
    return None


def _local_arange(call: cst.Call, scores: str) -> bool:
    """``torch.arange(n, device=...)`` with ``n`` the first dimension of something (the local
    batch: ``x.size(0)``, ``x.shape[0]``, ``len(x)``), so it stays right when the columns grow."""
    if dotted_name(call.func) != "torch.arange":
        return False
    positional = [a for a in call.args if a.keyword is None]
    if len(positional) != 1 or positional[0].star:
        return False
    if any(a.keyword.value not in ("device", "dtype") for a in call.args if a.keyword):
        return False
    return _first_dimension(positional[0].value)


def _first_dimension(node: cst.BaseExpression) -> bool:
    if type(node) is cst.Call and not node.args and type(node.func) is cst.Attribute:
        return False
    if type(node) is cst.Call and callee_name(node) == "len" and len(node.args) == 1:
        return type(node.func) is cst.Name
    if type(node) is cst.Call and type(node.func) is cst.Attribute:
        args = [a.value for a in node.args]
        return (
            node.func.attr.value == "size"
            and len(args) == 1
            and isinstance(args[0], cst.Integer)
            and args[0].value == "0"
        )
    if type(node) is cst.Subscript and len(node.slice) == 1:
        index = node.slice[0].slice
        return (
            type(node.value) is cst.Attribute
            and node.value.attr.value == "shape"
            and type(index) is cst.Index
            and type(index.value) is cst.Integer
            and index.value.value == "0"
        )
    return False


def _loss_call(function: cst.FunctionDef, labels: cst.Call, scores: str) -> cst.Call | None:
    """The call ``loss_fct(scores, labels)`` (``scores`` maybe scaled by a temperature), where
    ``loss_fct`` is a default ``CrossEntropyLoss()`` (mean over the queries, so DDP's averaging
    of the processes' gradients gives the global batch's) or ``F.cross_entropy``."""
    for call in calls_in(function.body):
        if len(call.args) != 2 or any(a.keyword or a.star for a in call.args):
            continue
        if call.args[1].value is not labels:
            continue
        if not _scaled(call.args[0].value, scores):
            return None
        return call if _mean_cross_entropy(function, call) else None
    return None


def _scaled(node: cst.BaseExpression, scores: str) -> bool:
    """``scores``, ``scores * 20``, ``20 * scores``, ``scores / tau``."""
    if type(node) is cst.Name:
        return node.value == scores
    if type(node) is not cst.BinaryOperation:
        return False
    constant = (cst.Integer, cst.Float, cst.Name, cst.Attribute)
    if type(node.operator) is cst.Multiply:
        pairs = ((node.left, node.right), (node.right, node.left))
        return any(
            type(s) is cst.Name and s.value == scores and isinstance(k, constant) for s, k in pairs
        )
    if type(node.operator) is cst.Divide:
        return (
            type(node.left) is cst.Name
            and node.left.value == scores
            and isinstance(node.right, constant)
        )
    return False


def _mean_cross_entropy(function: cst.FunctionDef, call: cst.Call) -> bool:
    if type(call.func) is cst.Call:  # CrossEntropyLoss()(scores, labels)
        return callee_name(call.func) in _LOSS_CLASSES and not call.func.args
    if callee_name(call) in _LOSSES:
        return (dotted_name(call.func) or "").split(".")[0] in ("F", "torch", "nn", "functional")
    if type(call.func) is not cst.Name:
        return False
    values = [
        line.body[0].value
        for line in _statements(function.body)
        if len(line.body) == 1
        and isinstance(line.body[0], cst.Assign)
        and any(
            type(t.target) is cst.Name and t.target.value == call.func.value
            for t in line.body[0].targets
        )
    ]
    if not values or len(values) != _bindings(function, call.func.value):
        return False
    return all(
        type(v) is cst.Call and callee_name(v) in _LOSS_CLASSES and not v.args for v in values
    )


def _only_read_by(
    function: cst.FunctionDef,
    scores: str,
    statement: cst.SimpleStatementLine,
    loss: cst.Call,
    labels: cst.Call,
) -> bool:
    """The score matrix is read only by the loss (and for the labels' device or the batch
    size): a second use (``scores.t()`` for a symmetric loss, an accuracy) would see the
    gathered columns."""
    allowed = {id(n) for part in (loss, labels) for n in walk(part, into_scopes=False)}
    first = statement.body[0]
    assert type(first) is cst.Assign  # find() only keeps ``scores = <product>`` lines
    target = first.targets[0].target
    for node in walk(function.body, into_scopes=False):
        if type(node) is cst.Name and node.value == scores and node is not target:
            if id(node) not in allowed:
                return False
    return True


def _bindings(function: cst.FunctionDef, name: str) -> int:
    count = 0
    for node in walk(function.body, into_scopes=False):
        if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign)):
            target = node.target
            names = (
                [target] if isinstance(target, cst.Name) else list(walk(target, into_scopes=False))
            )
            count += sum(isinstance(n, cst.Name) and n.value == name for n in names)
        elif isinstance(node, (cst.For, cst.AsName)):
            target = node.target if isinstance(node, cst.For) else node.name
            count += sum(
                type(n) is cst.Name and n.value == name for n in walk(target, into_scopes=False)
            )
    return count


def _statements(node: cst.CSTNode) -> Iterator[cst.SimpleStatementLine]:
    for child in walk(node, into_scopes=False):
        if type(child) is cst.SimpleStatementLine:
            yield child


def _loop_around(body: cst.CSTNode, statement: cst.CSTNode) -> cst.CSTNode | None:
    """The innermost ``for``/``while`` of ``body`` around ``statement``."""
    best = None
    for node in walk(body, into_scopes=False):
        if isinstance(node, (cst.For, cst.While)) and _inside(node, statement):
            best = node  # walk goes outside in: the last one is the innermost
    return best


def _inside(outer: cst.CSTNode, node: cst.CSTNode) -> bool:
    return any(n is node for n in walk(outer, into_scopes=False))


def _trains(loop: cst.CSTNode) -> bool:
    return any(callee_name(c) == "backward" for c in calls_in(loop))


def _distributed() -> cst.Call:
    return cst.parse_expression("torch.distributed.is_initialized()")  # type: ignore[return-value]


def _ifexp(body: cst.BaseExpression, orelse: cst.BaseExpression) -> cst.IfExp:
    """``body if not torch.distributed.is_initialized() else orelse``: the original first."""
    return cst.IfExp(
        test=cst.UnaryOperation(cst.Not(), _distributed()),
        body=body,
        orelse=orelse,
        whitespace_before_if=_SPACE,
        whitespace_after_if=_SPACE,
        whitespace_before_else=_SPACE,
        whitespace_after_else=_SPACE,
    )


def gathered(candidates: cst.Name, parenthesize: bool) -> cst.IfExp:
    """``code if not <pg> else DdpfixAllGather.apply(code)``."""
    gather = cst.parse_expression(f"{GATHER_CLASS}.apply({candidates.value})")
    node = _ifexp(candidates, gather)
    if parenthesize:
        node = node.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return node


def offset(labels: cst.Call, candidates: cst.Name) -> cst.IfExp:
    """``arange(...) if not <pg> else arange(...) + torch.distributed.get_rank() * code.size(0)``:
    this process's candidates are its block of the gathered ones."""
    shift = cst.parse_expression(f"torch.distributed.get_rank() * {candidates.value}.size(0)")
    moved = cst.BinaryOperation(
        labels.deep_clone(),
        cst.Add(whitespace_before=_SPACE, whitespace_after=_SPACE),
        shift,
    )
    return _ifexp(labels, moved)


class Rewrite(cst.CSTTransformer):
    """Applies the rewrite of :func:`find`'s loss to a (possibly already rewritten) function
    body; ``done`` tells whether all three pieces were found again."""

    def __init__(self, loss: InBatchLoss) -> None:
        super().__init__()
        self.loss = loss
        self.hits: set[str] = set()
        self._under_attribute: list[bool] = []

    @property
    def done(self) -> bool:
        return self.hits == {"scores", "candidates", "labels"}

    def visit_Attribute(self, node: cst.Attribute) -> None:
        self._under_attribute.append(node.value is self.loss.candidates)

    def leave_Attribute(
        self, original: cst.Attribute, updated: cst.Attribute
    ) -> cst.BaseExpression:
        self._under_attribute.pop()
        return updated

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        if original is not self.loss.candidates:
            return updated
        self.hits.add("candidates")
        return gathered(updated, bool(self._under_attribute and self._under_attribute[-1]))

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        if original is not self.loss.labels:
            return updated
        self.hits.add("labels")
        return offset(updated, self.loss.candidates)

    def leave_SimpleStatementLine(
        self, original: cst.SimpleStatementLine, updated: cst.SimpleStatementLine
    ) -> cst.SimpleStatementLine:
        if original is not self.loss.scores:
            return updated
        self.hits.add("scores")
        comment = cst.EmptyLine(indent=True, comment=cst.Comment(COMMENT))
        return updated.with_changes(leading_lines=[*updated.leading_lines, comment])
