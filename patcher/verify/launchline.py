"""What the user's own launch line runs: ``run.sh`` or ``accelerate launch ... run.py ...``.

Launch scripts compute their command (``NUM_GPUS=$(nvidia-smi -L | wc -l)``,
``ACCUM=$(( 32 / NUM_GPUS / 8 ))``, backslash continuations, ``$1``), so instead of parsing
shell, verify runs it: in a copy of its directory, with stand-ins first on ``PATH`` for
``nvidia-smi`` (reporting N GPUs), the launchers (``accelerate``, ``torchrun``, ``deepspeed``,
``python -m torch.distributed.launch``, ``python script.py``) and the commands that would reach
the network (``pip``, ``wget``, ``curl``, ``git``). A shell script runs in a copy of its
directory and its siblings (for ``cd ../evaluator``), without large files. The launchers
record their arguments instead of starting anything; the first recorded launch of a Python
script is what verify runs.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

LAUNCHERS = ("accelerate", "torchrun", "deepspeed", "python", "python3")
_QUIET = ("pip", "pip3", "wget", "curl", "git", "conda")
RECORD_TIMEOUT = 60.0
_LARGE = 1 << 20


def _skip(directory: str, names: list[str]) -> set[str]:
    """Version control and files over 1 MiB (datasets, checkpoints) are not copied."""
    skipped = {".git", "__pycache__"}
    for name in names:
        path = Path(directory, name)
        if path.is_file() and not path.is_symlink() and path.stat().st_size > _LARGE:
            skipped.add(name)
    return skipped


#: Launcher options that take a value (so the value is not mistaken for the script).
_VALUED = {
    "--num_processes",
    "--num-processes",
    "--num_machines",
    "--num-machines",
    "--machine_rank",
    "--machine-rank",
    "--main_process_ip",
    "--main-process-ip",
    "--main_process_port",
    "--main-process-port",
    "--mixed_precision",
    "--mixed-precision",
    "--config_file",
    "--config-file",
    "--gpu_ids",
    "--gpu-ids",
    "--dynamo_backend",
    "--nproc_per_node",
    "--nproc-per-node",
    "--nnodes",
    "--node_rank",
    "--node-rank",
    "--master_addr",
    "--master-addr",
    "--master_port",
    "--master-port",
    "--rdzv_backend",
    "--rdzv-backend",
    "--rdzv_endpoint",
    "--rdzv-endpoint",
    "--rdzv_id",
    "--rdzv-id",
    "--num_gpus",
    "--num-gpus",
    "--include",
    "--exclude",
    "--hostfile",
    "-m",
}
_MODULE_LAUNCHERS = (
    "torch.distributed.launch",
    "torch.distributed.run",
    "accelerate.commands.launch",
    "deepspeed",
)


class LaunchLineError(ValueError):
    """The launch line ran no Python script, or could not be run."""


@dataclass
class Launch:
    """One recorded launch: the script and its own arguments, and how it was launched."""

    script: Path
    args: list[str]
    launcher: list[str]  # the launcher's own words (``accelerate launch --num_processes 8``)
    processes: int | None = None  # what the launch line asked for, when it says
    others: list[str] = field(default_factory=list)  # further launches, not verified

    @property
    def shown(self) -> str:
        return shlex.join([*self.launcher, str(self.script), *self.args])


_STUB = """#!{python}
# ddpfix verify stand-in: records the launch instead of running it.
import json, os, sys
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
gpus = int(os.environ["DDPFIX_STANDIN_GPUS"])
if name == "nvidia-smi":
    query = next((a.split("=", 1)[1] for a in args if a.startswith("--query-gpu=")), None)
    if query is None:
        for i in range(gpus):
            print(f"GPU {{i}}: NVIDIA stand-in (UUID: GPU-{{i:08d}})")
        sys.exit(0)
    units = "nounits" not in " ".join(args)
    for i in range(gpus):
        values = []
        for field in query.split(","):
            field = field.strip()
            if field == "index":
                values.append(str(i))
            elif field == "count":
                values.append(str(gpus))
            elif field == "name":
                values.append("NVIDIA stand-in")
            elif field.startswith("memory"):
                values.append("81920 MiB" if units else "81920")
            else:
                values.append("0")
        print(", ".join(values))
    sys.exit(0)
if name in {quiet!r}:
    print(f"[ddpfix verify] skipped: {{name}} {{' '.join(args)}}", file=sys.stderr)
    sys.exit(0)
if name.startswith("python"):
    if args[:1] == ["-c"] and len(args) > 1 and "device_count" in args[1]:
        print(gpus)
        sys.exit(0)
    runs_script = any(a.endswith(".py") for a in args[:1])
    launcher_module = len(args) > 1 and args[0] == "-m" and args[1].startswith({modules!r})
    if not (runs_script or launcher_module):
        os.execv({python!r}, [{python!r}, *args])
