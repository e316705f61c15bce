"""PRT010 tree-sitter-grammar-wheels: grammars come from wheels, not a compiled ``.so``.

Scripts of 2021 (GraphCodeBERT, the CodeBLEU evaluator) build ``my-languages.so`` from git clones
with ``Language.build_library`` and load it with ``Language('parser/my-languages.so', 'java')``,
then call ``parser.set_language(LANGUAGE)``. tree-sitter 0.22 removed all three: a grammar is a
wheel (``pip install tree-sitter-java``) whose module hands over the compiled language,
``Language(tree_sitter_java.language())``, and a parser takes it as ``parser.language = L``.

The rule rewrites ``Language(<path>, "<name>")`` when the name is a literal, and when it is the
variable of a loop over a literal list of names or over a module-level dict literal with string
keys (GraphCodeBERT's ``for lang in dfg_function:``): then it adds ``TREE_SITTER_GRAMMARS``, a
small dict from every key to its wheel's ``language`` function (right after that dict, or before
the statement holding a list loop), so the rewrite holds for every name the loop can see. It adds
``import tree_sitter_<name>`` for each grammar used. ``parser.set_language(L)`` on a name last
bound to ``Parser()`` becomes ``parser.language = L``. A name no wheel provides, a name from
anywhere else (a parameter, a dict that is changed later), ``set_language`` on other parsers
(``self.parser``), and ``Language.build_library`` are reported without a fix: the user installs the
wheels and decides. The rewritten code needs tree-sitter >= 0.22 and the wheels (``pip install
tree-sitter tree-sitter-java ...``); older bindings have no ``Parser.language`` setter.
"""

from __future__ import annotations

import libcst as cst

from patcher.rule import Example, Rule, RuleContext
from patcher.tree import Around, Replacement, Tree
from patches._names import BINDERS, bound_names, walk
from patches._syntax import dotted_name, string_value

