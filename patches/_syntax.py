"""Recognisers for the small vocabulary of legacy training scripts.

Everything here matches structure, never text: ``args.local_rank``, ``self.args.local_rank`` and
``cfg.local_rank`` are all a local rank; ``evaluate(...)``, ``run_eval(...)`` and
``self.evaluate_bleu(...)`` are all an evaluation.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import cast

import libcst as cst

from patcher.tree import Tree, per_file
from patches._args import argument
from patches._names import BINDERS, bound_names, walk

LOCAL_RANK = "local_rank"

# Function names that run an evaluation / a test pass. `eval` alone is excluded: `model.eval()`
# switches a mode and the builtin evaluates strings.
_EVAL_NAME = re.compile(
    r"^(?:do_|run_|_)?(?:evaluate|evaluation|eval_\w+|test|test_\w+|validate|validation|predict)"
    r"(?:_\w+)?$|^\w+_(?:evaluate|evaluation|eval|test|validate|validation)$"
)
#: The flags of the evaluation blocks DDP011 gates or reports (``if args.do_eval:``).
EVAL_FLAGS = ("do_eval", "do_test", "do_predict", "do_infer", "do_inference")
# Function names that persist something: torch.save, np.save, save_pretrained, json.dump ...
_SAVE_NAME = re.compile(r"^(?:save|save_\w+|\w+_save|dump|savez\w*|savetxt|to_csv|to_json)$")
#: ``torch.distributed`` collectives (every rank of the group must call them).
COLLECTIVES = frozenset(
    {
        "all_reduce",
        "all_gather",
        "all_gather_object",
        "all_gather_into_tensor",
        "barrier",
        "monitored_barrier",
        "broadcast",
        "broadcast_object_list",
        "reduce",
        "gather",
        "gather_object",
        "scatter",
        "scatter_object_list",
        "reduce_scatter",
        "all_to_all",
    }
)


def is_local_rank(node: cst.CSTNode, attr: str = LOCAL_RANK) -> bool:
    """``<anything>.local_rank``."""
    return type(node) is cst.Attribute and node.attr.value == attr


def int_literal(node: cst.CSTNode) -> int | None:
    """``3`` or ``-1`` as an int; anything else is None."""
    if type(node) is cst.Integer:
        try:
            return int(node.value.replace("_", ""), 0)
        except ValueError:  # "007"-style literals are not valid Python 3 anyway
            return None
    if (
        type(node) is cst.UnaryOperation
        and type(node.operator) is cst.Minus
        and type(node.expression) is cst.Integer
    ):
        inner = int_literal(node.expression)
        return None if inner is None else -inner
    return None


def int_collection(node: cst.CSTNode) -> frozenset[int] | None:
    """``[-1, 0]``, ``(-1,)``, ``{0}`` as a set of ints; None for anything else."""
    if not isinstance(node, (cst.List, cst.Tuple, cst.Set)):
        return None
    values = []
    for element in node.elements:
        if type(element) is not cst.Element:
            return None
        value = int_literal(element.value)
        if value is None:
            return None
        values.append(value)
    return frozenset(values)


def string_value(node: cst.CSTNode) -> str | None:
    """The text of a plain string literal (``"x"``, ``'x'``, ``r"x"``); None for others."""
    if type(node) is not cst.SimpleString:
        return None
    raw = node.value
    prefix = node.prefix.lower()
    if "\\" not in raw and prefix in ("", "r", "u"):  # the common case, without literal_eval
        quote = node.quote
        return raw[len(prefix) + len(quote) : -len(quote)]
    value = node.evaluated_value
    return value if isinstance(value, str) else None


def callee_name(call: cst.Call) -> str | None:
    """The last name of the called expression: ``torch.save`` → ``save``."""
    func = call.func
    kind = type(func)  # not isinstance: that goes through ABCMeta, and this is asked often
    if kind is cst.Name:
        return func.value  # type: ignore[attr-defined]
    if kind is cst.Attribute:
        return func.attr.value  # type: ignore[attr-defined]
    return None


def dotted_name(node: cst.CSTNode | None) -> str | None:
    """``torch.nn.parallel.DistributedDataParallel`` as a string; None if not a plain path."""
    kind = type(node)  # as in callee_name
    if kind is cst.Name:
        return cast(cst.Name, node).value
    if kind is cst.Attribute:
        attribute = cast(cst.Attribute, node)
        base = dotted_name(attribute.value)
        return None if base is None else f"{base}.{attribute.attr.value}"
    return None


def calls_in(node: cst.CSTNode) -> Iterator[cst.Call]:
    for child in walk(node, into_scopes=False):
        if type(child) is cst.Call:  # concrete: isinstance would go through ABCMeta
            yield child


def is_eval_call(call: cst.Call) -> bool:
    name = callee_name(call)
    return name is not None and bool(_EVAL_NAME.match(name))


def _write_mode(call: cst.Call) -> bool:
    mode = argument(call, 1, "mode")
    text = string_value(mode) if mode is not None else None
    return text is not None and any(flag in text for flag in "wax")


def is_save_call(call: cst.Call) -> bool:
    name = callee_name(call)
    if name is None:
        return False
    if name == "open" or dotted_name(call.func) in ("io.open", "codecs.open"):
        return _write_mode(call)
    return bool(_SAVE_NAME.match(name))


#: Library methods that are collectives although they do not look like one: every rank must
#: call them (receiver pattern → method names). accelerate gathers, reduces and waits; the HF
#: ``Trainer``'s evaluate/predict gather predictions across ranks, and train all-reduces.
LIBRARY_COLLECTIVES: dict[str, frozenset[str]] = {
    "accelerator": frozenset(
        {
            "gather",
            "gather_for_metrics",
            "reduce",
            "wait_for_everyone",
            "pad_across_processes",
            "prepare",  # wraps the model in DDP and shards the loaders
            "prepare_model",
        }
    ),
    "trainer": frozenset({"evaluate", "predict", "train", "evaluation_loop", "prediction_loop"}),
}


#: Constructing these is a collective: DDP broadcasts the module's state from rank 0.
DDP_WRAPPERS = frozenset({"DistributedDataParallel", "DDP"})


def is_collective_call(call: cst.Call) -> bool:
    """A ``torch.distributed`` collective (``dist.barrier()``, ``torch.distributed.
    all_gather_object(...)``), a library one (:data:`LIBRARY_COLLECTIVES`), or wrapping a
    model in ``DistributedDataParallel``."""
    name = callee_name(call)
    if name in DDP_WRAPPERS:
        return True  # wrapping broadcasts rank 0's parameters to every rank
    receiver = dotted_name(call.func.value) if type(call.func) is cst.Attribute else None
    if receiver is None or name is None:
        return False
    if name in COLLECTIVES and ("dist" in receiver or receiver.endswith("accelerator")):
        return True
    last = receiver.rsplit(".", 1)[-1].lower()
    return any(
        pattern in last and name in methods for pattern, methods in LIBRARY_COLLECTIVES.items()
    )


def module_functions(module: cst.Module) -> dict[str, cst.FunctionDef]:
    """Top-level functions by name; a name defined twice is left out (we cannot tell which)."""
    found: dict[str, cst.FunctionDef] = {}
    twice: set[str] = set()
    for statement in module.body:
        if type(statement) is cst.FunctionDef:
            name = statement.name.value
            if name in found:
                twice.add(name)
            found[name] = statement
    return {name: fn for name, fn in found.items() if name not in twice}


_IMPORTS = (cst.Import, cst.ImportFrom)


def _docstring(statement: cst.BaseStatement) -> bool:
    return (
        type(statement) is cst.SimpleStatementLine
        and len(statement.body) == 1
        and isinstance(statement.body[0], cst.Expr)
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))
    )


def last_import(
    module: cst.Module,
    skip: cst.CSTNode | None = None,
    kind: type[cst.BaseSmallStatement] | tuple[type[cst.BaseSmallStatement], ...] = _IMPORTS,
    *,
    before_code: bool = False,
) -> cst.SimpleStatementLine | None:
    """The module's last top-level line holding an import of ``kind``, ``skip`` aside (a line a
    fix removes): where an import a fix adds goes.

    ``before_code=True``: the last such line before the first top-level statement that runs code
    (anything but a line of imports or the docstring: ``if __name__ == "__main__": main()``,
    ``sys.path.append(...)``, a ``try`` around imports), so that a definition a fix adds for the
    module's code exists before any of it can run; None when there is none."""
    last = None
    for index, statement in enumerate(module.body):
        if type(statement) is not cst.SimpleStatementLine:
            if before_code:
                break
            continue
        imports = [isinstance(s, _IMPORTS) for s in statement.body]
        if before_code and not all(imports) and not (index == 0 and _docstring(statement)):
            break
        if statement is not skip and any(isinstance(s, kind) for s in statement.body):
            last = statement
    return last


