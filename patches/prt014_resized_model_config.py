"""PRT014 resized-model-config: after ``resize_token_embeddings``, read the model's own config.

CodeBERT's scripts build a config, load the model with it and grow the vocabulary for their
special tokens::

    config = RobertaConfig.from_pretrained(path)
    model = RobertaModel.from_pretrained(path, config=config)
    model.resize_token_embeddings(len(tokenizer))
    model = Model(model, config, tokenizer, args)   # Model sizes its LM head from config.vocab_size

Up to transformers 4.35 the model kept the very config object it was given, so the resize (which
sets ``model.config.vocab_size``) updated ``config`` too. From 4.36 on (and in 5),
``from_pretrained`` works on a copy (``copy.deepcopy(config)``): ``config.vocab_size`` stays the
old size, and a head sized from it no longer fits the resized embeddings it is tied to
(CodeExecutor: a bias of the old size under a weight of the new one, a shape error in the first
forward). A model built with ``Model(config)`` keeps its config and is not concerned.

The rule rewrites each read of ``config`` after ``model.resize_token_embeddings(...)`` that can
see the size (``config.vocab_size``, ``config`` passed to a call other than logging, a method
call such as ``config.save_pretrained(...)``, any other use of the object itself) to
``model.config``: the object the old versions read there, and the resized one on every version.
Reads of other fields (``config.hidden_size``) are the same either way as long as nothing changes
``config`` after the load, and are left alone. The rewrite is made only when every binding of
``model`` reaching the read is that ``from_pretrained(..., config=config)`` (or ``model =
model.to(device)``-style calls that return the module itself), ``config`` is not rebound after
it, and nothing may change ``config`` between the load and the read (in a loop: anywhere in the
loop): an attribute or item store, ``setattr``/``delattr``, a method call other than a known
read-only one (``config.update(...)``), or ``config`` handed to a call other than logging before
the read, which may change it. Such a change reaches ``config`` but (4.36 and later) not the
model's copy, which on the old versions was ``config`` itself. Otherwise (``model =
nn.DataParallel(model)``, a branch that builds the model another way,
``config.output_hidden_states = True`` after the load) the read is reported; so is a read that
itself may change it (``config.update(...)``, or ``config`` handed to a call such as
``build_head(config)``) when ``config`` is read again later: moved to ``model.config``, the
change would miss that later reader, which on the old versions saw it. ``config`` handed to a
call with no later read (``Model(model, config)``) is the read the rule exists for: the call
gets the object the old versions gave it.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._args import keyword_arg
from patches._bundled import bundled
from patches._names import is_read, reaching, walk
from patches._syntax import callee_name, dotted_name

RESIZE = "resize_token_embeddings"

#: Calls that only print what they are given (the config's vocab_size there does not size
#: anything).
_LOGGING = frozenset({"print", "info", "debug", "warning", "warn", "error", "critical", "log"})


#: ``nn.Module`` methods that return the module itself: ``model = model.to(device)`` keeps it.
_SAME_MODULE = frozenset(
    {"to", "cuda", "cpu", "float", "half", "double", "bfloat16", "train", "eval"}
)


#: ``PretrainedConfig`` methods that do not change it; any other method call may.
_READ_ONLY = frozenset(
    {"to_dict", "to_diff_dict", "to_json_string", "to_json_file", "save_pretrained", "get"}
)

#: Statements whose target a mention stores into: ``config.x = ...``, ``config.x += ...``.
_STORES = (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.Del)


def _stored(tree: Tree, node: cst.CSTNode) -> bool:
    """Whether ``node`` (an attribute or subscript) is the target of a store or ``del``,
    directly or as part of an unpacking target."""
    child, parent = node, tree.parent(node)
    while isinstance(parent, (cst.Tuple, cst.List, cst.Element, cst.StarredElement)):
        child, parent = parent, tree.parent(parent)
    return isinstance(parent, _STORES) and parent.target is child


def _may_change(tree: Tree, mention: cst.Name) -> bool:
    """Whether this mention of the config may change the object (see the module docstring)."""
    parent = tree.parent(mention)
    if isinstance(parent, (cst.Attribute, cst.Subscript)) and parent.value is mention:
        if _stored(tree, parent):
            return True
        holder = tree.parent(parent)
        return (
            type(parent) is cst.Attribute
            and type(holder) is cst.Call
            and holder.func is parent
            and parent.attr.value not in _READ_ONLY
        )
    if type(parent) is cst.Arg and parent.value is mention:
        call = tree.parent(parent)
        if type(call) is not cst.Call:
            return True
        name = callee_name(call)
        if name in ("setattr", "delattr"):
            return True
        keyword = parent.keyword.value if parent.keyword is not None else None
        return not (name == "from_pretrained" and keyword == "config") and name not in _LOGGING
    return False


def _changed_around(
    tree: Tree, fn: cst.FunctionDef, config: str, first: int, read: cst.Name
) -> bool:
    """Whether something may change ``config`` after the load at order ``first`` and before
    ``read`` (in a loop around the read: anywhere in that loop after the load), or ``read``
    itself may change it (``config.update(...)``, ``build_head(config)``) and ``config`` is read
    again after it: moved to ``model.config``, the change would miss that later reader, which
    on the old versions saw it (``config`` was ``model.config`` there)."""
    loops = [
        a
        for a in tree.ancestors(read)
        if isinstance(a, (cst.For, cst.While)) and tree.contains(fn, a)
    ]
    changes = _may_change(tree, read)
    for mention in walk(fn.body, into_scopes=False):
        if (
            type(mention) is not cst.Name
            or mention.value != config
            or mention is read
            or tree.order(mention) <= first
            or not is_read(tree, mention)
        ):
            continue
        before = tree.order(mention) < tree.order(read)
        looped = any(tree.contains(loop, mention) for loop in loops)
        if (before or looped) and _may_change(tree, mention):
            return True
        if changes and (looped or not before):
            return True
    return False


def _loaded_with(assign: cst.Assign) -> str | None:
    """``C`` when ``assign`` is ``M = <...>.from_pretrained(..., config=C)``; else None."""
    value = assign.value
    if not (type(value) is cst.Call and callee_name(value) == "from_pretrained"):
        return None
    config = keyword_arg(value, "config")
    return config.value.value if config and type(config.value) is cst.Name else None


def _loads(
    tree: Tree, fn: cst.FunctionDef, model: str, at: cst.CSTNode, seen: frozenset[int] = frozenset()
) -> list[cst.Assign] | None:
    """The ``model = ....from_pretrained(...)`` assignments whose model ``model`` may hold at
    ``at``, through ``model = model.to(...)``-style rebindings; None when it may hold anything
    else."""
    found: list[cst.Assign] = []
    for binding in reaching(tree, fn, model, at):
        if id(binding) in seen:
            continue
        assign = tree.parent(binding)
        if not (
            type(binding) is cst.AssignTarget
            and type(binding.target) is cst.Name
            and type(assign) is cst.Assign
            and type(assign.value) is cst.Call
        ):
            return None
        value = assign.value
        if callee_name(value) == "from_pretrained":
            found.append(assign)
            continue
        if not (
            type(value.func) is cst.Attribute
            and value.func.attr.value in _SAME_MODULE
            and dotted_name(value.func.value) == model
        ):
            return None
        earlier = _loads(tree, fn, model, value, seen | {id(binding)})
        if earlier is None:
            return None
        found += earlier
    return found


def _sees_the_size(tree: Tree, read: cst.Name) -> bool:
    """Whether this read of the config can see its vocab_size (see the module docstring)."""
    parent = tree.parent(read)
    if type(parent) is cst.Attribute and parent.value is read:
        if parent.attr.value == "vocab_size":
            return True
        holder = tree.parent(parent)
        return type(holder) is cst.Call and holder.func is parent
    if type(parent) is cst.Arg and parent.value is read:
        call = tree.parent(parent)
        return not (type(call) is cst.Call and callee_name(call) in _LOGGING)
    return True


def _uncertain(
    tree: Tree, fn: cst.FunctionDef, model: str, config: str, read: cst.Name
) -> str | None:
    """None when ``model`` at ``read`` is the model loaded with ``config``, and ``config`` still
    the object it was loaded with, unchanged; else why the read is reported."""
    loads = _loads(tree, fn, model, read)
    if not loads or any(_loaded_with(assign) != config for assign in loads):
        return "pair"
    first = min(tree.order(assign) for assign in loads)
    if any(tree.order(b) >= first for b in reaching(tree, fn, config, read)):
        return "pair"
    if _changed_around(tree, fn, config, first, read):
        return "changed"
    return None


class ResizedModelConfig(Rule):
    code = "PRT014"
    name = "resized-model-config"
    summary = (
        "After model.resize_token_embeddings, read model.config: from_pretrained copies the "
        "config it is given (transformers 4.36+)."
    )
    rationale = __doc__
    settles = True
    triggers = (RESIZE,)
    examples = (
        Example(
            before="""
                def main(args, tokenizer):
                    config = RobertaConfig.from_pretrained(args.model)
                    model = RobertaModel.from_pretrained(args.model, config=config)
                    model.resize_token_embeddings(len(tokenizer))
                    head = nn.Linear(config.hidden_size, config.vocab_size)
                    return Model(model, config, head)
            """,
            after="""
                def main(args, tokenizer):
                    config = RobertaConfig.from_pretrained(args.model)
                    model = RobertaModel.from_pretrained(args.model, config=config)
                    model.resize_token_embeddings(len(tokenizer))
                    head = nn.Linear(config.hidden_size, model.config.vocab_size)
                    return Model(model, model.config, head)
            """,
            messages=(
                "model.resize_token_embeddings set model.config.vocab_size, not config's: "
                "from_pretrained copies the config it is given (transformers 4.36 and later); "
                "read model.config",
            )
            * 2,
        ),
        Example(
            before="""
                def main(args, tokenizer):
                    config = RobertaConfig.from_pretrained(args.model)
                    model = RobertaModel.from_pretrained(args.model, config=config)
                    model.resize_token_embeddings(len(tokenizer))
                    model = Model(model, args)
                    head = nn.Linear(config.hidden_size, config.vocab_size)
            """,
            reports=1,
            messages=(
                "config.vocab_size is read after model.resize_token_embeddings, but "
                "from_pretrained copied config (transformers 4.36 and later): "
                "config.vocab_size is the old size; read the resized model's config",
            ),
        ),
        Example(
            before="""
                def main(args, tokenizer):
                    config = RobertaConfig.from_pretrained(args.model)
                    model = RobertaModel(config)
                    model.resize_token_embeddings(len(tokenizer))
                    return Model(model, config)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        if bundled(ctx.path, "transformers"):
            return  # the script imports the copy its project ships, not today's transformers
        tree = ctx.tree
        done: set[int] = set()
        for call in tree.nodes(cst.Call):
            if callee_name(call) != RESIZE or type(call.func) is not cst.Attribute:
                continue
            model = dotted_name(call.func.value)
            fn = tree.scope(call)
            if model is None or "." in model or type(fn) is not cst.FunctionDef:
                continue
            loads = _loads(tree, fn, model, call) or []
            loads += [
                a
                for b in reaching(tree, fn, model, call)
                if isinstance(a := tree.parent(b), cst.Assign)
            ]
            configs = {_loaded_with(assign) for assign in loads}
            for config in sorted(c for c in configs if c is not None):
                for read in walk(fn.body, into_scopes=False):
                    if (
                        type(read) is not cst.Name
                        or read.value != config
                        or id(read) in done
                        or not tree.after(read, call)
                        or not is_read(tree, read)
                        or not _sees_the_size(tree, read)
                    ):
                        continue
                    done.add(id(read))
                    self._one(ctx, fn, model, config, read)

    def _one(
        self,
        ctx: RuleContext,
        fn: cst.FunctionDef,
        model: str,
        config: str,
        read: cst.Name,
    ) -> None:
        tree = ctx.tree
        why = _uncertain(tree, fn, model, config, read)
        if why is None:
            ctx.fix(
                read,
                f"{model}.{RESIZE} set {model}.config.vocab_size, not {config}'s: "
                "from_pretrained copies the config it is given (transformers 4.36 and later); "
                f"read {model}.config",
                {
                    read: cst.parse_expression(f"{model}.config").with_changes(
                        lpar=read.lpar, rpar=read.rpar
                    )
                },
            )
            return
        if why == "changed":
            ctx.report(
                read,
                f"{config} is read after {model}.{RESIZE}, but from_pretrained copied {config} "
                f"(transformers 4.36 and later) and {config} may be changed after the load: "
                f"{config}.vocab_size is the old size, and {model}.config misses the change; "
                "apply the change to the resized model's config and read that",
            )
            return
        parent = tree.parent(read)
        vocab = type(parent) is cst.Attribute and parent.attr.value == "vocab_size"
        shown = f"{config}.vocab_size" if vocab else config
        ctx.report(
            read,
            f"{shown} is read after {model}.{RESIZE}, but from_pretrained copied {config} "
            f"(transformers 4.36 and later): {config}.vocab_size is the old size; read the "
            "resized model's config",
        )