#: The language names of the old ``my-languages.so`` (its ``tree_sitter_<name>`` symbols) →
#: (wheel module, function returning the language). PHP's wheel has two grammars; the scripts
#: parse ``<?php ... ?>`` text, which is the ``php`` one.
GRAMMARS: dict[str, tuple[str, str]] = {
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "c_sharp": ("tree_sitter_c_sharp", "language"),
    "go": ("tree_sitter_go", "language"),
    "java": ("tree_sitter_java", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "python": ("tree_sitter_python", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
}
HELPER = "TREE_SITTER_GRAMMARS"
_READ_METHODS = frozenset({"keys", "items", "values", "get"})


def _tree_sitter_names(tree: Tree, name: str) -> set[str]:
    """What ``tree_sitter.<name>`` is called in this module (``Language``, ``ts.Language``)."""
    found: set[str] = set()
    for node in tree.nodes(cst.Import, cst.ImportFrom):
        if isinstance(node, cst.ImportFrom) and node.module is not None:
            if dotted_name(node.module) != "tree_sitter" or isinstance(node.names, cst.ImportStar):
                continue
            for alias in node.names:
                if dotted_name(alias.name) == name:
                    bound = alias.asname.name if alias.asname else alias.name
                    if type(bound) is cst.Name:
                        found.add(bound.value)
        elif type(node) is cst.Import:
            for alias in node.names:
                if dotted_name(alias.name) == "tree_sitter":
                    bound = alias.asname.name if alias.asname else alias.name
                    found.add(f"{dotted_name(bound)}.{name}")
    return found


def _grammar_call(name: str) -> cst.Call:
    """``tree_sitter_java.language()``."""
    module, function = GRAMMARS[name]
    return cst.Call(cst.Attribute(cst.Name(module), cst.Name(function)))


def _module_dicts(module: cst.Module) -> dict[str, tuple[cst.SimpleStatementLine, list[str]]]:
    """Module-level ``NAME = {"key": ..., ...}`` with literal string keys, bound once."""
    found: dict[str, tuple[cst.SimpleStatementLine, list[str]]] = {}
    for statement in module.body:
        if not (type(statement) is cst.SimpleStatementLine and len(statement.body) == 1):
            continue
        assign = statement.body[0]
        if not (type(assign) is cst.Assign and len(assign.targets) == 1):
            continue
        target = assign.targets[0].target
        if not (type(target) is cst.Name and type(assign.value) is cst.Dict):
            continue
        keys = []
        for element in assign.value.elements:
            key = string_value(element.key) if type(element) is cst.DictElement else None
            if key is None:
                break
            keys.append(key)
        else:
            found[target.value] = (statement, keys)
    return found


def _changed(tree: Tree, name: str, assignment: cst.CSTNode) -> bool:
    """Whether ``name`` is rebound anywhere, or its dict changed (``d[k] = v``, ``d.update``)."""
    for node in tree.nodes(*BINDERS):
        if tree.contains(assignment, node):
            continue
        if any(bound.value == name for bound in bound_names(node)):
            return True
        target = getattr(node, "target", None)
        if type(target) is cst.Subscript and dotted_name(target.value) == name:
            return True
    for node in tree.nodes(cst.Del, cst.Global, cst.Nonlocal):
        if any(type(n) is cst.Name and n.value == name for n in walk(node, into_scopes=True)):
            return True
    for node in tree.nodes(cst.Attribute):
        if dotted_name(node.value) == name and node.attr.value not in _READ_METHODS:
            return True
    return False


def _loop(tree: Tree, call: cst.Call, variable: str) -> cst.For | None:
    """The innermost loop of the call's function that binds ``variable`` and nothing rebinds."""
    scope = tree.scope(call)
    for ancestor in tree.ancestors(call):
        if ancestor is scope:
            return None
        if type(ancestor) is cst.For and dotted_name(ancestor.target) == variable:
            for node in walk(ancestor.body, into_scopes=False):
                if isinstance(node, BINDERS) and any(
                    b.value == variable for b in bound_names(node)
                ):
                    return None
            return ancestor
    return None


def _loop_names(loop: cst.For) -> list[str] | None:
    """The names a loop over a literal list/tuple of strings takes."""
    if not isinstance(loop.iter, (cst.List, cst.Tuple)):
        return None
    names = [string_value(e.value) if type(e) is cst.Element else None for e in loop.iter.elements]
    strings = [n for n in names if n is not None]
    return None if len(strings) < len(names) else strings


def _dict_name(loop: cst.For) -> str | None:
    """``d`` of ``for x in d:`` / ``for x in d.keys():``."""
    target = loop.iter
    if type(target) is cst.Call and not target.args and type(target.func) is cst.Attribute:
        if target.func.attr.value != "keys":
            return None
        target = target.func.value
    return target.value if type(target) is cst.Name else None


def _helper(names: list[str]) -> cst.SimpleStatementLine:
    """``TREE_SITTER_GRAMMARS = {"java": tree_sitter_java.language, ...}`` for ``names``."""
    entries = "".join(
        f'    "{n}": {GRAMMARS[n][0]}.{GRAMMARS[n][1]},\n' for n in dict.fromkeys(names)
    )
    line = cst.parse_statement(f"{HELPER} = {{\n{entries}}}\n")
    return cst.ensure_type(line, cst.SimpleStatementLine)


def _existing_helper(tree: Tree) -> tuple[cst.SimpleStatementLine, set[str]] | None:
    found = _module_dicts(tree.module).get(HELPER)
    return (found[0], set(found[1])) if found else None


class TreeSitterGrammarWheels(Rule):
    code = "PRT010"
    name = "tree-sitter-grammar-wheels"
    summary = "Load tree-sitter grammars from their wheels (no my-languages.so, no set_language)."
    rationale = __doc__
    settles = True
    triggers = ("tree_sitter",)
    examples = (
        Example(
            before="""
                from tree_sitter import Language, Parser
                LANGUAGE = Language('parser/my-languages.so', 'java')
                parser = Parser()
                parser.set_language(LANGUAGE)
            """,
            after="""
                import tree_sitter_java
                from tree_sitter import Language, Parser
                LANGUAGE = Language(tree_sitter_java.language())
                parser = Parser()
                parser.language = LANGUAGE
            """,
            messages=(
                "load the java grammar from its wheel (tree-sitter >= 0.22)",
                "set_language was removed in tree-sitter 0.22: assign .language",
            ),
        ),
        Example(
            before="""
                import json
                from tree_sitter import Language, Parser
                dfg_function = {'python': DFG_python, 'java': DFG_java}
                parsers = {}
                for lang in dfg_function:
                    LANGUAGE = Language('parser/my-languages.so', lang)
                    parser = Parser()
                    parser.set_language(LANGUAGE)
                    parsers[lang] = [parser, dfg_function[lang]]
            """,
            after="""
                import json
                import tree_sitter_java
                import tree_sitter_python
                from tree_sitter import Language, Parser
                dfg_function = {'python': DFG_python, 'java': DFG_java}
                TREE_SITTER_GRAMMARS = {
                    "python": tree_sitter_python.language,
                    "java": tree_sitter_java.language,
                }
                parsers = {}
                for lang in dfg_function:
                    LANGUAGE = Language(TREE_SITTER_GRAMMARS[lang]())
                    parser = Parser()
                    parser.language = LANGUAGE
                    parsers[lang] = [parser, dfg_function[lang]]
            """,
            messages=(
                "load each loop language's grammar from its wheel (tree-sitter >= 0.22)",
                "set_language was removed in tree-sitter 0.22: assign .language",
            ),
        ),
        Example(
            before="""
                from tree_sitter import Language, Parser
                def syntax_match(lang):
                    return Language(root_dir + '/parser/my-languages.so', lang)
            """,
            reports=1,
            messages=(
                "Language(<.so>, name) was removed in tree-sitter 0.22 and the name cannot be "
                "traced to known languages: load each grammar from its wheel by hand",
            ),
        ),
        Example(
            before="""
                import tree_sitter_java
                from tree_sitter import Language, Parser
                parser = Parser(Language(tree_sitter_java.language()))
            """
        ),
    )

    def run(self, ctx: RuleContext) -> None:
        tree = ctx.tree
        languages = _tree_sitter_names(tree, "Language")
        parsers = _tree_sitter_names(tree, "Parser")
        for call in tree.nodes(cst.Call):
            dotted = dotted_name(call.func)
            if dotted is None:
                continue
            if dotted in languages and len(call.args) == 2:
                self._language(ctx, call)
            elif dotted in {f"{n}.build_library" for n in languages}:
                ctx.report(
                    call,
                    "Language.build_library was removed in tree-sitter 0.22: install the "
                    "grammar wheels (pip install tree-sitter-java ...) instead of building",
                )
            elif dotted.endswith(".set_language") and (languages or parsers):
                self._set_language(ctx, call, parsers)

    def _language(self, ctx: RuleContext, call: cst.Call) -> None:
        tree = ctx.tree
        first, second = call.args
        if first.keyword is not None or second.keyword is not None or first.star or second.star:
            ctx.report(call, "Language(path, name) has no tree-sitter >= 0.22 form: use a wheel")
            return
        literal = string_value(second.value)
        if literal is not None:
            if literal not in GRAMMARS:
                ctx.report(call, f"no tree-sitter grammar wheel is known for {literal!r}")
                return
            new = call.with_changes(args=[cst.Arg(_grammar_call(literal))])
            ctx.fix(
                call,
                f"load the {literal} grammar from its wheel (tree-sitter >= 0.22)",
                {call: new},
                imports=(GRAMMARS[literal][0],),
            )
            return
        names, anchor, after = self._loop_keys(tree, call, second.value)
        if names is None:
            ctx.report(
                call,
                "Language(<.so>, name) was removed in tree-sitter 0.22 and the name cannot be "
                "traced to known languages: load each grammar from its wheel by hand",
            )
            return
        unknown = [n for n in names if n not in GRAMMARS]
        if unknown:
            ctx.report(call, f"no tree-sitter grammar wheel is known for {unknown[0]!r}")
            return
        variable = second.value
        assert type(variable) is cst.Name
        lookup = cst.Subscript(cst.Name(HELPER), [cst.SubscriptElement(cst.Index(variable))])
        fixes: dict[cst.CSTNode, Replacement] = {
            call: call.with_changes(args=[cst.Arg(cst.Call(lookup))])
        }
        imports: tuple[str, ...] = ()  # the helper's: one existing has them already
        existing = _existing_helper(tree)
        if existing is not None:
            statement, keys = existing
            if not set(names) <= keys or not self._before(tree, statement, call):
                ctx.report(call, f"{HELPER} exists but does not cover this loop's languages")
                return
        else:
            if any(type(n) is cst.Name and n.value == HELPER for n in tree.nodes(cst.Name)):
                ctx.report(call, f"{HELPER} is already used for something else")
                return
            imports = tuple(sorted({GRAMMARS[n][0] for n in names}))
            helper = _helper(names)
            # after the dict the loop reads, or before the statement that holds the loop,
            # spaced like that statement (which keeps its own comments)
            if after:
                place = Around(after=(helper,))
            else:
                assert isinstance(anchor, (cst.SimpleStatementLine, cst.BaseCompoundStatement))
                blank = [line for line in anchor.leading_lines if line.comment is None]
                place = Around(before=(helper.with_changes(leading_lines=blank),), lead=False)
            current = fixes.get(anchor)
            fixes[anchor] = current.merged(place) if isinstance(current, Around) else place
        ctx.fix(
            call,
            "load each loop language's grammar from its wheel (tree-sitter >= 0.22)",
            fixes,
            imports=imports,
        )

    @staticmethod
    def _before(tree: Tree, statement: cst.CSTNode, call: cst.Call) -> bool:
        return tree.scope(call) is not tree.module or tree.after(call, statement)

    def _loop_keys(
        self, tree: Tree, call: cst.Call, value: cst.BaseExpression
    ) -> tuple[list[str] | None, cst.CSTNode, bool]:
        """The names ``value`` can take, the statement the helper dict goes next to, and
        whether it goes after it (the dict the loop reads) or before (the loop's statement)."""
        if type(value) is not cst.Name:
            return None, call, False
        loop = _loop(tree, call, value.value)
        if loop is None:
            return None, call, False
        literal = _loop_names(loop)
        if literal is not None:
            top = loop
            for ancestor in tree.ancestors(loop):
                if ancestor is tree.module:
                    break
                top = ancestor
            return literal, top, False
        name = _dict_name(loop)
        dicts = _module_dicts(tree.module)
        if name is None or name not in dicts:
            return None, call, False
        statement, keys = dicts[name]
        if _changed(tree, name, statement) or not self._before(tree, statement, call):
            return None, call, False
        return keys, statement, True

    def _set_language(self, ctx: RuleContext, call: cst.Call, parsers: set[str]) -> None:
        tree = ctx.tree
        receiver = call.func.value if type(call.func) is cst.Attribute else None
        statement = tree.parent(call)
        simple = (
            type(statement) is cst.Expr
            and len(call.args) == 1
            and call.args[0].keyword is None
            and not call.args[0].star
        )
        parser = type(receiver) is cst.Name and _is_parser(tree, receiver, parsers)
        if not (simple and parser):
            # a receiver that is not a tree-sitter parser by name or binding is someone else's
            if parser or "parser" in (dotted_name(receiver) or "").lower():
                ctx.report(call, "set_language was removed in tree-sitter 0.22: assign .language")
            return
        assert type(statement) is cst.Expr and receiver is not None
        target = cst.AssignTarget(cst.Attribute(receiver, cst.Name("language")))
        assign = cst.Assign([target], call.args[0].value, semicolon=statement.semicolon)
        ctx.fix(
            call,
            "set_language was removed in tree-sitter 0.22: assign .language",
            {statement: assign},
        )


def _is_parser(tree: Tree, name: cst.Name, parsers: set[str]) -> bool:
    """Whether the last binding of ``name`` before it in its function is ``Parser(...)``."""
    scope = tree.scope(name)
    last: cst.CSTNode | None = None
    for node in tree.nodes(*BINDERS):
        if tree.scope(node) is not scope or not tree.after(name, node):
            continue
        if any(b.value == name.value for b in bound_names(node)):
            last = node
    if type(last) is not cst.AssignTarget:
        return False
    assign = tree.parent(last)
    value = assign.value if type(assign) is cst.Assign else None
    return type(value) is cst.Call and dotted_name(value.func) in parsers
