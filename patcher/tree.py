"""One version of a module, indexed once and shared by every rule.

LibCST's own visitors and metadata providers cost a full Python-level traversal each (tens of
milliseconds on a 600-line script); six rules each walking, resolving positions and rewriting
would be many times the parse itself. Instead the engine walks the tree once (through the
dataclass fields, in source order), keeps parents and nodes by type, and answers the questions
rules ask from that. Lines come from Python's ``ast`` (statements correspond one to one), and
rewriting touches only the paths that lead to replaced nodes.
"""

from __future__ import annotations

import ast
import bisect
import dataclasses
import sys
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, Union, overload

import libcst as cst

from patcher.render import Texts, input_texts, render

N = TypeVar("N", bound=cst.CSTNode)
T = TypeVar("T")
D = TypeVar("D", bound=dict)
N2 = TypeVar("N2", bound=cst.CSTNode)
N3 = TypeVar("N3", bound=cst.CSTNode)

# ``try``/``except*`` (Python 3.11) has the same blocks as ``try``.
if sys.version_info >= (3, 11):
    _AST_TRY: tuple[type[ast.Try | ast.TryStar], ...] = (ast.Try, ast.TryStar)
else:
    _AST_TRY = (ast.Try,)


@dataclass(frozen=True)
class Around:
    """Keep a statement (with whatever other fixes did inside it) and add statements around it.

    With ``lead``, the first statement added before it takes over its leading comments and blank
    lines, so an import added above a block's first import stays inside that block.
    """

    before: tuple[cst.BaseStatement, ...] = ()
    after: tuple[cst.BaseStatement, ...] = ()
    lead: bool = True
    separate: bool = False  # a blank line between what is added before and the statement

    def merged(self, other: Around) -> Around:
        return Around(
            self.before + other.before,
            other.after + self.after,
            self.lead,
            self.separate or other.separate,
        )


#: What a node can be replaced by: a node; for a statement, several statements or none, or the
#: same statement with others around it.
Replacement = Union[cst.CSTNode, Sequence[cst.BaseStatement], Around]

_FIELDS: dict[type, tuple[str, ...]] = {}
#: What opens a new scope: its body runs in a frame of its own (or at class creation).
SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
# Layout-only fields (whitespace, comments, punctuation): no rule asks about them, and skipping
# them halves the nodes to index.
_LAYOUT = ("whitespace", "lpar", "rpar", "comma", "semicolon", "colon", "lines", "newline")
_LAYOUT_NAMES = frozenset({"header", "footer", "dot", "equal", "relative", "indent"})


def _is_layout(name: str) -> bool:
    return name in _LAYOUT_NAMES or any(part in name for part in _LAYOUT)


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(
            f.name
            for f in dataclasses.fields(cls)
            if not _is_layout(f.name) and f.type not in (str, bool, int, "str", "bool", "int")
        )
        # Decorators come first in the source, but after the body in the dataclass.
        if "decorators" in names:
            names = ("decorators", *(n for n in names if n != "decorators"))
        _FIELDS[cls] = names
    return names


_NODE, _SEQUENCE, _OTHER = 1, 2, 3
_KINDS: dict[type, int] = {}


def _kind(cls: type) -> int:
    """Node, sequence or other, per value type: ``isinstance`` on LibCST's abstract base
    classes goes through ``ABCMeta`` and was a third of the indexing time."""
    kind = _KINDS.get(cls)
    if kind is None:
        if issubclass(cls, cst.CSTNode):
            kind = _NODE
        elif issubclass(cls, (list, tuple)):
            kind = _SEQUENCE
        else:
            kind = _OTHER
        _KINDS[cls] = kind
    return kind


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """Direct children in source order, without layout nodes; much cheaper than
    ``CSTNode.children``."""
    out: list[cst.CSTNode] = []
    kinds = _KINDS
    for name in _field_names(type(node)):
        value = getattr(node, name)
        kind = kinds.get(type(value)) or _kind(type(value))
        if kind == _NODE:
            out.append(value)
        elif kind == _SEQUENCE:
            for v in value:  # a loop, not extend(generator): a fifth of the time
                if (kinds.get(type(v)) or _kind(type(v))) == _NODE:
                    out.append(v)
    return out


