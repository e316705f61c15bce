"""What the probe and verify say to each other: environment, files, events. Stdlib only.

Read by both sides: the probe in every rank imports it as ``ddpfix_protocol`` (its directory is
first on the ranks' ``PYTHONPATH``), verify as ``patcher.verify.probe.ddpfix_protocol``.

Verify asks through the environment (the ``ENV_*`` names). Each rank appends events, one JSON
object a line, flushed at once, to ``<probe dir>/events-<pid>.jsonl`` (a killed rank still
leaves its evidence) and dumps its stacks on SIGUSR1 to ``stacks-<pid>.txt``. Every event has
``kind``, ``pid`` and ``time``; the other fields per kind are listed in :data:`EVENTS`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Optional

ENV_DIR = "DDPFIX_PROBE_DIR"  # where to write; a process without it records nothing
ENV_OWNER = "DDPFIX_PROBE_OWNER"  # the rank's pid, so helper processes it starts stay quiet
ENV_SINGLE = "DDPFIX_PROBE_SINGLE"  # "1": one process, no LOCAL_RANK, still a rank
ENV_HEALTH = "DDPFIX_HEALTH"  # "0": no training-health hooks
ENV_SENTINEL = "DDPFIX_HEALTH_SENTINEL"  # "1": also watch clamped -1 indices
ENV_MAX_STEPS = "DDPFIX_MAX_STEPS"  # stop every rank cleanly after this many optimizer steps
ENV_CHECKSUM = "DDPFIX_CHECKSUM"  # "0": no parameter digest after each step

EVENTS_GLOB = "events-*.jsonl"

START = "start"  # ppid, argv, env (RANK, LOCAL_RANK, WORLD_SIZE, ...), cwd
DIST_INIT_START = "dist_init_start"  # backend
DIST_INIT = "dist_init"  # rank, world_size, backend
WRITE = "write"  # path, how (torch.save, save_pretrained, open), rank
FIRST_STEP = "first_step"  # rank
REPLICA = "replica"  # step, checksum | error, tensors, values: after every optimizer step
STOPPED = "stopped"  # steps, rank: stopped by ENV_MAX_STEPS
EVAL_MODE = "eval_mode"  # module, rank
EXCEPTION = "exception"  # type, message, traceback, rank
EXIT = "exit"  # code, steps, rank, longest_wait(_in), checksum_seconds, health, sentinels

EVENTS = (
    START,
    DIST_INIT_START,
    DIST_INIT,
    WRITE,
    FIRST_STEP,
    REPLICA,
    STOPPED,
    EVAL_MODE,
    EXCEPTION,
    EXIT,
)


def events_file(directory: str, pid: int) -> str:
    return os.path.join(directory, f"events-{pid}.jsonl")


def stacks_file(directory: str, pid: int) -> str:
    return os.path.join(directory, f"stacks-{pid}.txt")


def pid_of(name: str) -> Optional[int]:  # noqa: UP045 - ranks may run an older Python
    """The pid in an events file's name, or None."""
    stem = os.path.basename(name).split(".", 1)[0]
    try:
        return int(stem.split("-", 1)[1])
    except (IndexError, ValueError):
        return None


def encode(kind: str, pid: int, **data: Any) -> str:
    """One event as its line (with the newline)."""
    data.update(kind=kind, pid=pid, time=time.time())
    return json.dumps(data, default=str) + "\n"


def decode(line: str) -> Optional[dict]:  # noqa: UP045
    """One line back into its event; None for a line cut short by a kill."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None
