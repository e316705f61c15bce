"""End-to-end ``ddpfix verify``: real accelerate launches of 2 CPU ranks (gloo), no GPU needed.

The bundled examples are legacy-style scripts written for ddpfix; the upstream CodeXGLUE scripts
are verified the same way in test_upstream_verify.py when a checkout is available.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DEFECT = ROOT / "examples" / "defect_detection" / "run.py"
CLONE = ROOT / "examples" / "clone_detection" / "run.py"
CASES = Path(__file__).resolve().parent / "verify_cases"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ddpfix-cache")


def verify(cache: Path, *args: str | os.PathLike[str], timeout: float = 600) -> tuple[int, dict]:
    env = {**os.environ, "DDPFIX_CACHE": str(cache)}
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "verify", "--format", "json", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report (exit {run.returncode}):\n{run.stdout}\n{run.stderr}")
    return run.returncode, report


def _running(pid: int, wait: float = 5.0) -> bool:
    """Whether ``pid`` still runs (a zombie waiting to be reaped does not), after ``wait`` s."""
    deadline = time.monotonic() + wait
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        if state == "Z" or time.monotonic() > deadline:
            return state != "Z"
        time.sleep(0.1)


def _digest(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_patched_example_passes_and_user_files_stay(cache: Path) -> None:
    before = _digest(DEFECT.parent)
    code, report = verify(cache, DEFECT)
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == "example-defect-detection"
    assert report["identified_by"] == "fingerprint"
    assert report["mode"] == "patched" and report["fixes_applied"] > 0
    assert report["device"] == "cpu"
    assert report["notice"] == "0 CUDA devices for 2 ranks: simulating 2 ranks on the CPU (gloo)"
    assert [c["check"] for c in report["checks"] if c["ok"]] == [
        "ranks joined",
        "no hang",
        "every rank exited 0",
        "replicas in sync",
        "evaluation ran",
        "checkpoints",
        "results complete",
        "training health",
    ]
    assert "--multi_gpu" in report["command"] and "--cpu" not in report["command"]
    ranks = sorted(p["distributed"]["rank"] for p in report["processes"])
    assert ranks == [0, 1]
    digests = {p["parameter_checksum"]["blake2b"] for p in report["processes"]}
    assert len(digests) == 1 and None not in digests  # bit-identical under gloo
    assert _digest(DEFECT.parent) == before


@pytest.mark.parametrize(
    ("mode", "verdict"),
    [
        (
            "nowrap",
            "FAIL: replicas in sync: rank 0 and rank 1 hold different parameters after their last "
            "optimizer step (step 8 vs step 8): the model is not wrapped in "
            "DistributedDataParallel (each rank trains its own)",
        ),
        (
            "gated",
            "FAIL: replicas in sync: rank 0 took 8 optimizer steps and rank 1 none: ranks step on "
            "different iterations",
        ),
        ("ddp", "PASS: all 8 checks passed"),
    ],
)
def test_ranks_that_train_their_own_models_fail_replicas_in_sync(
    cache: Path, mode: str, verdict: str
) -> None:
    # A DistributedSampler and init_process_group, and every other check passes: only the
    # parameters tell that each rank trained a model of its own (or stepped alone).
    code, report = verify(cache, CASES / "unwrapped.py", "--", "--mode", mode)
    assert report["verdict"].startswith(verdict), report["verdict"] + "\n" + report["log_tail"]
    assert code == (0 if mode == "ddp" else 1)
    assert [c["check"] for c in report["checks"] if not c["ok"]] == (
        [] if mode == "ddp" else ["replicas in sync"]
    )


def test_original_example_fails_with_the_cause(cache: Path) -> None:
    code, report = verify(cache, DEFECT, "--original")
    assert code == 1
    assert report["mode"] == "original" and report["fixes_applied"] == 0
    assert report["verdict"] == (
        "FAIL: ranks joined: 2 processes, torch.distributed never initialised: every process "
        "ran as rank -1 (the script does not read LOCAL_RANK)"
    )
    processes = report["processes"]
    assert all(p["optimizer_steps"] for p in processes)  # each trained alone
    # Both "rank -1" processes save the same files; when they collide (a makedirs race, a
    # torch.load of the other's half-written model.bin), the loser dies before it writes.
    silent = [p for p in processes if not p["writes"]]
    assert len(silent) < 2 and all(p["exception"] for p in silent), silent


def test_second_target_patched_passes_and_seed_fix_fails(cache: Path) -> None:
    code, report = verify(cache, CLONE)
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == "example-clone-detection"
    # The popular sed fix: read LOCAL_RANK and widen the gate, nothing else.
    code, seed = verify(cache, CLONE, "--select", "PRT,DDP001,DDP002,DDP003")
    assert code == 1
    assert seed["verdict"].startswith("FAIL: every rank exited 0: rank 0 raised RuntimeError")
    assert "see DDP004" in seed["verdict"]


def test_original_second_target_names_the_import_error(cache: Path) -> None:
    code, report = verify(cache, CLONE, "--original", "--target", "example-clone-detection")
    assert code == 1
    assert report["identified_by"] == "--target"
    assert report["verdict"] == (
        "FAIL: ranks joined: rank 0 failed at import: No module named 'tensorboardX' "
        "(pip install tensorboardX)"
    )


def test_a_hang_is_killed_with_stacks_and_no_survivors(cache: Path, tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    started = time.monotonic()
    code, report = verify(
        cache, CASES / "collective.py", "--timeout", "8", "--keep", keep, "--", "--mode", "hang"
    )
    assert code == 1
    assert report["seconds"] < 8 + 10  # the whole group killed within the timeout + 10 s
    assert time.monotonic() - started < 8 + 40
    assert report["target"] is None
    assert report["verdict"].startswith("FAIL: no hang: still running after 8 s, killed")
    assert "barrier" in "".join(report["stacks"].values())
    assert report["stacks"]
    assert not [pid for pid in map(int, report["stacks"]) if _running(pid)]


def test_a_crash_names_the_rank(cache: Path) -> None:
    code, report = verify(cache, CASES / "collective.py", "--", "--mode", "crash")
    assert code == 1
    assert report["verdict"] == (
        "FAIL: every rank exited 0: rank 1 raised RuntimeError: rank 1 lost its data"
    )


def test_ctrl_c_leaves_no_process(cache: Path, tmp_path: Path) -> None:
    keep = tmp_path / "kept"
    env = {**os.environ, "DDPFIX_CACHE": str(cache)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "patcher",
            "verify",
            str(CASES / "collective.py"),
            "--keep",
            str(keep),
            "--format",
            "json",
            "--",
            "--mode",
            "hang",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    probe = keep / "probe"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(probe.glob("events-*.jsonl"))) < 2:
        time.sleep(0.2)
    pids = [int(p.stem.split("-")[1]) for p in probe.glob("events-*.jsonl")]
    assert len(pids) == 2
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=90) == 130  # a bound for a loaded machine, not a timing
    assert not [pid for pid in pids if _running(pid)]
    assert process.stderr is not None
    assert b"interrupted" in process.stderr.read()


def test_unknown_script_gets_a_clear_message(cache: Path, tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("print('hello')\n")
    run = subprocess.run(
        [sys.executable, "-m", "patcher", "verify", str(script)],
        capture_output=True,
        text=True,
        env={**os.environ, "DDPFIX_CACHE": str(cache)},
    )
    assert run.returncode == 2
    assert "cannot tell which known script train.py is" in run.stderr
    assert "pass --target NAME" in run.stderr


def test_probe_chains_an_existing_sitecustomize(cache: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    marks = tmp_path / "marks"
    marks.mkdir()
    (theirs / "sitecustomize.py").write_text(
        f"import os\nopen(os.path.join({str(marks)!r}, str(os.getpid())), 'w').close()\n"
    )
    env = {**os.environ, "DDPFIX_CACHE": str(cache), "PYTHONPATH": str(theirs)}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "patcher",
            "verify",
            "--format",
            "json",
            str(CASES / "collective.py"),
            "--",
            "--mode",
            "ok",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    report = json.loads(run.stdout)
    assert run.returncode == 0, report["verdict"]
    ranks = {str(p["pid"]) for p in report["processes"]}
    assert ranks <= {p.name for p in marks.iterdir()}  # their sitecustomize ran in every rank


def test_two_simulated_nodes_one_writer_and_the_local_rank_double_write(cache: Path) -> None:
    code, report = verify(cache, CLONE, "--nodes", "2", "--gpus", "1")
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["nodes"] == 2 and len(report["commands"]) == 2
    assert "2 simulated nodes x 1" in report["notice"]
    assert {p["env"]["LOCAL_RANK"] for p in report["processes"]} == {0}  # rank 0 of each node
    # Patched for one node only (gates on local rank 0): both nodes' rank 0 write the outputs.
    code, single_node = verify(
        cache, CLONE, "--nodes", "2", "--gpus", "1", "--ignore", "DDP008", "--timeout", "120"
    )
    assert code == 1
    verdict = single_node["verdict"]
    assert any(sign in verdict for sign in ("written by 2 processes", "two writers?")), verdict


def test_a_rank_killed_mid_run_is_named_and_nothing_survives(cache: Path) -> None:
    code, report = verify(
        cache, CASES / "collective.py", "--timeout", "60", "--", "--mode", "killed"
    )
    assert code == 1
    assert report["verdict"].startswith("FAIL: every rank exited 0: rank 1 was killed")
    assert not [p["pid"] for p in report["processes"] if _running(p["pid"])]


def test_an_unwritable_output_directory_has_a_clear_cause(cache: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocked = "/proc/ddpfix-cannot-write-here"  # not writable even for root
    else:
        blocked = str(tmp_path / "ro")
        Path(blocked).mkdir(mode=0o555)
    code, report = verify(
        cache, CASES / "collective.py", "--", "--mode", "write", "--path", blocked
    )
    assert code == 1
    assert "rank 0 raised" in report["verdict"]
    assert "FileNotFoundError" in report["verdict"] or "PermissionError" in report["verdict"]
    assert blocked in report["verdict"]


def test_a_codegpt_command_runs_on_a_tiny_gpt2(cache: Path) -> None:
    """The family comes from the user's own command (``--model_type=gpt2`` and a CodeGPT id),
    sizes are shrunk, unknown-to-verify flags stay, and the model id becomes the tiny GPT-2."""
    codegpt = "microsoft/CodeGPT-small-java-adaptedGPT2"
    code, report = verify(
        cache,
        CLONE,
        "--",
        "--model_type=gpt2",
        f"--model_name_or_path={codegpt}",
        "--block_size",
        "1024",
        "--train_batch_size",
        "8",
    )
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["family"] == "gpt2"
    args = report["script_args"]
    assert "--model_type=gpt2" in args and not any(codegpt in a for a in args)
    assert args[args.index("--block_size") + 1] == "32"
    assert args[args.index("--train_batch_size") + 1] == "2"
    assert [a for a in args if a.startswith("--model_name_or_path")] == [
        f"--model_name_or_path={Path(a.partition('=')[2])}"
        for a in args
        if a.startswith("--model_name_or_path") and "gpt2-" in a
    ]
    assert report["command"][-len(args) :] == args


def test_a_users_run_sh_verifies_with_its_own_flags(cache: Path, tmp_path: Path) -> None:
    """An auto-scaling run.sh (GPU count from nvidia-smi, accumulation from shell arithmetic,
    the model id from $1) is read with stand-in launchers and run with its own flags."""
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    (code_dir / "run.sh").write_text(
        "#!/bin/bash\n"
        "NUM_GPUS=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)\n"
        "ACCUM_STEPS=$(( 16 / NUM_GPUS / 8 ))\n"
        "MODEL=${1:-microsoft/codebert-base}\n"
        "mkdir -p saved_models\n"
        f"accelerate launch --multi_gpu --num_processes $NUM_GPUS {CLONE} \\\n"
        "    --output_dir=./saved_models --model_type=gpt2 --model_name_or_path=$MODEL \\\n"
        "    --do_train --do_eval --do_test --train_data_file=../dataset/train.txt \\\n"
        "    --eval_data_file=../dataset/valid.txt --test_data_file=../dataset/test.txt \\\n"
        "    --epoch 2 --block_size 1024 --train_batch_size 8 --eval_batch_size 16 \\\n"
        "    --evaluate_during_training --seed 7 2>&1 | tee train.log\n"
    )
    code, report = verify(
        cache, code_dir / "run.sh", "--", "microsoft/CodeGPT-small-java-adaptedGPT2"
    )
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["launch_line"]["script"] == str(CLONE)
    assert report["launch_line"]["processes"] == 2
    assert report["family"] == "gpt2"  # from the user's --model_type and $1
    args = report["script_args"]
    assert args[args.index("--seed") + 1] == "7"  # the user's own value stays
    assert args[args.index("--block_size") + 1] == "32"
    assert sorted(p.name for p in code_dir.iterdir()) == ["run.sh"]  # nothing written here


def test_a_launcher_command_after_double_dash(cache: Path) -> None:
    code, report = verify(
        cache,
        "--",
        "torchrun",
        "--nproc_per_node=8",
        CLONE,
        "--output_dir=out",
        "--model_name_or_path=microsoft/codebert-base",
        "--do_train",
        "--do_eval",
        "--do_test",
    )
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["launch_line"]["command"].startswith("torchrun --nproc_per_node=8 ")
    assert report["family"] == "roberta" and report["ranks"] == 2


def test_a_fork_that_renames_its_predictions_file_passes(cache: Path, tmp_path: Path) -> None:
    """A fork of the clone example writes ``predictions_.txt``: verify finds the results file
    from what the script wrote and checks it as the example's ``predictions.txt``."""
    fork = tmp_path / "fork"
    fork.mkdir()
    for name in ("run.py", "model.py"):
        (fork / name).write_text((CLONE.parent / name).read_text())
    source = (fork / "run.py").read_text()
    assert source.count('"predictions.txt"') == 1
    (fork / "run.py").write_text(source.replace('"predictions.txt"', '"predictions_.txt"'))
    code, report = verify(cache, fork / "run.py")
    assert code == 0, report["verdict"] + "\n" + report["log_tail"]
    assert report["target"] == "example-clone-detection"
    assert report["identified_by"] == "fingerprint"
    results = next(c for c in report["checks"] if c["check"] == "results complete")
    assert results["evidence"].startswith(
        "predictions_.txt (the script's name for predictions.txt); "
        "predictions_.txt: 12 of 12 lines, in order (rank 0)"
    )
