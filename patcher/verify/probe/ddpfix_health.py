"""Training-health recording for the verify probe (imported by sitecustomize once torch is).

Global hooks only, nothing in the user's script changes: every parameter registered on any
module is remembered with the user-code line that created it; every optimizer's construction is
remembered likewise; before each optimizer step the gradient of every parameter is classified
(None, exactly zero, non-zero); at exit one ``health`` event lists per parameter what happened.
The harness turns that into findings (patcher/verify/health.py).
"""

from __future__ import annotations

import gc
import os
import sysconfig
import traceback

TYPE_CHECKING = False  # for mypy only: the probe imports nothing it can do without
if TYPE_CHECKING:
    from typing import Any

_LIBRARY_DIRS = (
    *(
        os.path.realpath(p)
        for p in {
            sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")
        }
        if p
    ),
    os.path.dirname(os.path.realpath(__file__)),
)

_params: dict[int, dict[str, Any]] = {}  # id(param) -> record
_optimizers: list[dict[str, Any]] = []  # records of constructed optimizers
installed = False  # set by install()
_state = {"seq": 0, "steps": 0, "snapshots": False}


def _site():
    """The innermost line of user code on the stack (not torch, not the standard library)."""
    for frame in reversed(traceback.extract_stack()):
        path = os.path.realpath(frame.filename)
        if frame.filename.startswith("<") or path.startswith(_LIBRARY_DIRS):
            continue
        return f"{os.path.basename(path)}:{frame.lineno}"
    return "?"


def _next_seq():
    _state["seq"] += 1
    return _state["seq"]


def _track(param, site):
    if param is None or id(param) in _params or getattr(param, "is_meta", False):
        return  # meta tensors are placeholders that loading replaces
    try:
        _params[id(param)] = {
            "param": param,  # kept alive: the script's model may be gone when the report runs
            "site": site,
            "seq": _next_seq(),
            "optimizers_before": len(_optimizers),
            "none": 0,
            "zero": 0,
            "nonzero": 0,
            "trailing_zero": 0,
            "snapshot": None,
            "changed": False,
        }
    except TypeError:
        pass


def _param(record):
    return record["param"]


def _on_parameter(module, name, param):
    _track(param, _site())
    return None


def _before_step(optimizer, args, kwargs):
    import torch

    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for group in optimizer.param_groups:  # created where registration hooks were bypassed
        for param in group["params"]:
            _track(param, "?")
    for record in _params.values():
        if id(_param(record)) in in_optimizer:
            record["in_optimizer"] = True
    if not _state["snapshots"]:
        _state["snapshots"] = True
        _names(list(_params.values()))  # while the modules are certainly alive
        for record in _params.values():
            param = _param(record)
            if param.requires_grad:
                record["snapshot"] = param.detach().clone()
    with torch.no_grad():
        for record in _params.values():
            param = _param(record)
            if not param.requires_grad:
                continue
            snapshot = record["snapshot"]
            if snapshot is not None and not torch.equal(snapshot, param.detach()):
                # changed by a step (checked as it trains: scripts reload checkpoints later)
                record["changed"], record["snapshot"] = True, None
            grad = param.grad
            if grad is None:
                record["none"] += 1
            elif bool(torch.count_nonzero(grad)):
                record["nonzero"] += 1
                record["trailing_zero"] = 0
            else:
                record["zero"] += 1
                record["trailing_zero"] += 1


def _module_maps():
    """Who owns each parameter, and each module's parent, from the live modules."""
    import warnings

    import torch

    owners: dict[int, tuple[Any, str]] = {}
    parents: dict[int, tuple[Any, str]] = {}
    module_type = torch.nn.Module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated proxies in torch warn on isinstance
        modules = [obj for obj in gc.get_objects() if isinstance(obj, module_type)]
    for obj in modules:
        for name, param in obj._parameters.items():
            if param is not None:
                owners.setdefault(id(param), (obj, name))
        for name, child in obj._modules.items():
            if child is not None:
                parents.setdefault(id(child), (obj, name))
    return owners, parents


def _name(param, owners, parents, holders):
    """``Model.encoder.layer.0.weight``; a module held by a plain object: ``Trainer.lm_head``."""
    owner = owners.get(id(param))
    if owner is None:
        return f"<parameter of shape {tuple(param.shape)}>"
    module, name = owner
    path = [name]
    while id(module) in parents:
        module, name = parents[id(module)]
        path.append(name)
    root = holders.get(id(module)) or type(module).__name__
    return ".".join([root, *reversed(path)])


def _names(records):
    owners, parents = _module_maps()
    roots = []
    for record in records:
        owner = owners.get(id(_param(record)))
        module = owner[0] if owner else None
        while module is not None and id(module) in parents:
            module = parents[id(module)][0]
        if module is not None:
            roots.append(module)
    holders = _holders(roots)
    for record in records:
        record["name"] = _name(_param(record), owners, parents, holders)


