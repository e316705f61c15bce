"""What the probe saw, one record per training process (read back from its events files,
whose format is :mod:`patcher.verify.probe.ddpfix_protocol`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from patcher.verify.probe import ddpfix_protocol as protocol


@dataclass
class Exception_:
    type: str
    message: str
    traceback: str
    time: float = 0.0

    @property
    def summary(self) -> str:
        return f"{self.type}: {self.message}".strip().rstrip(":")


@dataclass
class RankRecord:
    """One training process: its environment, distributed state, writes, fate."""

    pid: int
    env_rank: int | None = None
    env_local_rank: int | None = None
    env_world_size: int | None = None
    dist_rank: int | None = None
    dist_world_size: int | None = None
    backend: str | None = None
    writes: list[tuple[str, str]] = field(default_factory=list)
    exception: Exception_ | None = None
    exit_code: int | None = None  # None: the process never reached its exit (killed)
    steps: int | None = None
    eval_calls: int = 0
    longest_wait: float | None = None  # seconds in one collective or backward
    longest_wait_in: str | None = None
    health: list[dict[str, Any]] | None = None  # per-parameter facts (probe/ddpfix_health.py)
    sentinels: list[dict[str, Any]] | None = None  # clamped -1 indices seen (--health sentinel)
    stopped_after: int | None = None  # --max-steps stopped it after this many steps
    checksum: str | None = None  # digest of the trained parameters after its last step
    checksum_step: int | None = None  # the optimizer step (1-based) that digest followed
    checksum_error: str | None = None  # why the last digest could not be taken
    checksum_tensors: int | None = None
    checksum_values: int | None = None

    @property
    def rank(self) -> int:
        """The rank this process acted as: its process-group rank, else -1 (alone)."""
        return self.dist_rank if self.dist_rank is not None else -1

    @property
    def label(self) -> str:
        if self.dist_rank is not None:
            return f"rank {self.dist_rank}"
        where = f"LOCAL_RANK={self.env_local_rank}" if self.env_local_rank is not None else ""
        return f"pid {self.pid} ({where or 'no launcher rank'}, ran as rank -1)"

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "env": {
                "RANK": self.env_rank,
                "LOCAL_RANK": self.env_local_rank,
                "WORLD_SIZE": self.env_world_size,
            },
            "distributed": None
            if self.dist_rank is None
            else {
                "rank": self.dist_rank,
                "world_size": self.dist_world_size,
                "backend": self.backend,
            },
            "writes": [{"path": p, "how": how} for p, how in self.writes],
            "exception": None
            if self.exception is None
            else {"type": self.exception.type, "message": self.exception.message},
            "exit_code": self.exit_code,
            "optimizer_steps": self.steps,
            "eval_calls": self.eval_calls,
            "longest_wait": None
            if self.longest_wait is None
            else {"seconds": self.longest_wait, "in": self.longest_wait_in},
            "parameter_checksum": None
            if self.checksum_step is None
            else {
                "after_step": self.checksum_step,
                "blake2b": self.checksum,
                "tensors": self.checksum_tensors,
                "values": self.checksum_values,
                "error": self.checksum_error,
            },
        }


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def read_records(probe_dir: Path) -> list[RankRecord]:
    records = []
    for path in sorted(probe_dir.glob(protocol.EVENTS_GLOB)):
        pid = protocol.pid_of(path.name)
        if pid is None:
            continue
        record = RankRecord(pid=pid)
        for line in path.read_text(errors="replace").splitlines():
            event = protocol.decode(line)
            if event is not None:  # None: a line cut short by a kill
                apply_event(record, event)
        records.append(record)
    records.sort(key=lambda r: (r.rank, r.pid))
    return records


def apply_event(record: RankRecord, event: dict[str, Any]) -> None:
    kind = event.get("kind")
    if kind == protocol.START:
        env = event.get("env") or {}
        record.env_rank = _int(env.get("RANK"))
        record.env_local_rank = _int(env.get("LOCAL_RANK"))
        record.env_world_size = _int(env.get("WORLD_SIZE"))
    elif kind == protocol.DIST_INIT:
        record.dist_rank = _int(event.get("rank"))
        record.dist_world_size = _int(event.get("world_size"))
        record.backend = event.get("backend")
    elif kind == protocol.WRITE:
        entry = (str(event.get("path")), str(event.get("how")))
        if entry not in record.writes:
            record.writes.append(entry)
    elif kind == protocol.EXCEPTION and record.exception is None:
        record.exception = Exception_(
            str(event.get("type")),
            str(event.get("message")),
            str(event.get("traceback")),
            float(event.get("time") or 0.0),
        )
    elif kind == protocol.EXIT:
        record.exit_code = _int(event.get("code"))
        record.steps = _int(event.get("steps"))
        wait = event.get("longest_wait")
        record.longest_wait = float(wait) if isinstance(wait, (int, float)) else None
        record.longest_wait_in = event.get("longest_wait_in")
        health = event.get("health")
        record.health = health if isinstance(health, list) else None
        sentinels = event.get("sentinels")
        record.sentinels = sentinels if isinstance(sentinels, list) else None
    elif kind == protocol.STOPPED:
        record.stopped_after = _int(event.get("steps"))
    elif kind == protocol.EVAL_MODE:
        record.eval_calls += 1
    elif kind == protocol.REPLICA:  # one a step: the last one read wins
        checksum = event.get("checksum")
        record.checksum = checksum if isinstance(checksum, str) else None
        record.checksum_step = _int(event.get("step"))
        record.checksum_error = None if record.checksum else str(event.get("error") or "?")
        record.checksum_tensors = _int(event.get("tensors"))
        record.checksum_values = _int(event.get("values"))