with open(os.environ["DDPFIX_LAUNCH_RECORD"], "a") as out:
    out.write(json.dumps({{"name": name, "args": args, "cwd": os.getcwd()}}) + "\\n")
"""


def _stubs(directory: Path) -> None:
    text = _STUB.format(python=sys.executable, quiet=_QUIET, modules=_MODULE_LAUNCHERS)
    for name in ("nvidia-smi", *LAUNCHERS, *_QUIET):
        path = directory / name
        path.write_text(text)
        path.chmod(0o755)


def record(
    command: list[str], *, cwd: Path, gpus: int, shell_args: list[str] | None = None
) -> list[dict]:
    """Run ``command`` (a launcher command line) or, with ``shell_args``, the shell script
    ``command[0]`` in a copy of ``cwd``; the launches it made, with their working directories
    mapped back to the user's tree."""
    with tempfile.TemporaryDirectory(prefix="ddpfix-launchline-") as tmp:
        root = Path(tmp)
        bin_dir, tree = root / "bin", root / "tree"
        bin_dir.mkdir()
        _stubs(bin_dir)
        copy = tree / cwd.name
        if shell_args is not None:
            # A shell script may write (mkdir, tee): it runs in a copy of its directory and of
            # its siblings (`cd ../evaluator`), without large files: nothing it launches runs.
            for part in cwd.parent.iterdir():
                if part.is_dir() and not part.is_symlink():
                    shutil.copytree(part, tree / part.name, symlinks=True, ignore=_skip)
                elif part.is_file() and part.stat().st_size <= _LARGE:
                    tree.mkdir(exist_ok=True)
                    shutil.copy2(part, tree / part.name)
        else:  # a launcher command only reaches the stand-ins
            copy = cwd
        records = root / "launches.jsonl"
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "DDPFIX_LAUNCH_RECORD": str(records),
            "DDPFIX_STANDIN_GPUS": str(gpus),
            "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in range(gpus)),
        }
        if shell_args is not None:
            argv = ["bash", str(copy / Path(command[0]).name), *shell_args]
        else:
            argv = ["bash", "-c", 'exec "$@"', "ddpfix", *command]
        try:
            done = subprocess.run(
                argv, cwd=copy, env=env, capture_output=True, text=True, timeout=RECORD_TIMEOUT
            )
        except subprocess.TimeoutExpired:
            raise LaunchLineError(
                f"{command[0]} did not finish within {RECORD_TIMEOUT:g} s with launchers stood in"
            ) from None
        found = []
        if records.exists():
            for line in records.read_text().splitlines():
                entry = json.loads(line)
                here = Path(entry["cwd"])
                if shell_args is not None and (here == tree or tree in here.parents):
                    entry["cwd"] = str(cwd.parent / here.relative_to(tree))
                found.append(entry)
        if not found:
            said = (done.stderr.strip().splitlines() or [""])[-1]
            detail = f"; it exited with {done.returncode}" + (f": {said}" if said else "")
            raise LaunchLineError(f"{shlex.join(command)} launched no Python script{detail}")
        return found


def _split(words: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(launcher options, script, script args) of one launcher's argument list."""
    for i, word in enumerate(words):
        if word.endswith(".py") and not (i and words[i - 1] in _VALUED):
            return words[:i], word, words[i + 1 :]
    return words, None, []


def _processes(options: list[str]) -> int | None:
    for flag in (
        "--num_processes",
        "--num-processes",
        "--nproc_per_node",
        "--nproc-per-node",
        "--num_gpus",
        "--num-gpus",
    ):
        for i, word in enumerate(options):
            value = word.partition("=")[2] if word.startswith(f"{flag}=") else None
            if word == flag and i + 1 < len(options):
                value = options[i + 1]
            if value is not None and value.isdigit():
                return int(value)
    return None


def parse(records: list[dict]) -> Launch:
    """The first recorded launch of a Python script; later ones are listed in ``others``."""
    launches: list[Launch] = []
    for entry in records:
        options, script, args = _split(entry["args"])
        if script is None:
            continue
        name = entry["name"]
        words = [name, *options]
        path = Path(script)
        if not path.is_absolute():
            path = Path(entry["cwd"]) / path
        launches.append(Launch(path.resolve(), args, words, _processes(options)))
    if not launches:
        raise LaunchLineError("the launch line started no Python script")
    first = launches[0]
    first.others = [launch.shown for launch in launches[1:]]
    return first


def read(target: Path | list[str], *, gpus: int, shell_args: Sequence[str] = ()) -> Launch:
    """The launch of ``target``: a shell script (run with ``shell_args``) or a command line."""
    if isinstance(target, Path):
        entries = record([str(target)], cwd=target.parent, gpus=gpus, shell_args=list(shell_args))
    else:
        entries = record(list(target), cwd=Path.cwd(), gpus=gpus)
    return parse(entries)
