"""ddpfix verify probe: records what each training process does, without touching the script.

``ddpfix verify`` puts this directory first on PYTHONPATH, so every Python process it launches
imports this module at start-up. Only processes that carry ``DDPFIX_PROBE_DIR`` record anything;
the accelerate launcher itself (no ``LOCAL_RANK``) and helper processes a rank spawns (pools) are
told apart by ``DDPFIX_PROBE_OWNER``. Events go, one JSON object a line, flushed at once, to
``<probe dir>/events-<pid>.jsonl``, so a process that is killed still leaves its evidence.
SIGUSR1 dumps every thread's stack to ``<probe dir>/stacks-<pid>.txt`` (faulthandler).
After every optimizer step a ``replica`` event carries a digest of the parameters the step left,
so the last one survives a kill; the harness compares the ranks' last digests.

This file must import nothing heavy and must never break the process it lives in: every hook
is wrapped so that a failure in the probe is swallowed.
"""

from __future__ import annotations

import atexit
import builtins
import faulthandler
import importlib.abc
import importlib.machinery
import importlib.util
import os
import signal
import sys
import threading
import time
import traceback

# beside this file, first on the ranks' PYTHONPATH (not importable where mypy runs)
import ddpfix_protocol as protocol  # type: ignore[import-not-found]

TYPE_CHECKING = False  # for mypy only: the probe imports nothing it can do without
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any


_DIR = os.environ.get(protocol.ENV_DIR)
_HERE = os.path.dirname(os.path.abspath(__file__))
_state: dict[str, Any] = {
    "steps": 0,
    "exit": None,
    "files": None,
    "stacks": None,
    "owner": None,
    "wait": 0.0,
    "wait_in": None,
    "checksum_time": 0.0,
}
# Every optimizer step records a digest of the parameters it left ("replicas in sync");
# DDPFIX_CHECKSUM=0 turns that off (to measure what it costs).
_CHECKSUM = os.environ.get(protocol.ENV_CHECKSUM, "1") != "0"
_COLLECTIVES = (
    "all_reduce",
    "all_gather",
    "all_gather_object",
    "broadcast",
    "broadcast_object_list",
    "reduce",
    "gather",
    "scatter",
    "barrier",
    "monitored_barrier",
)


def _chain_next_sitecustomize() -> None:
    """Run the sitecustomize this one shadows, if there is one."""
    paths = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", paths)
    if spec is None or spec.loader is None or spec.origin == os.path.abspath(__file__):
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception:
        traceback.print_exc()


def _rank() -> int:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank()
    except Exception:
        pass
    return int(os.environ.get("RANK", "-1"))


def _emit(kind: str, **data) -> None:
    if _state.get("owner") != os.getpid():
        return  # a process forked from a rank (a Pool worker): not a rank itself
    try:
        handle = _state["files"]
        handle.write(protocol.encode(kind, os.getpid(), **data))
        handle.flush()
    except Exception:
        pass


def _record_write(path, how: str) -> None:
    try:
        _emit(protocol.WRITE, path=os.path.abspath(os.fspath(path)), how=how, rank=_rank())
    except Exception:
        pass


# --- hooks installed once the libraries are imported ---------------------------------------


