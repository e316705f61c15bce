"""PRT011 torch-load-weights-only: reloading cached Python objects needs ``weights_only=False``.

torch 2.6 changed ``torch.load``'s default to ``weights_only=True``: only tensors, containers and
primitive values unpickle. Legacy scripts cache Python objects with ``torch.save`` (lists of
``InputFeatures``, ``TensorDataset``\\ s, examples; the HF template's ``load_and_cache_examples``,
CodeT5's ``cache_fn``) and reload them with a bare ``torch.load(path)``, which now raises
``UnpicklingError: Weights only load failed`` on the second run, once the cache exists. Model,
optimizer and scheduler state dicts still load with the new default.

A bare ``torch.load`` (no ``weights_only=``, no ``pickle_module``, no ``**kwargs``) whose file the
same module writes with ``torch.save(obj, path)`` of something other than a state dict gets
``weights_only=False`` (the file is the script's own, so trusting it changes nothing), one-line
calls on their line and multi-line calls with the keyword on its own line. Save and load are
paired by the file name their path expressions end in (``'cached_{}_{}'.format(...)``,
``os.path.join(args.output_dir, 'training_args.bin')``, through assignments in the same
function) or by the very same path variable in one function. A load whose result goes into
``load_state_dict`` is left alone, as is one paired only with state-dict saves. A save of a dict
literal holding anything but state dicts and constants is reported without a fix (it may or may
not unpickle), and so is a bare load of a file no save in the module writes, unless its result
is used as a state dict: that file may be a cache another script built.
"""

from __future__ import annotations

import re

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Tree
from patches._args import has_keyword, keyword_value, positional_values
from patches._syntax import callee_name, dotted_name, string_value

UNPAIRED = (
    "torch >= 2.6 loads weights only by default: if this file holds Python objects (cached "
    "features), pass weights_only=False (only for files you trust)"
)
UNSURE = (
    "torch >= 2.6 loads weights only by default and this file is saved from a dict that may hold "
    "Python objects: pass weights_only=False if it does (only for files you trust)"
)
FIXED = (
    "torch >= 2.6 loads weights only by default and this file holds Python objects saved by "
    "this script: pass weights_only=False"
)

_PLACEHOLDER = re.compile(r"\{[^{}]*\}|%[-\w.]*[sdif]")
_STATE, _OBJECTS, _UNSURE = "state", "objects", "unsure"


def _save_parts(call: cst.Call) -> tuple[cst.BaseExpression, cst.BaseExpression] | None:
    """(object, path) of ``torch.save(obj, f)``; None when either is not spelled out."""
    positional = positional_values(call)
    obj = positional[0] if positional else keyword_value(call, "obj")
    path = positional[1] if len(positional) > 1 else keyword_value(call, "f")
    return None if obj is None or path is None else (obj, path)


def _load_path(call: cst.Call) -> cst.BaseExpression | None:
    positional = positional_values(call)
    return positional[0] if positional else keyword_value(call, "f")


def _bare_load(call: cst.Call) -> bool:
    """A load that takes torch's default: no ``weights_only``, no ``pickle_module`` (which
    turns the default off), no ``*args``/``**kwargs`` that might carry either."""
    if any(a.star for a in call.args) or len(positional_values(call)) > 2:
        return False
    return not has_keyword(call, "weights_only", "pickle_module")


def _assigned(tree: Tree, name: cst.Name) -> list[cst.BaseExpression]:
    """The values ``name`` is assigned in its function (plain ``name = value`` only)."""
    scope = tree.scope(name)
    found = []
    for assign in tree.nodes(cst.Assign):
        if tree.scope(assign) is not scope:
            continue
        for target in assign.targets:
            if type(target.target) is cst.Name and target.target.value == name.value:
                found.append(assign.value)
    return found


def _last_component(text: str) -> str | None:
    """The file name a path literal ends in, if it names one (not ``/``, not just ``{}``)."""
    word = text.rstrip("/").rsplit("/", 1)[-1]
    return word if len(_PLACEHOLDER.sub("", word).strip("._-")) >= 3 else None


