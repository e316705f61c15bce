"""The shared answers several rules use from ``patches._syntax``: where a definition a fix adds
goes (``last_import``), what binds a name at module level (``module_binds``) and whose ``self``
a method has (``method_self``)."""

from __future__ import annotations

import libcst as cst

from patcher.tree import Tree
from patches._syntax import last_import, method_self, module_binds

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
