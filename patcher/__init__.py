"""ddpfix: make legacy PyTorch research scripts train correctly under modern launchers.

``patcher`` is the engine and the CLI; it holds no knowledge of any rule. The rules live in the
sibling package ``patches``.
"""

__version__ = "0.1.0"
