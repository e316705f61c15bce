"""PRT010 on GraphCodeBERT's parser loop: the exact rewrite, a fixed point, and real parses.

The rewrite is only worth something if today's tree-sitter accepts it, so the rewritten module
is executed and its parsers parse a Java method and a Python function with the installed
grammar wheels (skipped when they are not installed).
"""

from __future__ import annotations

import pytest

from patcher.engine import fix_text
from patches.prt010_tree_sitter_grammar_wheels import GRAMMARS, TreeSitterGrammarWheels

BEFORE = """\
import json
from tree_sitter import Language, Parser

dfg_function={
    'python':DFG_python,
    'java':DFG_java,
    'php':DFG_php,
}

#load parsers
parsers={}
for lang in dfg_function:
    LANGUAGE = Language('parser/my-languages.so', lang)
    parser = Parser()
    parser.set_language(LANGUAGE)
    parser = [parser,dfg_function[lang]]
    parsers[lang]= parser
"""

AFTER = """\
import json
import tree_sitter_java
import tree_sitter_php
import tree_sitter_python
from tree_sitter import Language, Parser

dfg_function={
    'python':DFG_python,
    'java':DFG_java,
    'php':DFG_php,
}
TREE_SITTER_GRAMMARS = {
    "python": tree_sitter_python.language,
    "java": tree_sitter_java.language,
    "php": tree_sitter_php.language_php,
}

#load parsers
parsers={}
for lang in dfg_function:
    LANGUAGE = Language(TREE_SITTER_GRAMMARS[lang]())
    parser = Parser()
    parser.language = LANGUAGE
    parser = [parser,dfg_function[lang]]
    parsers[lang]= parser
"""

JAVA = (
    b"int sum(int[] a) { int s = 0; for (int i = 0; i < a.length; i++) { s += a[i]; } return s; }"
)
PYTHON = b"def total(xs):\n    s = 0\n    for x in xs:\n        s = s + x\n    return s\n"


def _rules() -> list[TreeSitterGrammarWheels]:
    return [TreeSitterGrammarWheels()]


def test_graphcodebert_loop_rewritten_exactly() -> None:
    output, findings = fix_text(BEFORE, _rules())
    assert output == AFTER
    assert [(f.line, f.fixed) for f in findings] == [(13, True), (15, True)]


def test_rewrite_is_a_fixed_point() -> None:
    output, _ = fix_text(BEFORE, _rules())
    again, findings = fix_text(output, _rules())
    assert again == output
    assert findings == []


def test_name_from_a_parameter_is_reported_not_rewritten() -> None:
    source = (
        "from tree_sitter import Language\n"
        "def load(lang):\n"
        "    return Language('my-languages.so', lang)\n"
    )
    output, findings = fix_text(source, _rules())
    assert output == source
    assert [(f.line, f.fixed) for f in findings] == [(3, False)]


def test_rewritten_code_parses_java_and_python() -> None:
    pytest.importorskip("tree_sitter")
    for module, _ in GRAMMARS.values():
        if module in ("tree_sitter_java", "tree_sitter_python", "tree_sitter_php"):
            pytest.importorskip(module)
    output, _ = fix_text(BEFORE, _rules())
    namespace: dict = {"DFG_python": "py-dfg", "DFG_java": "java-dfg", "DFG_php": "php-dfg"}
    exec(compile(output, "<patched>", "exec"), namespace)
    parsers = namespace["parsers"]
    assert sorted(parsers) == ["java", "php", "python"]

    java = parsers["java"][0].parse(JAVA).root_node
    assert not java.has_error
    assert java.children[0].type == "method_declaration"
    assert java.children[0].child_by_field_name("name").text == b"sum"

    python = parsers["python"][0].parse(PYTHON).root_node
    assert not python.has_error
    assert python.children[0].type == "function_definition"
    assert python.children[0].child_by_field_name("name").text == b"total"

    php = parsers["php"][0].parse(b"<?php function f($a) { return $a + 1; } ?>").root_node
    assert not php.has_error


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_every_mapped_grammar_loads(name: str) -> None:
    """The table is right for the installed wheels: each entry gives a usable language."""
    tree_sitter = pytest.importorskip("tree_sitter")
    module_name, function = GRAMMARS[name]
    module = pytest.importorskip(module_name)
    parser = tree_sitter.Parser()
    parser.language = tree_sitter.Language(getattr(module, function)())
    assert parser.parse(b"").root_node is not None


C_FAMILY = """\
from tree_sitter import Language, Parser
parsers = {}
for lang in ['python', 'c', 'cpp', 'c_sharp']:
    LANGUAGE = Language('parser/my-languages.so', lang)
    parser = Parser()
    parser.set_language(LANGUAGE)
    if lang == "c_sharp":
        parsers["csharp"] = parser
    else:
        parsers[lang] = parser
"""


def test_rewritten_loop_parses_c_and_cpp() -> None:
    """LongCoder's loop names ``c`` and ``cpp``: their wheels load and parse each language."""
    pytest.importorskip("tree_sitter")
    for module in ("tree_sitter_c", "tree_sitter_cpp", "tree_sitter_c_sharp", "tree_sitter_python"):
        pytest.importorskip(module)
    output, findings = fix_text(C_FAMILY, _rules())
    assert [f.fixed for f in findings] == [True, True]
    assert '    "c": tree_sitter_c.language,\n    "cpp": tree_sitter_cpp.language,\n' in output
    namespace: dict = {}
    exec(compile(output, "<patched>", "exec"), namespace)
    parsers = namespace["parsers"]
    assert sorted(parsers) == ["c", "cpp", "csharp", "python"]

    c = parsers["c"].parse(b"int add(int a, int b) { return a + b; }\n").root_node
    assert not c.has_error and c.children[0].type == "function_definition"
    cpp = parsers["cpp"].parse(b"template <typename T> T twice(T x) { return x * 2; }\n")
    assert not cpp.root_node.has_error
    assert cpp.root_node.children[0].type == "template_declaration"
    # C has no templates: the C grammar really is a different one
    assert parsers["c"].parse(b"template <typename T> T twice(T x);\n").root_node.has_error