_WALKS: dict[tuple[int, bool], tuple[cst.CSTNode, list[cst.CSTNode]]] = {}
_WALKS_KEPT = 50_000
_SCOPE_TYPES = frozenset(SCOPES)


def walk(node: cst.CSTNode, *, into_scopes: bool = True) -> Iterator[cst.CSTNode]:
    """``node`` and its descendants in source order; ``into_scopes=False`` does not enter
    nested functions, classes and lambdas (their bodies run elsewhere).

    Rules walk the same subtrees again and again (a gate's body for calls, then for names);
    nodes are immutable, so a walk is kept, keyed by identity and holding the node so the key
    cannot be reused, until many are kept."""
    key = (id(node), into_scopes)
    kept = _WALKS.get(key)
    if kept is not None and kept[0] is node:
        return iter(kept[1])
    found: list[cst.CSTNode] = []
    scopes = _SCOPE_TYPES
    for tree in _INDEXED:  # a node of an indexed version: its subtree is a run of the index
        start = tree._order.get(id(node))
        if start is not None and tree._sequence[start] is node:
            found = tree._run(node, start, into_scopes)
            break
    stack = [] if found else [node]
    while stack:
        current = stack.pop()
        found.append(current)
        if not into_scopes and current is not node and type(current) in scopes:
            continue
        kids = children(current)
        kids.reverse()
        stack.extend(kids)
    if len(_WALKS) >= _WALKS_KEPT:
        _WALKS.clear()
    _WALKS[key] = (node, found)
    return iter(found)


#: The versions indexed last (:meth:`Tree._index`), newest first: :func:`walk` slices their
#: source order instead of walking a subtree of theirs again.
_INDEXED: list[Tree] = []
_INDEXED_KEPT = 4


#: Caches of answers about one file's nodes (the shared analysis registers its own with
#: :func:`per_file`); :func:`forget` empties them with the walks.
_PER_FILE: list[dict[Any, Any]] = []


def per_file(cache: D) -> D:
    """Register a cache of per-node answers to be emptied once a file is fixed."""
    _PER_FILE.append(cache)
    return cache


#: The versions that keep shared analyses (:meth:`Tree.memo`): an analysis refers to its tree,
#: so the two form a cycle that only the garbage collector would free, a walk over every node.
_MEMOISED: list[Tree] = []


def forget() -> None:
    """Drop the walks, indexed versions, shared analyses and per-node answers kept for the file
    just fixed: nothing of it is asked again, and a process that goes on (a batch of files)
    should not carry its trees. With the analyses' cycles broken, the versions are freed as soon
    as nothing refers to them, instead of costing a garbage collection a walk over them."""
    _WALKS.clear()
    _INDEXED.clear()
    for tree in _MEMOISED:
        tree._memo.clear()
    _MEMOISED.clear()
    for cache in _PER_FILE:
        cache.clear()


#: Compound statements: a top-level statement's index is cut into pieces at these, so a
#: rewrite inside one function walks again only the statements on the path to what changed.
_COMPOUND = frozenset(
    kind
    for kind in vars(cst).values()
    if isinstance(kind, type)
    and issubclass(kind, cst.BaseCompoundStatement)
    and not getattr(kind, "__abstractmethods__", None)
)


class _Piece:
    """The index of one statement without the compound statements inside it (each is a piece
    of its own). ``runs`` are its nodes in source order, cut at those statements: ``runs[i]``
    comes before ``inner[i]``. With each run, what a walk writes while visiting its nodes, in
    the same order: the parents of their children (``parents[i]``) and which children the
    same function runs (``scoped[i]``): this statement if it is a function, else the one
    running it. Put together in source order, the pieces of a version write what one walk over
    it would, in the same order (a node a rule reused at two places ends at the last place the
    walk puts it). Nodes are immutable, so a statement a rewrite kept keeps its piece."""

    __slots__ = ("function", "inner", "parents", "runs", "scoped")

    def __init__(self, statement: cst.CSTNode) -> None:
        run: list[cst.CSTNode] = []
        parents: dict[int, cst.CSTNode] = {}
        scoped: list[int] = []
        self.runs = [run]
        self.parents = [parents]
        self.scoped = [scoped]
        self.inner: list[cst.CSTNode] = []
        self.function = statement if type(statement) is cst.FunctionDef else None
        stack: list[cst.CSTNode] = [statement]
        compound = _COMPOUND
        while stack:
            node = stack.pop()
            if type(node) in compound and node is not statement:
                self.inner.append(node)
                run, parents, scoped = [], {}, []
                self.runs.append(run)
                self.parents.append(parents)
                self.scoped.append(scoped)
                continue
            run.append(node)
            kids = children(node)
            for kid in kids:
                parents[id(kid)] = node
                scoped.append(id(kid))
            kids.reverse()
            stack.extend(kids)