def module_binds(
    tree: Tree, name: str, besides: cst.CSTNode | None = None, *, imports_only: bool = False
) -> bool:
    """Whether the module's top level binds ``name`` (a def, a class, an import, an
    assignment...), outside ``besides``; ``imports_only``: by an import (``import numpy as
    np``, ``import torch.nn`` binds ``torch``)."""
    for node in walk(tree.module, into_scopes=False):
        if besides is not None and tree.contains(besides, node):
            continue
        if type(node) is cst.ImportAlias and node.asname is None:
            if (dotted_name(node.name) or "").split(".")[0] == name:
                return True
        if imports_only:
            if type(node) is cst.AsName and isinstance(tree.parent(node), cst.ImportAlias):
                if type(node.name) is cst.Name and node.name.value == name:
                    return True
            continue
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)) and node.name.value == name:
            return True
        if isinstance(node, BINDERS) and any(b.value == name for b in bound_names(node)):
            return True
    return False


def method_self(tree: Tree, fn: cst.FunctionDef) -> tuple[cst.ClassDef, str] | None:
    """The class ``fn`` is a method of (defined directly in its body) and the name of its
    instance parameter (the first positional one); None outside a class, for a static or class
    method, or without positional parameters. Other decorators (``@torch.no_grad()``, a
    docstring decorator) keep the instance first."""
    owner = tree.parent(tree.parent(fn))
    if type(owner) is not cst.ClassDef:
        return None
    decorators = {dotted_name(d.decorator) for d in fn.decorators}
    params = [*fn.params.posonly_params, *fn.params.params]
    if decorators & {"staticmethod", "classmethod"} or not params:
        return None
    return owner, params[0].name.value