def _patch_torch(torch) -> None:
    save = torch.save

    def probed_save(obj, f, *args, **kwargs):
        if isinstance(f, (str, bytes, os.PathLike)):
            _record_write(f, "torch.save")
        return save(obj, f, *args, **kwargs)

    torch.save = probed_save

    try:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        def count(optimizer, args, kwargs):
            _state["steps"] += 1
            if _state["steps"] == 1:
                _emit(protocol.FIRST_STEP, rank=_rank())
            if _CHECKSUM and _state.get("owner") == os.getpid():
                _emit(protocol.REPLICA, step=_state["steps"], **_checksum(optimizer))
            limit = os.environ.get(protocol.ENV_MAX_STEPS)
            if limit and _state["steps"] >= int(limit):
                _emit(protocol.STOPPED, steps=_state["steps"], rank=_rank())
                raise SystemExit(0)  # --max-steps: a clean stop, atexit records the rest

        register_optimizer_step_post_hook(count)
    except Exception:
        pass

    torch.Tensor.backward = _timed(torch.Tensor.backward, "backward (DDP's gradient all-reduce)")

    if os.environ.get(protocol.ENV_HEALTH, "1") != "0":
        try:
            import ddpfix_health  # type: ignore[import-not-found]  # on sys.path beside this file

            ddpfix_health.install(torch)
            _state["health"] = ddpfix_health
            if os.environ.get(protocol.ENV_SENTINEL) == "1":
                ddpfix_health.install_sentinel()
        except Exception:
            traceback.print_exc()

    # Evaluation mode is recorded at train(False), where every path meets: Module.eval() and
    # transformers 5's own PreTrainedModel.eval() (which calls train(False) itself). Once per
    # top-level call (train recurses into the children), and only when the script asked for
    # it: a load (from_pretrained puts the model in eval mode) is not an evaluation.
    train_mode = torch.nn.Module.train

    def probed_train(self, mode=True):
        if getattr(_inside_train, "active", False):
            return train_mode(self, mode)
        if not mode and _asked_by_the_script():
            _emit(protocol.EVAL_MODE, module=type(self).__name__, rank=_rank())
        _inside_train.active = True
        try:
            return train_mode(self, mode)
        finally:
            _inside_train.active = False

    torch.nn.Module.train = probed_train


_inside_train = threading.local()
_LIBRARIES = tuple(
    f"{os.sep}{name}{os.sep}" for name in ("torch", "transformers", "accelerate", "peft")
)
_LOADERS = frozenset({"from_pretrained", "_load_pretrained_model", "load_checkpoint"})


def _asked_by_the_script() -> bool:
    """Whether the script's own code (not a library loading a model) reached this call."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_name in _LOADERS:
            return False
        name = code.co_filename
        if not any(part in name for part in _LIBRARIES) and not name.endswith("sitecustomize.py"):
            return True
        frame = frame.f_back
    return True


def _checksum(optimizer) -> dict:
    """A blake2b of the raw bytes of every trainable parameter ``optimizer`` holds.

    DDP keeps replicas bit-identical (rank 0's initial values are broadcast, gradients are
    all-reduced to the same bytes on every rank), so the harness compares these digests exactly.
    Params are taken in param_groups order, which is the same on every rank; each tensor's dtype
    and shape go into the digest too. A failure is reported, never raised.
    """
    start = time.monotonic()
    try:
        import hashlib

        import torch

        digest = hashlib.blake2b(digest_size=16)
        tensors = values = 0
        with torch.no_grad():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    if not param.requires_grad:
                        continue
                    flat = param.detach().cpu().contiguous().reshape(-1)
                    digest.update(f"{flat.dtype}{tuple(param.shape)};".encode())
                    digest.update(flat.view(torch.uint8).numpy())  # no copy on the CPU
                    tensors += 1
                    values += flat.numel()
        result = {"checksum": digest.hexdigest(), "tensors": tensors, "values": values}
    except Exception as exc:
        result = {"checksum": None, "error": f"{type(exc).__name__}: {exc}"[:200]}
    _state["checksum_time"] += time.monotonic() - start
    return result


def _timed(function, label: str):
    """``function``, noting the longest time one call of it took in this process."""

    def timed(*args, **kwargs):
        start = time.monotonic()
        try:
            return function(*args, **kwargs)
        finally:
            spent = time.monotonic() - start
            if spent > _state["wait"]:
                _state["wait"], _state["wait_in"] = spent, label

    return timed


def _patch_distributed(dist) -> None:
    for name in _COLLECTIVES:
        function = getattr(dist, name, None)
        if function is not None:
            setattr(dist, name, _timed(function, f"torch.distributed.{name}"))
    init = dist.init_process_group

    def probed_init(*args, **kwargs):
        _emit(protocol.DIST_INIT_START, backend=kwargs.get("backend", args[0] if args else None))
        result = init(*args, **kwargs)
        try:
            _emit(
                protocol.DIST_INIT,
                rank=dist.get_rank(),
                world_size=dist.get_world_size(),
                backend=str(dist.get_backend()),
            )
        except Exception:
            pass
        return result

    dist.init_process_group = probed_init


def _patch_transformers_modeling(modeling_utils) -> None:
    cls = getattr(modeling_utils, "PreTrainedModel", None)
    if cls is None:
        return
    save = cls.save_pretrained

    def probed_save_pretrained(self, save_directory, *args, **kwargs):
        _record_write(save_directory, "save_pretrained")
        return save(self, save_directory, *args, **kwargs)

    cls.save_pretrained = probed_save_pretrained


_WATCHED = {
    "torch": _patch_torch,
    "torch.distributed": _patch_distributed,
    "transformers.modeling_utils": _patch_transformers_modeling,
}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs a patch right after a watched module has executed."""

    def find_spec(self, fullname, path=None, target=None):
        patch = _WATCHED.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        original = loader.exec_module

        def exec_module(module):
            original(module)
            try:
                patch(module)
            except Exception:
                pass

        try:
            loader.exec_module = exec_module
        except Exception:
            return spec
        return spec