class Tree:
    """Parents, source order and nodes by type for one module version."""

    def __init__(self, module: cst.Module, code: str, syntax: ast.Module | None = None) -> None:
        self.module = module
        self.code = code
        self._syntax = syntax
        self._parent: dict[int, cst.CSTNode] = {}
        self._order: dict[int, int] = {}
        self._sequence: list[cst.CSTNode] = []  # the nodes in source order (_order's inverse)
        self._ends: dict[int, int] = {}  # see _end
        self._marks: list[int] | None = None  # see _scope_marks
        self._by_type: dict[type, list[cst.CSTNode]] = {}
        self._lines: dict[int, tuple[int, int]] | None = None
        self._indexed = False
        self._queries: dict[tuple[type, ...], list[cst.CSTNode]] = {}
        self._scopes: dict[int, cst.FunctionDef | cst.Module] = {}
        # each statement's piece of the index, by identity (with the statement), shared along
        # the versions of one file (:meth:`rewritten`)
        self._known: dict[int, tuple[cst.CSTNode, _Piece]] = {}
        self._memo: dict[Hashable, Any] = {}
        # Along one file's versions (:meth:`rewritten`), top-level statements are shared, so
        # their text and their statements' lines relative to it are kept by identity (with the
        # node, so an id cannot be reused): a version renders and parses what changed only.
        self._pieces: list[str] | None = None  # the text of each of module.body, if split
        self._head_lines = 0
        self._offsets: dict[int, tuple[int, str]] | None = None  # top statement → line, text
        self._rendered: Texts = {}  # statements' texts, shared along the versions
        self._seeded = False
        self._parsed: dict[int, tuple[cst.CSTNode, dict[int, tuple[int, int]] | None]] = {}
        if syntax is not None:  # the whole module parsed: each of its statements does
            self._parsed = {id(s): (s, None) for s in module.body}

    def _index(self) -> None:
        """Index the tree; done on the first question, not on construction. Each statement is
        walked once along the file's versions (:class:`_Piece`, shared by the versions that
        keep it), and a version's index is put together from the pieces of its statements,
        which costs a fraction of a walk: a rewrite changes a few statements of a script."""
        if self._indexed:
            return
        self._indexed = True
        module = self.module
        sequence = self._sequence
        sequence.append(module)
        self._scopes[id(module)] = module
        statements = children(module)
        self._parent.update(dict.fromkeys(map(id, statements), module))
        self._scopes.update(dict.fromkeys(map(id, statements), module))
        for statement in statements:
            self._add(statement, module)
        # a node a rule reused at two places is at the last, as a walk would put it
        self._order = dict(zip(map(id, sequence), range(len(sequence))))
        by_type = self._by_type
        for node in sequence:
            kind = type(node)
            if kind in by_type:
                by_type[kind].append(node)
            else:
                by_type[kind] = [node]
        _INDEXED.insert(0, self)
        del _INDEXED[_INDEXED_KEPT:]

    def _add(self, statement: cst.CSTNode, scope: cst.FunctionDef | cst.Module) -> None:
        """Add ``statement``'s nodes to the index, in source order; ``scope`` runs it."""
        kept = self._known.get(id(statement))
        if kept is None or kept[0] is not statement:
            kept = self._known[id(statement)] = (statement, _Piece(statement))
        piece = kept[1]
        inside = piece.function or scope
        parent, scopes, sequence = self._parent, self._scopes, self._sequence
        inner = piece.inner
        for at, run in enumerate(piece.runs):
            if at:
                self._add(inner[at - 1], inside)
            sequence.extend(run)
            parent.update(piece.parents[at])
            scopes.update(dict.fromkeys(piece.scoped[at], inside))

    def _run(self, node: cst.CSTNode, start: int, into_scopes: bool) -> list[cst.CSTNode]:
        """:func:`walk` of ``node``, which this version holds at ``start`` of its order."""
        sequence = self._sequence
        end = self._ends.get(id(node)) or self._end(node)
        if into_scopes:
            return sequence[start:end]
        marks = self._marks if self._marks is not None else self._scope_marks()
        found = sequence[start : start + 1]
        at = start + 1
        ends = self._ends
        index = bisect.bisect_right(marks, start)
        while index < len(marks) and marks[index] < end:
            place = marks[index]
            if place >= at:  # a scope: kept, but not entered
                found.extend(sequence[at : place + 1])
                scope = sequence[place]
                at = ends.get(id(scope)) or self._end(scope)
            index += 1
        found.extend(sequence[at:end])
        return found

    def _scope_marks(self) -> list[int]:
        """Where the functions, classes and lambdas are in the source order, ascending."""
        orders = self._order
        marks = sorted(orders[id(n)] for kind in _SCOPE_TYPES for n in self._by_type.get(kind, ()))
        if len(set(marks)) != len(marks):  # one reused at two places: look at every node
            marks = [at for at, n in enumerate(self._sequence) if type(n) in _SCOPE_TYPES]
        self._marks = marks
        return marks

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """An analysis of this version that several rules share, computed once (``key`` names
        it); a version is immutable, so the answer stays true."""
        memo = self._memo
        if key in memo:
            return memo[key]
        if not memo:
            _MEMOISED.append(self)
        value = memo[key] = compute()
        return value

    # --- structure -------------------------------------------------------------------------

    # one overload per count of types, so that a query for several types answers their union
    @overload
    def nodes(self, first: type[N], /) -> list[N]: ...
    @overload
    def nodes(self, first: type[N], second: type[N2], /) -> list[N | N2]: ...
    @overload
    def nodes(self, first: type[N], second: type[N2], third: type[N3], /) -> list[N | N2 | N3]: ...
    @overload
    def nodes(self, *types: type[cst.CSTNode]) -> list[cst.CSTNode]: ...
    def nodes(self, *types: type[cst.CSTNode]) -> list[Any]:
        """Every node of the given types, in source order (answers are kept)."""
        self._index()
        if types in self._queries:
            return self._queries[types]
        found: list[cst.CSTNode] = []
        for kind, nodes in self._by_type.items():
            if issubclass(kind, types):
                found.extend(nodes)
        if len(types) > 1 or len(found) != len(self._by_type.get(types[0], ())):
            found.sort(key=self.order)
        self._queries[types] = found
        return found

    def parent(self, node: cst.CSTNode | None) -> cst.CSTNode | None:
        """The node's parent; None for the module (and for None: a grandparent may be asked)."""
        if not self._indexed:
            self._index()
        return self._parent.get(id(node))

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        if not self._indexed:
            self._index()
        parents = self._parent
        current = parents.get(id(node))
        while current is not None:
            yield current
            current = parents.get(id(current))

    def order(self, node: cst.CSTNode) -> int:
        """Position of ``node`` in a source-order walk."""
        if not self._indexed:
            self._index()
        return self._order[id(node)]

    def after(self, node: cst.CSTNode, other: cst.CSTNode) -> bool:
        """Whether ``node`` starts after all of ``other`` (``other`` has fully happened)."""
        if not self._indexed:
            self._index()
        return self._order[id(node)] > self._order[id(other)] and not self.contains(other, node)

    def contains(self, outer: cst.CSTNode, inner: cst.CSTNode) -> bool:
        """Whether ``inner`` is ``outer`` or below it: a subtree is one run of the source
        order, from the node to :meth:`_end`."""
        if outer is inner:
            return True
        if not self._indexed:
            self._index()
        start = self._order[id(outer)]
        place = self._order[id(inner)]
        if place < start:
            return False
        end = self._ends.get(id(outer))
        if end is None:
            end = self._end(outer)
        return place < end

    def _end(self, node: cst.CSTNode) -> int:
        """The order of the first node after ``node``'s subtree: its next sibling's, else
        its parent's end (kept per node asked)."""
        parent = self._parent.get(id(node))
        if parent is None:
            end = len(self._sequence)
        else:
            kids = children(parent)
            at = next(i for i, kid in enumerate(kids) if kid is node)
            if at + 1 < len(kids):
                end = self._order[id(kids[at + 1])]
            else:
                end = self._ends.get(id(parent)) or self._end(parent)
        self._ends[id(node)] = end
        return end

    def scope(self, node: cst.CSTNode) -> cst.FunctionDef | cst.Module:
        """The function whose frame runs ``node`` (the module for top-level code)."""
        if not self._indexed:
            self._index()
        found = self._scopes.get(id(node))
        if found is None:  # not in this version: as its parent's, like a node of the tree
            parent = self.parent(node)
            if parent is None:
                found = self.module
            elif type(parent) is cst.FunctionDef:
                found = parent
            else:
                found = self.scope(parent)
        return found

    def statement(self, node: cst.CSTNode) -> cst.CSTNode:
        """The innermost statement containing ``node`` (itself if it is one)."""
        for candidate in (node, *self.ancestors(node)):
            if isinstance(candidate, (cst.BaseSmallStatement, cst.BaseStatement)):
                return candidate
        return node

    # --- positions -------------------------------------------------------------------------

    def position(self, node: cst.CSTNode) -> tuple[int, int]:
        """(line, column), both 1-based, of the statement that contains ``node``."""
        statement = self.statement(node)
        if self._pieces is not None:
            found = self._piece_position(statement)
        else:
            if self._lines is None:
                self._lines = _statement_lines(self.module, self.syntax)
            found = self._lines.get(id(statement))
        if found is None:  # the ast did not line up (should not happen); be exact instead
            from libcst.metadata import MetadataWrapper, PositionProvider

            wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
            start = wrapper.resolve(PositionProvider)[statement].start
            return start.line, start.column + 1
        return found

    @property
    def syntax(self) -> ast.Module:
        """Python's own parse of this version (raises SyntaxError if it is not valid)."""
        if self._syntax is None:
            self._syntax = ast.parse(self.code)
        return self._syntax

    def check_syntax(self) -> None:
        """Raise SyntaxError unless Python parses this version. Top-level statements parse one
        by one, so only those no earlier version of the file had are parsed again."""
        if self._pieces is None:
            self.syntax  # noqa: B018
            return
        try:
            for statement, text in zip(self.module.body, self._pieces):
                kept = self._parsed.get(id(statement))
                if kept is None or kept[0] is not statement:  # the input's parsed as a whole
                    self._relative_lines(statement, text)
        except SyntaxError:
            self.syntax  # noqa: B018 - the error as the whole file gives it (its line)
            raise

    def _relative_lines(self, statement: cst.CSTNode, text: str) -> dict[int, tuple[int, int]]:
        """Lines of the statements in top-level ``statement`` (whose text is ``text``), counted
        from the first line of its text; parsed once per statement."""
        kept = self._parsed.get(id(statement))
        if kept is not None and kept[0] is statement and kept[1] is not None:
            return kept[1]
        relative: dict[int, tuple[int, int]] = {}
        _match_block([statement], ast.parse(text).body, relative)
        self._parsed[id(statement)] = (statement, relative)
        return relative

    def _piece_position(self, statement: cst.CSTNode) -> tuple[int, int] | None:
        """The line of ``statement`` from the top-level statement holding it: only the pieces
        that findings point into are parsed, each once along the versions."""
        assert self._pieces is not None
        if self._offsets is None:
            offset = self._head_lines
            self._offsets = {}
            for top, text in zip(self.module.body, self._pieces):
                self._offsets[id(top)] = (offset, text)
                offset += text.count("\n")
        top = statement
        parent = self.parent(top)
        while parent is not None and parent is not self.module:
            top, parent = parent, self.parent(parent)
        piece = self._offsets.get(id(top))
        if piece is None:
            return None
        found = self._relative_lines(top, piece[1]).get(id(statement))
        return None if found is None else (found[0] + piece[0], found[1])

    # --- rewriting -------------------------------------------------------------------------

    def rewritten(self, replacements: Mapping[cst.CSTNode, Replacement]) -> Tree:
        """The next version: :meth:`replace`, rendered. A top-level statement this version
        shares with earlier ones is not rendered again (``module.code`` is the header, each
        statement's code and the footer), nor parsed again for its lines."""
        module = self.replace(replacements)
        if (
            not module.body
            or module.default_newline != self.module.default_newline
            or module.default_indent != self.module.default_indent
        ):
            return self._next(module, module.code)
        rendered = self._rendered
        if self._syntax is not None and self._pieces is None and not self._seeded:
            self._seeded = True  # the input: its statements' texts are slices of it
            if "\r" not in self.code:
                if self._lines is None:
                    self._lines = _statement_lines(self.module, self._syntax)
                input_texts(self.module, self.code, self._lines, rendered)
        pieces = []
        for statement in module.body:
            kept = rendered.get(id(statement))
            if kept is None or kept[0] is not statement or kept[1]:
                kept = (statement, (), render(module, statement, rendered))
                rendered[id(statement)] = kept
            pieces.append(kept[2])
        head = "".join(module.code_for_node(line) for line in module.header)
        foot = "".join(module.code_for_node(line) for line in module.footer)
        code = head + "".join(pieces) + foot
        if not module.has_trailing_newline:  # LibCST drops the last token, a newline
            if "\r" in code or not code.endswith("\n"):
                return self._next(module, module.code)
            code = code[:-1]
        tree = self._next(module, code)
        tree._rendered = rendered
        tree._parsed = self._parsed
        if "\r" not in code:  # else lines as Python counts them (a lone CR ends one too)
            tree._pieces = pieces
            tree._head_lines = head.count("\n")
        return tree

    def _next(self, module: cst.Module, code: str) -> Tree:
        """A version made from this one: the statements it keeps keep their index."""
        tree = Tree(module, code)
        tree._known = self._known
        return tree

    def replace(self, replacements: Mapping[cst.CSTNode, Replacement]) -> cst.Module:
        """A new module with nodes replaced; untouched subtrees are shared, not visited."""
        on_path = {id(a) for node in replacements for a in self.ancestors(node)}
        by_id = {id(node): new for node, new in replacements.items()}
        module = self.module.visit(_Replacer(on_path, by_id))
        assert type(module) is cst.Module
        return module