_DOUBLE = re.compile(r'(?<![\w"\'])"[^"\'\n\\]*"')
_SINGLE = re.compile(r"(?<![\w\"'])'[^\"'\n\\]*'")
#: Short strings of each quote in a paragraph of the file being fixed, by its text (see
#: preferred_quote); emptied with the file's other caches.
_QUOTES: dict[str, tuple[int, int]] = per_file({})


@functools.lru_cache(maxsize=4)  # every rule asks, on the same version's text
def preferred_quote(code: str) -> str:
    """The quote character the file mostly uses for short strings (double when tied).

    Counted per paragraph (the text between blank lines), each counted once along a file's
    versions: a short string never spans a line, and what precedes a line's first character
    (a newline, or nothing) never makes it one, so the counts add up to the whole file's."""
    doubles = singles = 0
    for paragraph in code.split("\n\n"):
        counts = _QUOTES.get(paragraph)
        if counts is None:
            counts = _QUOTES[paragraph] = (
                len(_DOUBLE.findall(paragraph)),
                len(_SINGLE.findall(paragraph)),
            )
        doubles += counts[0]
        singles += counts[1]
    return "'" if singles > doubles else '"'


def is_cuda_check(node: cst.CSTNode) -> bool:
    """``torch.cuda.is_available()`` (any receiver path ending in ``cuda.is_available``)."""
    return (
        type(node) is cst.Call
        and not node.args
        and (dotted_name(node.func) or "").endswith("cuda.is_available")
    )


def mentions_cuda_check(node: cst.CSTNode) -> bool:
    return any(is_cuda_check(n) for n in walk(node, into_scopes=True))


