"""Rewritten versions reuse the input's statement texts, and render exactly as LibCST would."""

from __future__ import annotations

import ast
from pathlib import Path

import libcst as cst
import pytest
from libcst._nodes.internal import CodegenState

from patcher.render import input_texts, render
from patcher.tree import Around, Tree, _statement_lines

SOURCE = '''\
#!/usr/bin/env python
"""A script."""
import os  # first


# a comment that belongs to main
def main(args):
    total = 0
    for step in range(3):  # loop
        if step:
            total += step
        # between
        elif args:
          x = 1; y = 2
        else:
            pass

        total -= 1
    try:
        os.remove("x")
    except OSError:
        pass
    finally:
        total = (
            total
            + 1
        )
    return total
    # trailing, indented


@decorated
def helper():
    pass
if __name__ == "__main__":
    main(None)
# the end
'''


def _texts(source: str) -> tuple[cst.Module, dict]:
    module = cst.parse_module(source)
    texts: dict = {}
    input_texts(module, source, _statement_lines(module, ast.parse(source)), texts)
    return module, texts


def _rendered(module: cst.Module, node: cst.CSTNode, indents: tuple[str, ...]) -> str:
    state = CodegenState(
        default_indent=module.default_indent,
        default_newline=module.default_newline,
        indent_tokens=list(indents),
    )
    node._codegen(state)
    return "".join(state.tokens)


def test_input_texts_are_what_libcst_renders() -> None:
    module, texts = _texts(SOURCE)
    assert texts  # nested statements too, not only the top level
    assert any(indents for _, indents, _ in texts.values())
    for node, indents, text in texts.values():
        assert text == _rendered(module, node, indents)
    # a decorated function's first line is not known, nor is the end of the one before it
    assert not any(
        isinstance(node, cst.FunctionDef) and node.decorators for node, _, _ in texts.values()
    )
    assert "".join(render(module, s, texts) for s in module.body) in SOURCE


@pytest.mark.parametrize("name", ["run.py"])
def test_every_example_script_renders_from_its_texts(name: str) -> None:
    for path in sorted(Path("examples").rglob(name)):
        source = path.read_text()
        module, texts = _texts(source)
        for node, indents, text in texts.values():
            assert text == _rendered(module, node, indents), path
        head = "".join(module.code_for_node(line) for line in module.header)
        foot = "".join(module.code_for_node(line) for line in module.footer)
        assert head + "".join(render(module, s, texts) for s in module.body) + foot == source


def test_a_statement_moved_under_a_new_block_is_indented_again() -> None:
    tree = Tree(cst.parse_module(SOURCE), SOURCE, ast.parse(SOURCE))
    main = tree.module.body[2]
    assert isinstance(main, cst.FunctionDef)
    loop = main.body.body[1]
    assert isinstance(loop, cst.For)
    gate = cst.If(test=cst.Name("ready"), body=cst.IndentedBlock(body=[loop]))
    first = tree.rewritten({loop: gate})
    assert first.code == first.module.code
    assert "    if ready:\n        for step in range(3):  # loop\n" in first.code
    assert "                total += step\n" in first.code
    # a second version keeps the first's rewritten function and edits another statement
    function = first.module.body[2]
    assert isinstance(function, cst.FunctionDef)
    ret = function.body.body[-1]
    second = first.rewritten({ret: Around(before=(cst.parse_statement("done()\n"),))})
    assert second.code == second.module.code
    assert "    done()\n    return total\n    # trailing, indented\n" in second.code


def test_a_file_without_a_final_newline_keeps_it_so() -> None:
    source = SOURCE.rstrip("\n")
    tree = Tree(cst.parse_module(source), source, ast.parse(source))
    last = tree.module.body[-1]
    assert isinstance(last, cst.If)
    first = tree.rewritten({last: Around(before=(cst.parse_statement("done()\n"),))})
    assert first.code == first.module.code
    assert first.code.endswith("    main(None)\n# the end")
