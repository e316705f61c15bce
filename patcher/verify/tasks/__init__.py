"""Synthetic data for more tasks, one module per task family.

Each module defines ``GENERATORS: dict[str, Callable[[Path], list[str]]]`` like
:data:`patcher.verify.datasets.GENERATORS`; :func:`patcher.verify.datasets.generators` collects
them, so a new task is a new module and a target manifest that names its dataset.
"""
