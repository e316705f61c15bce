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

from patcher.tree import Tree, _Piece, children, walk

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


def _walked_in_frame(node: cst.CSTNode) -> list[int]:
    """``walk(node, into_scopes=False)`` by a walk done here: nested scopes kept, not entered."""
    found: list[int] = []
    stack = [node]
    while stack:
        current = stack.pop()
        found.append(id(current))
        if current is not node and type(current) in (cst.FunctionDef, cst.ClassDef, cst.Lambda):
            continue
        stack.extend(reversed(children(current)))
    return found


def _stepped(tree: Tree, node: cst.CSTNode) -> list[int]:
    """``walk(node, into_scopes=False)`` by looking at every node of the version's source
    order from ``node`` on, jumping over each scope's subtree (as ``Tree._run`` once did)."""
    start = tree.order(node)
    end = tree._end(node)
    found, at = [id(node)], start + 1
    while at < end:
        current = tree._sequence[at]
        found.append(id(current))
        kind = type(current)
        at = tree._end(current) if kind in (cst.FunctionDef, cst.ClassDef, cst.Lambda) else at + 1
    return found


def test_a_walk_in_one_frame_skips_the_scopes_a_version_holds() -> None:
    tree = Tree(cst.parse_module(CODE), CODE)
    save = _first(tree, cst.SimpleStatementLine, "torch.save")
    write = _first(tree, cst.SimpleStatementLine, "f.write")
    lam = cst.parse_statement("hook = lambda: (lambda: 1)\n")
    added = tree.rewritten({save: [lam, save]})
    reused = tree.rewritten({save: [lam, save], write: [write, lam]})  # one lambda, twice
    for version in (tree, added):
        for node in version.nodes(cst.CSTNode):  # type: ignore[type-abstract]
            walked = [id(n) for n in walk(node, into_scopes=False)]
            assert walked == _walked_in_frame(node), type(node).__name__
    # a scope reused at two places has one end (its last place's): as before, not as a walk
    for node in reused.nodes(cst.CSTNode):  # type: ignore[type-abstract]
        assert [id(n) for n in walk(node, into_scopes=False)] == _stepped(reused, node)