class _Replacer(cst.CSTTransformer):
    def __init__(
        self, on_path: set[int], replacements: dict[int, Replacement], *, everywhere: bool = False
    ) -> None:
        super().__init__()
        self.on_path = on_path
        self.replacements = replacements
        self.everywhere = everywhere  # visit every node (inside a rebuilt one), not the paths

    def on_visit(self, node: cst.CSTNode) -> bool:
        return self.everywhere or id(node) in self.on_path

    def _inside(self, new: Replacement) -> Replacement:
        """``new`` with the replacements of the original nodes it holds applied."""
        inner = _Replacer(self.on_path, self.replacements, everywhere=True)
        if isinstance(new, cst.CSTNode):
            return new.visit(inner)  # type: ignore[return-value]
        assert not isinstance(new, Around)  # kept statements are visited in place
        statements: list[cst.BaseStatement] = []
        for statement in new:
            done = statement.visit(inner)
            if type(done) is cst.FlattenSentinel:
                statements.extend(done.nodes)
            elif isinstance(done, cst.BaseStatement):
                statements.append(done)
        return statements

    # LibCST types a transformer's result as the node's own type; a replacement may be any node.
    def on_leave(  # type: ignore[override]
        self, original_node: cst.CSTNode, updated_node: cst.CSTNode
    ) -> cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel[cst.CSTNode]:
        new = self.replacements.get(id(original_node))
        if new is None:
            return updated_node
        if not isinstance(new, Around) and id(original_node) in self.on_path:
            new = self._inside(new)  # fixes inside a rebuilt node it kept (engine._accept)
        if isinstance(new, cst.CSTNode):
            return new
        if isinstance(new, Around):
            node = updated_node
            assert isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
            before = list(new.before)
            if before and new.lead:
                before[0] = before[0].with_changes(leading_lines=node.leading_lines)
                node = node.with_changes(leading_lines=[cst.EmptyLine()] if new.separate else [])
            return cst.FlattenSentinel([*before, node, *new.after])
        statements = list(new)
        return cst.FlattenSentinel(statements) if statements else cst.RemovalSentinel.REMOVE


