"""Launch N ranks through the real ``accelerate launch``, and make sure none outlives the run.

With at least N CUDA devices the ranks run one per GPU (``--multi_gpu``, NCCL). Otherwise the N
ranks run on the CPU with gloo: ``ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu
--num_processes N`` (``--cpu --num_processes N`` silently starts a single process). torchrun
starts every worker in a session of its own, so killing the launcher's process group is not
enough: on exit, timeout or Ctrl-C every descendant of the launcher and every process the probe
saw is killed.

``TORCH_DISTRIBUTED_DEBUG=DETAIL`` is deliberately not set: with torch 2.13 on gloo it makes a
DDP-wrapped model's first forward die with SIGSEGV on every rank (measured).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from patcher.launching import Machines, accelerate_command
from patcher.pids import alive, descendants, free_port, kill
from patcher.verify.probe import ddpfix_protocol as protocol

PROBE_DIR = Path(__file__).resolve().parent / "probe"


@dataclass(frozen=True)
class Plan:
    commands: list[list[str]]  # one launcher per simulated node
    envs: list[dict[str, str]]
    cwd: Path
    device: str  # "cuda" or "cpu"
    notice: str | None = None

    @property
    def command(self) -> list[str]:
        return self.commands[0]


@dataclass
class Outcome:
    returncode: int | None
    timed_out: bool
    seconds: float
    stacks: dict[int, str] = field(default_factory=dict)
    interrupted: bool = False
    launcher_lingered: bool = False


def cuda_device_count() -> int:
    """CUDA devices torch can use; without a driver's device node, 0 without importing torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "" or not (
        Path("/dev/nvidiactl").exists() or sys.platform != "linux"
    ):
        return 0
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def plan(
    script: Path,
    script_args: list[str],
    *,
    ranks: int,
    probe_dir: Path,
    cwd: Path,
    cuda_devices: int,
    nodes: int = 1,
    extra_env: dict[str, str] | None = None,
) -> Plan:
    """``nodes`` launchers of ``ranks`` processes each; with ``nodes`` > 1 they meet at a
    rendezvous on this machine, as the machines of a multi-node job would."""
    port = free_port()
    total = ranks * nodes
    use_cuda = cuda_devices >= total
    base = dict(os.environ)
    base.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "GLOO_SOCKET_IFNAME": "lo",
            "PYTHONUNBUFFERED": "1",
            protocol.ENV_DIR: str(probe_dir),
            "PYTHONPATH": os.pathsep.join(
                [str(PROBE_DIR), *filter(None, [base.get("PYTHONPATH")])]
            ),
        }
    )
    base.pop(protocol.ENV_OWNER, None)
    base.update(extra_env or {})
    if total == 1:
        base[protocol.ENV_SINGLE] = "1"
    notice = None
    if not use_cuda:
        base["ACCELERATE_USE_CPU"] = "1"
        if total > 1:
            base["CUDA_VISIBLE_DEVICES"] = ""
        have = f"{cuda_devices} CUDA device{'s' if cuda_devices != 1 else ''}"
        many = "s" if total != 1 else ""
        where = f" ({nodes} simulated nodes x {ranks})" if nodes > 1 else ""
        notice = (
            f"{have} for {total} rank{many}: simulating {total} rank{many}{where} on the CPU (gloo)"
        )
    commands, envs = [], []
    for node in range(nodes):
        machines = Machines(nodes=nodes, node_rank=node, main_ip="127.0.0.1", main_port=port)
        command = accelerate_command(processes=total, port=port, machines=machines)
        commands.append([*command, str(script), *script_args])
        env = dict(base)
        if use_cuda and nodes > 1:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(
                str(device) for device in range(node * ranks, (node + 1) * ranks)
            )
        envs.append(env)
    return Plan(commands, envs, cwd, "cuda" if use_cuda else "cpu", notice)


# --- process management -------------------------------------------------------------------


def probe_pids(probe_dir: Path) -> list[int]:
    found = (protocol.pid_of(path.name) for path in probe_dir.glob(protocol.EVENTS_GLOB))
    return [pid for pid in found if pid is not None]


def kill_all(processes: list[subprocess.Popen], probe_dir: Path) -> list[int]:
    """SIGKILL the launchers, their descendants and every probed process; returns who was hit."""
    targets = {*probe_pids(probe_dir)}
    for process in processes:
        targets |= {process.pid, *descendants(process.pid)}
    targets.discard(os.getpid())
    kill(targets)
    for process in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in targets):
        time.sleep(0.05)
    return sorted(targets)


def dump_stacks(probe_dir: Path, wait: float = 2.0) -> dict[int, str]:
    """Ask every probed process for its Python stacks (faulthandler on SIGUSR1)."""
    pids = [pid for pid in probe_pids(probe_dir) if alive(pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGUSR1)
    time.sleep(wait)
    stacks = {}
    for pid in pids:
        path = Path(protocol.stacks_file(str(probe_dir), pid))
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace").strip()
            if text:
                stacks[pid] = text
    return stacks


LINGER = 15.0  # seconds a launcher may outlive every rank before it is considered stuck


def _wait(
    processes: list[subprocess.Popen],
    start: float,
    timeout: float,
    probe_dir: Path,
    expected: int,
    outcome: Outcome,
) -> None:
    """Wait for the launchers. When every rank has exited but a launcher lingers (torchrun
    agents of simulated nodes wait in an exit barrier for each other), stop waiting after
    ``LINGER`` seconds: that is launcher teardown, not a hang of the script."""
    ranks_gone_at: float | None = None
    while True:
        codes = [process.poll() for process in processes]
        if all(code is not None for code in codes):
            outcome.returncode = next((code for code in codes if code != 0), 0)
            return
        now = time.monotonic()
        if now - start > timeout:
            raise subprocess.TimeoutExpired(processes[0].args, timeout)
        pids = probe_pids(probe_dir)
        if len(pids) >= expected and not any(alive(pid) for pid in pids):
            ranks_gone_at = ranks_gone_at or now
            if now - ranks_gone_at > LINGER:
                outcome.returncode = next((c for c in codes if c not in (0, None)), 0)
                outcome.launcher_lingered = True
                return
        time.sleep(0.2)


def run(plan: Plan, *, timeout: float, log: Path, probe_dir: Path, expected: int = 1) -> Outcome:
    """Run the plan to completion, timeout or Ctrl-C; no process survives this function."""
    start = time.monotonic()
    outcome = Outcome(returncode=None, timed_out=False, seconds=0.0)
    processes: list[subprocess.Popen] = []
    with open(log, "wb") as output:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            for command, env in zip(plan.commands, plan.envs):
                processes.append(
                    subprocess.Popen(
                        command,
                        cwd=plan.cwd,
                        env=env,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
            _wait(processes, start, timeout, probe_dir, expected, outcome)
        except subprocess.TimeoutExpired:
            outcome.timed_out = True
            outcome.stacks = dump_stacks(probe_dir)
        except KeyboardInterrupt:
            outcome.interrupted = True
            raise
        finally:
            kill_all(processes, probe_dir)
            signal.signal(signal.SIGTERM, previous)
            outcome.seconds = time.monotonic() - start
    return outcome


def _raise_interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt
