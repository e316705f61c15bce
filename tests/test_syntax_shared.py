"""The shared answers several rules use from ``patches._syntax``: where a definition a fix adds
goes (``last_import``), what binds a name at module level (``module_binds``) and whose ``self``
a method has (``method_self``), and the quote a file prefers (``preferred_quote``)."""

from __future__ import annotations

import re

import libcst as cst

from patcher.tree import Tree, forget
from patches import _syntax
from patches._syntax import last_import, method_self, module_binds, preferred_quote

SCRIPT = '''\
"""A script."""
from __future__ import annotations
import os
from torch.utils.data import DataLoader
import sys; sys.path.append("..")
from model import Seq2Seq
if __name__ == "__main__":
    main()
import numpy as np
'''


def _tree(code: str) -> Tree:
    return Tree(cst.parse_module(code), code)


def _code(module: cst.Module, node: cst.CSTNode | None) -> str | None:
    return None if node is None else module.code_for_node(node).strip()


def test_last_import_anywhere_and_before_the_first_code() -> None:
    module = cst.parse_module(SCRIPT)
    assert _code(module, last_import(module)) == "import numpy as np"
    assert _code(module, last_import(module, kind=cst.ImportFrom)) == "from model import Seq2Seq"
    # `import sys; sys.path.append(...)` runs code: a definition must come before it
    assert _code(module, last_import(module, before_code=True)) == (
        "from torch.utils.data import DataLoader"
    )
    skip = module.body[3]
    assert _code(module, last_import(module, skip=skip, before_code=True)) == "import os"
    assert last_import(cst.parse_module('"""doc"""\nx = 1\nimport os\n'), before_code=True) is None


def test_module_binds_and_its_imports_only_question() -> None:
    tree = _tree(
        "import numpy as np\nimport torch.distributed\nnp2 = 1\ndef helper(): pass\n"
        "import scipy as sp_alias\n"
    )
    for name in ("np", "torch"):
        assert module_binds(tree, name) and module_binds(tree, name, imports_only=True)
    for name in ("np2", "helper"):
        assert module_binds(tree, name) and not module_binds(tree, name, imports_only=True)
    assert not module_binds(tree, "scipy", imports_only=True)  # bound as sp_alias only
    assert module_binds(tree, "sp_alias", imports_only=True)


def test_method_self() -> None:
    tree = _tree(
        "class M:\n"
        "    def a(me, x): pass\n"
        "    @torch.no_grad()\n"
        "    def b(self): pass\n"
        "    @staticmethod\n"
        "    def c(x): pass\n"
        "    @classmethod\n"
        "    def d(cls): pass\n"
        "    def e(*args): pass\n"
        "def f(self): pass\n"
    )
    found = {
        fn.name.value: (m[1] if (m := method_self(tree, fn)) else None)
        for fn in tree.nodes(cst.FunctionDef)
    }
    assert found == {"a": "me", "b": "self", "c": None, "d": None, "e": None, "f": None}


def _whole_file_quote(code: str) -> str:
    """The preference counted over the whole text at once, as it was before paragraphs."""
    doubles = len(re.findall(r'(?<![\w"\'])"[^"\'\n\\]*"', code))
    singles = len(re.findall(r"(?<![\w\"'])'[^\"'\n\\]*'", code))
    return "'" if singles > doubles else '"'


def test_the_preferred_quote_is_counted_per_paragraph_as_over_the_whole_file() -> None:
    first = "x = 'a'\n\ny = \"b\"\nz = f'{q}' + \"it's\"\n\n'''doc'''\n"
    versions = [
        first,
        first + '\n\nw = "c"\nv = "d"\n',  # a version that adds a paragraph: now double
        first.replace("x = 'a'", "x = 'a'; u = 'e'; t = 'f'"),  # one paragraph changed
        "\n\n".join(["s = 'q'"] * 3) + "\n\n\n'",  # paragraphs alike, blank lines in a row
        "k = 1\n\nx = 'a'\n",
        'k = 1\n\nx = "a"\n',  # a paragraph as long as one seen, other quotes
    ]
    for code in versions:  # paragraphs seen in an earlier version are counted from the cache
        assert preferred_quote(code) == _whole_file_quote(code), code
    assert [preferred_quote(c) for c in versions] == ["'", '"', "'", "'", "'", '"']
    forget()  # the file is done: its paragraphs' counts go with it
    assert not _syntax._QUOTES