# --- statement lines through Python's own parser ----------------------------------------------


def _statement_lines(module: cst.Module, syntax: ast.Module) -> dict[int, tuple[int, int]]:
    lines: dict[int, tuple[int, int]] = {}
    _match_block(module.body, syntax.body, lines)
    return lines


def _small_statements(statements: Sequence[cst.CSTNode]) -> list[cst.CSTNode]:
    flat: list[cst.CSTNode] = []
    for statement in statements:
        if isinstance(statement, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            flat.extend(statement.body)
        else:
            flat.append(statement)
    return flat


def _suite(suite: cst.BaseSuite | None) -> list[cst.CSTNode]:
    if suite is None:
        return []
    return list(suite.body)  # statements of a block, or the small statements of a one-liner


def _match_block(
    statements: Sequence[cst.CSTNode], nodes: Sequence[ast.stmt], lines: dict[int, tuple[int, int]]
) -> None:
    flat = _small_statements(statements)
    if len(flat) != len(nodes):
        return
    for statement, node in zip(flat, nodes):
        lines[id(statement)] = (node.lineno, node.col_offset + 1)
        for ours, theirs in _sub_blocks(statement, node):
            _match_block(ours, theirs, lines)
    # a simple statement line is where its first small statement is
    for statement in statements:
        if type(statement) is cst.SimpleStatementLine and statement.body:
            first = lines.get(id(statement.body[0]))
            if first is not None:
                lines[id(statement)] = first


def _sub_blocks(
    statement: cst.CSTNode, node: ast.stmt
) -> Iterator[tuple[Sequence[cst.CSTNode], Sequence[ast.stmt]]]:
    """Pairs of (our statements, ast statements) for the blocks inside a compound statement."""
    if type(statement) is cst.If and isinstance(node, ast.If):
        yield _suite(statement.body), node.body
        orelse = statement.orelse
        if type(orelse) is cst.If:
            yield [orelse], node.orelse
        elif type(orelse) is cst.Else:
            yield _suite(orelse.body), node.orelse
    elif isinstance(statement, (cst.For, cst.While)) and isinstance(
        node, (ast.For, ast.AsyncFor, ast.While)
    ):
        yield _suite(statement.body), node.body
        if statement.orelse is not None:
            yield _suite(statement.orelse.body), node.orelse
    elif isinstance(statement, (cst.FunctionDef, cst.ClassDef, cst.With)) and isinstance(
        node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.With, ast.AsyncWith)
    ):
        yield _suite(statement.body), node.body
    elif isinstance(statement, (cst.Try, cst.TryStar)) and isinstance(node, _AST_TRY):
        yield _suite(statement.body), node.body
        handlers: Sequence[cst.ExceptHandler | cst.ExceptStarHandler] = statement.handlers
        for handler, theirs in zip(handlers, node.handlers):
            yield _suite(handler.body), theirs.body
        if statement.orelse is not None:
            yield _suite(statement.orelse.body), node.orelse
        if statement.finalbody is not None:
            yield _suite(statement.finalbody.body), node.finalbody
