"""A rewritten version's index, put together from the pieces of the statements it kept, is the
index a walk over that version gives.

Each statement's piece of the index (``patcher.tree._Piece``) is kept by identity along a
file's versions (``Tree._known``): a stale piece (one of a statement the version no longer
holds, or of another node at the same address) would give the rules parents, scopes or nodes
of an earlier version. These tests compare every version with a walk over it done here.
"""

from __future__ import annotations

from typing import Any, TypeVar

import libcst as cst

from patcher.tree import Tree, _Piece, children

N = TypeVar("N", bound=cst.CSTNode)

CODE = """\
import torch

def train(args, model):
    for epoch in range(args.epochs):
        loss = model(epoch)
        if args.local_rank in [-1, 0]:
            torch.save(model, "m.bin")
        else:
            print(loss)

    def inner():
        return args.local_rank

    return inner

class Runner:
    def run(self, args):
        with open("x") as f:
            f.write(str(args.local_rank))

if __name__ == "__main__":
    train(None, None)
"""


def _walked(module: cst.Module) -> dict[str, Any]:
    """Source order, parents, functions and nodes by type by one walk, as the index once was."""
    sequence: list[cst.CSTNode] = []
    parent: dict[int, cst.CSTNode] = {}
    scope: dict[int, cst.CSTNode] = {id(module): module}
    stack: list[cst.CSTNode] = [module]
    while stack:
        node = stack.pop()
        sequence.append(node)
        inner = node if type(node) is cst.FunctionDef else scope[id(node)]
        kids = children(node)
        for kid in kids:
            parent[id(kid)] = node
            scope[id(kid)] = inner
        stack.extend(reversed(kids))
    by_type: dict[type, list[int]] = {}
    for node in sequence:
        by_type.setdefault(type(node), []).append(id(node))
    return {
        "sequence": [id(n) for n in sequence],
        "order": {id(n): at for at, n in enumerate(sequence)},
        "parent": {k: id(v) for k, v in parent.items()},
        "scope": {k: id(v) for k, v in scope.items()},
        "by_type": by_type,
    }


def _indexed(tree: Tree) -> dict[str, Any]:
    tree._index()
    return {
        "sequence": [id(n) for n in tree._sequence],
        "order": dict(tree._order),
        "parent": {k: id(v) for k, v in tree._parent.items()},
        "scope": {k: id(v) for k, v in tree._scopes.items()},
        "by_type": {k: [id(n) for n in v] for k, v in tree._by_type.items()},
    }


def _first(tree: Tree, kind: type[N], text: str) -> N:
    return next(n for n in tree.nodes(kind) if text in tree.module.code_for_node(n))


def _function(tree: Tree, name: str) -> cst.FunctionDef:
    return next(n for n in tree.nodes(cst.FunctionDef) if n.name.value == name)


def test_a_version_rewritten_inside_a_function_is_indexed_as_a_walk_says() -> None:
    tree = Tree(cst.parse_module(CODE), CODE)
    assert _indexed(tree) == _walked(tree.module)
    save = _first(tree, cst.SimpleStatementLine, "torch.save")
    gate = cst.parse_statement("if True:\n    pass\n")
    second = tree.rewritten({save: [gate, save]})  # a new compound statement inside a loop
    assert second._known is tree._known  # the statements it kept keep their pieces
    assert _indexed(second) == _walked(second.module)
    ret = _first(second, cst.Return, "args.local_rank")
    third = second.rewritten({ret: cst.Return(cst.Name("args"))})  # inside a nested function
    assert _indexed(third) == _walked(third.module)
    returned = _first(third, cst.Return, "return args")
    assert third.scope(returned) is _function(third, "inner")


def test_a_node_reused_at_two_places_is_where_a_walk_leaves_it() -> None:
    tree = Tree(cst.parse_module(CODE), CODE)
    tree._index()
    name = cst.Name("shared")  # one node, at two places
    save = _first(tree, cst.SimpleStatementLine, "torch.save")  # in an `if` in a loop
    returned = _first(tree, cst.Return, "return inner")  # after the loop, in `train`
    line = cst.SimpleStatementLine([cst.Expr(name)])
    version = tree.rewritten({save: [line, save], returned: cst.Return(name)})
    assert _indexed(version) == _walked(version.module)
    # a walk writes a parent when it visits the parent: the `return`, visited after the loop
    assert type(version.parent(name)) is cst.Return
    write = _first(tree, cst.SimpleStatementLine, "f.write")  # in another function
    version = tree.rewritten({save: [line, save], write: [write, line]})
    assert _indexed(version) == _walked(version.module)
    assert version.scope(name) is _function(version, "run")


def test_a_piece_kept_for_another_node_at_the_same_address_is_not_used() -> None:
    tree = Tree(cst.parse_module(CODE), CODE)
    statement = tree.module.body[1]
    stale = cst.parse_statement("def other():\n    pass\n")
    tree._known[id(statement)] = (stale, _Piece(stale))  # as if the id had been reused
    assert _indexed(tree) == _walked(tree.module)