def file_words(tree: Tree, node: cst.BaseExpression, depth: int = 0) -> set[str]:
    """The file names (format templates kept) a path expression can end in: the last part of
    ``os.path.join``/``/``/``+``, the template of ``.format``/``%``, a name's assignments."""
    if type(node) is cst.SimpleString:
        text = string_value(node)
        word = _last_component(text) if text else None
        return {word} if word else set()
    if type(node) is cst.FormattedString:
        last = node.parts[-1] if node.parts else None
        if type(last) is cst.FormattedStringText:
            word = _last_component(last.value)
            return {word} if word else set()
        return set()
    if type(node) is cst.ConcatenatedString:
        return file_words(tree, node.right, depth)
    if type(node) is cst.BinaryOperation:
        if type(node.operator) is cst.Modulo:
            return file_words(tree, node.left, depth)
        if isinstance(node.operator, (cst.Add, cst.Divide)):
            return file_words(tree, node.right, depth)
        return set()
    if type(node) is cst.Call:
        name = callee_name(node)
        if name == "format" and type(node.func) is cst.Attribute:
            return file_words(tree, node.func.value, depth)
        positional = positional_values(node)
        if name == "join" and positional and "path" in (dotted_name(node.func) or ""):
            return file_words(tree, positional[-1], depth)
        return set()
    if type(node) is cst.Name and depth < 3:
        words: set[str] = set()
        for value in _assigned(tree, node):
            words |= file_words(tree, value, depth + 1)
        return words
    return set()


def _is_state_dict_call(node: cst.BaseExpression) -> bool:
    return type(node) is cst.Call and callee_name(node) == "state_dict"


def _saved_kind(tree: Tree, obj: cst.BaseExpression, depth: int = 0) -> str:
    """What ``torch.save`` writes: a state dict, Python objects, or a dict we cannot judge."""
    if _is_state_dict_call(obj):
        return _STATE
    if type(obj) is cst.Name and depth < 2:
        values = _assigned(tree, obj)
        if values:
            kinds = {_saved_kind(tree, v, depth + 1) for v in values}
            return _STATE if kinds == {_STATE} else (_OBJECTS if _OBJECTS in kinds else _UNSURE)
        return _OBJECTS
    if type(obj) is cst.Dict:
        plain = (cst.SimpleString, cst.Integer, cst.Float, cst.ConcatenatedString)
        for element in obj.elements:
            if type(element) is not cst.DictElement:
                return _UNSURE
            value = element.value
            if not (_is_state_dict_call(value) or isinstance(value, plain)):
                return _UNSURE
        return _STATE
    return _OBJECTS


def _used_as_state_dict(tree: Tree, call: cst.Call) -> bool:
    """The load's result goes into ``load_state_dict``: directly, or through the name it is
    assigned to (``ckpt = torch.load(p)`` … ``model.load_state_dict(ckpt["model"])``)."""
    parent = tree.parent(call)
    holder = tree.parent(parent) if type(parent) is cst.Arg else None
    if type(holder) is cst.Call and callee_name(holder) == "load_state_dict":
        return True
    if type(parent) is not cst.Assign:
        return False
    names = {t.target.value for t in parent.targets if type(t.target) is cst.Name}
    scope = tree.scope(call)
    for user in tree.nodes(cst.Call):
        if callee_name(user) != "load_state_dict" or tree.scope(user) is not scope:
            continue
        for arg in user.args:
            value = arg.value
            while type(value) is cst.Subscript:
                value = value.value
            if type(value) is cst.Name and value.value in names:
                return True
    return False