def _patch_open() -> None:
    """``open`` and ``io.open`` (the same function; scripts of the era did ``from io import
    open``, and pathlib calls ``io.open``)."""
    import io

    real_open = builtins.open

    def probed_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
            _record_write(file, "open")
        return real_open(file, mode, *args, **kwargs)

    builtins.open = probed_open
    io.open = probed_open


def _on_exception(kind, value, tb) -> None:
    _state["exit"] = 1 if _state["exit"] is None else _state["exit"]
    _emit(
        protocol.EXCEPTION,
        type=kind.__name__,
        message=str(value),
        traceback="".join(traceback.format_exception(kind, value, tb)),
        rank=_rank(),
    )
    _previous_excepthook(kind, value, tb)


_previous_excepthook = sys.excepthook


def _wrap_exit() -> None:
    real_exit = sys.exit

    def probed_exit(code=0):
        _state["exit"] = code
        return real_exit(code)

    sys.exit = probed_exit


def _at_exit() -> None:
    code = _state["exit"]
    if code is None:
        code = 0
    elif not isinstance(code, int):
        code = 1
    health = sentinels = None
    if _state.get("health") is not None:
        try:
            health = _state["health"].report()
            if os.environ.get(protocol.ENV_SENTINEL) == "1":
                sentinels = _state["health"].sentinel_report()
        except Exception:
            traceback.print_exc()
    _emit(
        protocol.EXIT,
        code=code,
        steps=_state["steps"],
        rank=_rank(),
        longest_wait=round(_state["wait"], 3),
        longest_wait_in=_state["wait_in"],
        checksum_seconds=round(_state["checksum_time"], 4),
        health=health,
        sentinels=sentinels,
    )


def _start() -> None:
    owner = os.environ.get(protocol.ENV_OWNER)
    is_rank = "LOCAL_RANK" in os.environ or os.environ.get(protocol.ENV_SINGLE) == "1"
    launcher = bool(sys.argv) and sys.argv[0] in ("-m", "-c")  # python -m accelerate...
    if not _DIR or not is_rank or launcher or (owner and owner != str(os.getpid())):
        return  # the launcher, or a helper process a rank started
    os.environ[protocol.ENV_OWNER] = str(os.getpid())
    _state["owner"] = os.getpid()
    _state["files"] = open(protocol.events_file(_DIR, os.getpid()), "a")  # noqa: SIM115
    stacks = open(protocol.stacks_file(_DIR, os.getpid()), "w")  # noqa: SIM115
    _state["stacks"] = stacks
    faulthandler.register(signal.SIGUSR1, file=stacks, all_threads=True)
    env = {
        k: os.environ.get(k)
        for k in (
            "RANK",
            "LOCAL_RANK",
            "WORLD_SIZE",
            "LOCAL_WORLD_SIZE",
            "GROUP_RANK",
            "MASTER_PORT",
        )
    }
    _emit(protocol.START, ppid=os.getppid(), argv=sys.argv, env=env, cwd=os.getcwd())
    sys.meta_path.insert(0, _AfterImport())
    _patch_open()
    _wrap_exit()
    sys.excepthook = _on_exception
    atexit.register(_at_exit)


try:
    _start()
except Exception:
    pass
_chain_next_sitecustomize()