def _holders(modules_without_parent):
    """``Class.attr`` of plain (non-Module) objects that hold each root module."""
    import types
    import warnings

    import torch

    wanted = {id(m): m for m in modules_without_parent}
    found: dict[int, str] = {}
    skip = (torch.nn.Module, types.ModuleType, type, types.FunctionType)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated proxies in torch warn on inspection
        for obj in gc.get_objects():
            if isinstance(obj, skip):
                continue
            try:
                attributes = vars(obj)
            except TypeError:
                continue
            if not isinstance(attributes, dict):
                continue
            for key, value in attributes.items():
                if id(value) in wanted and wanted[id(value)] is value:
                    found.setdefault(id(value), f"{type(obj).__name__}.{key}")
    return found


def report():
    """Per-parameter facts for the exit event (only parameters that took part in training)."""
    import torch

    entries: list[dict[str, Any]] = []
    if not _state["snapshots"]:
        return entries
    unnamed = [r for r in _params.values() if "name" not in r]
    if unnamed:
        _names(unnamed)
    for record in _params.values():
        param = _param(record)
        if not param.requires_grad:
            continue
        if record["snapshot"] is not None:
            with torch.no_grad():  # the last step's update is seen only now
                if not torch.equal(record["snapshot"], param.detach()):
                    record["changed"] = True
        entries.append(
            {
                "name": record["name"],
                "site": record["site"],
                "in_optimizer": bool(record.get("in_optimizer")),
                "created_after_optimizer": record["optimizers_before"] > 0,
                "optimizer_site": _optimizers[0]["site"] if _optimizers else None,
                "none": record["none"],
                "zero": record["zero"],
                "nonzero": record["nonzero"],
                "trailing_zero": record["trailing_zero"],
                "changed": record["changed"],
            }
        )
    return entries


def install(torch):
    from torch.nn.modules.module import register_module_parameter_registration_hook
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    register_module_parameter_registration_hook(_on_parameter)
    register_optimizer_step_pre_hook(_before_step)
    init = torch.optim.Optimizer.__init__

    def probed_init(self, *args, **kwargs):
        if not getattr(self, "_ddpfix_seen", False):
            self._ddpfix_seen = True
            _optimizers.append({"site": _site(), "seq": _next_seq()})
        return init(self, *args, **kwargs)

    torch.optim.Optimizer.__init__ = probed_init
    global installed
    installed = True


# --- SENTINEL (opt-in): indices clamped from -1 to 0 that reach the loss ----------------------

# (site, id(weight)) -> {"site", "weight", "positions", "reaches_loss"}
_sentinels: dict[tuple[str, int], dict[str, Any]] = {}


def _clamp_min(func, args, kwargs):
    import torch

    if func in (torch.clamp, torch.Tensor.clamp, torch.Tensor.clamp_):
        low = kwargs.get("min", args[1] if len(args) > 1 else None)
        return low
    if func in (torch.clamp_min, torch.Tensor.clamp_min, torch.Tensor.clamp_min_):
        return kwargs.get("min", args[1] if len(args) > 1 else None)
    return None


def _sentinel_mode():
    import torch
    from torch.overrides import TorchFunctionMode

    class SentinelMode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            result = func(*args, **kwargs)
            try:
                source = args[0] if args else None
                if (
                    isinstance(source, torch.Tensor)
                    and not source.is_floating_point()
                    and _clamp_min(func, args, kwargs) == 0
                ):
                    negative = source < 0 if func is not torch.Tensor.clamp_ else None
                    if negative is not None and bool(negative.any()):
                        result._ddpfix_sentinel = negative
                elif func is torch.nn.functional.embedding:
                    indices, weight = args[0], args[1]
                    mask = getattr(indices, "_ddpfix_sentinel", None)
                    if mask is not None and isinstance(result, torch.Tensor):
                        _watch(result, mask, weight)
            except Exception:
                pass
            return result

    return SentinelMode()


def _watch(output, mask, weight):
    key = (_site(), id(weight))
    entry = _sentinels.setdefault(
        key,
        {"site": key[0], "weight": weight, "positions": 0, "reaches_loss": False},
    )
    entry["positions"] += int(mask.sum())
    if output.requires_grad:

        def check(grad):
            if bool(grad[mask].abs().sum() > 0):
                entry["reaches_loss"] = True
            return grad

        output.register_hook(check)


def sentinel_report():
    weights = {id(_param(r)): r.get("name") for r in _params.values()}
    return [
        {
            "name": weights.get(id(e["weight"])) or "an embedding",
            "site": e["site"],
            "positions": e["positions"],
            "reaches_loss": e["reaches_loss"],
        }
        for e in _sentinels.values()
    ]


def install_sentinel():
    mode = _sentinel_mode()
    mode.__enter__()  # stays on for the life of the process (opt-in: it slows every op)
    _state["sentinel_mode"] = mode