def _with_keyword(call: cst.Call) -> cst.Call:
    """``call`` with ``weights_only=False`` last, in the call's own layout."""
    args = list(call.args)
    last = args[-1]
    multiline = type(call.whitespace_before_args) is cst.ParenthesizedWhitespace or any(
        type(a.comma) is cst.Comma and type(a.comma.whitespace_after) is cst.ParenthesizedWhitespace
        for a in args
    )
    separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    if multiline:
        previous = args[-2].comma if len(args) > 1 else None
        if type(previous) is cst.Comma:
            separator = previous
        elif type(call.whitespace_before_args) is cst.ParenthesizedWhitespace:
            separator = cst.Comma(whitespace_after=call.whitespace_before_args)
    equal = next(
        (a.equal for a in args if a.keyword is not None and type(a.equal) is cst.AssignEqual),
        cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
    )
    trailing = last.comma
    if type(trailing) is cst.Comma and not multiline:
        trailing = cst.MaybeSentinel.DEFAULT  # ``f(a, )`` → ``f(a, weights_only=False)``
    new = cst.Arg(
        cst.Name("False"),
        keyword=cst.Name("weights_only"),
        equal=equal,
        comma=trailing,
        whitespace_after_arg=last.whitespace_after_arg,
    )
    args[-1] = last.with_changes(comma=separator, whitespace_after_arg=cst.SimpleWhitespace(""))
    return call.with_changes(args=[*args, new])


class TorchLoadWeightsOnly(Rule):
    code = "PRT011"
    name = "torch-load-weights-only"
    summary = "Pass weights_only=False where a script reloads Python objects it torch.saved."
    rationale = __doc__
    settles = True
    triggers = ("torch.load",)
    examples = (
        Example(
            before="""
                import os
                import torch


                def load_and_cache_examples(args, task):
                    cached_features_file = os.path.join(
                        args.data_dir, 'cached_{}_{}'.format(task, args.max_seq_length))
                    if os.path.exists(cached_features_file):
                        features = torch.load(cached_features_file)
                    else:
                        features = convert_examples_to_features(args, task)
                        torch.save(features, cached_features_file)
                    return features
            """,
            after="""
                import os
                import torch


                def load_and_cache_examples(args, task):
                    cached_features_file = os.path.join(
                        args.data_dir, 'cached_{}_{}'.format(task, args.max_seq_length))
                    if os.path.exists(cached_features_file):
                        features = torch.load(cached_features_file, weights_only=False)
                    else:
                        features = convert_examples_to_features(args, task)
                        torch.save(features, cached_features_file)
                    return features
            """,
            messages=(
                "torch >= 2.6 loads weights only by default and this file holds Python objects "
                "saved by this script: pass weights_only=False",
            ),
        ),
        Example(
            before="""
                import torch
                features = torch.load(args.cache_file)
            """,
            reports=1,
            messages=(
                "torch >= 2.6 loads weights only by default: if this file holds Python objects "
                "(cached features), pass weights_only=False (only for files you trust)",
            ),
        ),
        Example(
            before="""
                import torch
                torch.save(model.state_dict(), 'model.bin')
                model.load_state_dict(torch.load('model.bin'))
                data = torch.load('data.pt', weights_only=False)
            """,
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        saves: list[tuple[cst.Call, str, set[str], str | None]] = []
        loads: list[cst.Call] = []
        for call in tree.nodes(cst.Call):
            dotted = dotted_name(call.func)
            if dotted == "torch.save":
                parts = _save_parts(call)
                if parts is not None:
                    obj, path = parts
                    kind = _saved_kind(tree, obj)
                    saves.append((call, kind, file_words(tree, path), dotted_name(path)))
            elif dotted == "torch.load" and _bare_load(call) and call.args:
                loads.append(call)
        for load in loads:
            if _used_as_state_dict(tree, load):
                continue
            path = _load_path(load)
            if path is None:
                continue
            words, variable = file_words(tree, path), dotted_name(path)
            scope = tree.scope(load)
            kinds = {
                kind
                for save, kind, written, saved_variable in saves
                if (words & written)
                or (
                    variable is not None
                    and variable == saved_variable
                    and tree.scope(save) is scope
                )
            }
            if _OBJECTS in kinds:
                ctx.fix(load, FIXED, {load: _with_keyword(load)})
            elif _UNSURE in kinds:
                ctx.report(load, UNSURE)
            elif not kinds:
                ctx.report(load, UNPAIRED)
