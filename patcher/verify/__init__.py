"""``ddpfix verify``: run a patched script under accelerate with N ranks on tiny local inputs.

Needs the ``verify`` extra (torch, accelerate, transformers, tokenizers); nothing here is imported
by ``apply``/``check``.
"""