def dominates(tree: Tree, earlier: cst.CSTNode, later: cst.CSTNode) -> bool:
    """Whether ``earlier`` runs whenever ``later`` does: every block it sits in (up to its
    function) also holds ``later``, so it is not in a branch ``later`` is outside of."""
    for block in tree.ancestors(earlier):
        if isinstance(block, (cst.FunctionDef, cst.Module)):
            return True
        if type(block) is cst.IndentedBlock and not tree.contains(block, later):
            return False
    return True


def self_attributes(cls: cst.ClassDef, constructor: str) -> set[str]:
    """Names ``x`` of ``self.x = <...>.constructor(...)`` anywhere in the class."""
    names = set()
    for node in walk(cls, into_scopes=True):
        if type(node) is cst.Assign and type(node.value) is cst.Call:
            if callee_name(node.value) == constructor:
                for target in node.targets:
                    t = target.target
                    if type(t) is cst.Attribute and dotted_name(t.value) == "self":
                        names.add(t.attr.value)
    return names


def global_rank(rank: cst.BaseExpression, quote: str) -> cst.Call:
    """``int(os.environ.get("RANK", <rank>))``, built directly (parsing is the slow part)."""
    space = cst.SimpleWhitespace(" ")
    get = cst.Attribute(cst.Attribute(cst.Name("os"), cst.Name("environ")), cst.Name("get"))
    lookup = cst.Call(
        get,
        [
            cst.Arg(
                cst.SimpleString(f"{quote}RANK{quote}"), comma=cst.Comma(whitespace_after=space)
            ),
            cst.Arg(rank.with_changes(lpar=[], rpar=[])),
        ],
    )
    return cst.Call(cst.Name("int"), [cst.Arg(lookup)])


def unwrapped(name: str, quote: str) -> cst.BaseExpression:
    """``name.module if hasattr(name, "module") else name``."""
    space = cst.SimpleWhitespace(" ")
    check = cst.Call(
        cst.Name("hasattr"),
        [
            cst.Arg(cst.Name(name), comma=cst.Comma(whitespace_after=space)),
            cst.Arg(cst.SimpleString(f"{quote}module{quote}")),
        ],
    )
    return cst.IfExp(
        test=check,
        body=cst.Attribute(cst.Name(name), cst.Name("module")),
        orelse=cst.Name(name),
        whitespace_before_if=space,
        whitespace_after_if=space,
        whitespace_before_else=space,
        whitespace_after_else=space,
    )


def global_rank_zero(args: cst.BaseExpression, quote: str) -> cst.Comparison:
    """``int(os.environ.get("RANK", args.local_rank)) in [-1, 0]``."""
    local_rank = cst.Attribute(args, cst.Name("local_rank"))
    minus_one = cst.Element(
        cst.UnaryOperation(cst.Minus(), cst.Integer("1")),
        comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")),
    )
    return cst.Comparison(
        global_rank(local_rank, quote),
        [cst.ComparisonTarget(cst.In(), cst.List([minus_one, cst.Element(cst.Integer("0"))]))],
    )


def one_line(tree: Tree, node: cst.CSTNode, limit: int | None = None) -> str:
    """``node``'s code on one line (white space folded), cut to ``limit`` characters with
    ``...``: how a message quotes the script."""
    text = " ".join(tree.module.code_for_node(node).split())
    if limit is None or len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


def import_map(tree: Tree) -> dict[str, tuple[str, str | None]]:
    """Local name → (module, imported name); the name is None when the local name is a module
    (``import configs``, ``import utils.configs as cfg``)."""
    found: dict[str, tuple[str, str | None]] = {}
    for node in tree.nodes(cst.Import):
        for alias in node.names:
            module = dotted_name(alias.name) or ""
            if alias.asname is not None and type(alias.asname.name) is cst.Name:
                found[alias.asname.name.value] = (module, None)
            else:
                head = module.split(".")[0]
                found[head] = (head, None)
    for node in tree.nodes(cst.ImportFrom):
        if isinstance(node.names, cst.ImportStar):
            continue
        module = dotted_name(node.module) if node.module is not None else None
        package = "." * len(node.relative) + (module or "")
        for alias in node.names:
            name = dotted_name(alias.name) or ""
            bound = alias.asname.name if alias.asname else alias.name
            if type(bound) is cst.Name:
                found[bound.value] = (package, name)
    return found
