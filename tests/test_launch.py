"""`ddpfix plan` and `ddpfix launch`: exact batch arithmetic, refusals, a real 2-rank launch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from clihelp import ddpfix
from patcher.batching import Split, exact_split, nearest_exact, table

CASES = Path(__file__).resolve().parent / "verify_cases"


@pytest.mark.parametrize(
    ("global_batch", "ranks", "per_gpu", "expected"),
    [
        (64, 2, 16, Split(2, 16, 2)),
        (64, 4, 16, Split(4, 16, 1)),
        (64, 3, 16, None),
        (64, 2, None, Split(2, 32, 1)),
        (64, 3, None, None),
        (48, 3, 8, Split(3, 8, 2)),
    ],
)
def test_exact_split(global_batch, ranks, per_gpu, expected) -> None:
    assert exact_split(global_batch, ranks, per_gpu) == expected


def test_nearest_exact_options_multiply_out() -> None:
    options = nearest_exact(64, 3, 16)
    assert options == [Split(3, 16, 1), Split(3, 16, 2)]
    assert [o.global_batch for o in options] == [48, 96]
    assert all(o.global_batch % 3 == 0 for o in nearest_exact(100, 3, None))


def test_table_marks_the_silent_rounding() -> None:
    rows = {r[0]: r for r in table(64, 16, 8)}
    assert rows[2] == (2, 16, 2, 64, True)
    assert rows[3] == (3, 16, 1, 48, False)  # the old launcher's "64 (approx)"
    assert rows[4] == (4, 16, 1, 64, True)


def test_plan_command() -> None:
    run = ddpfix("plan", "--global-batch", "64", "--per-gpu-batch", "16")
    assert run.code == 0
    assert "no (48)" in run.stdout and "yes" in run.stdout


def test_launch_refuses_an_inexact_split_and_lists_options(tmp_path: Path) -> None:
    run = ddpfix(
        "launch",
        CASES / "batch_echo.py",
        "--global-batch",
        "64",
        "--per-gpu-batch",
        "16",
        "--gpus",
        "3",
        "--dry-run",
        "--",
        "--output_dir",
        tmp_path,
    )
    assert run.code == 2
    assert "no exact split of a global batch of 64 over 3 rank(s) with 16 per GPU" in run.stderr
    assert "--global-batch 48 --per-gpu-batch 16 (16 x 3 x 1)" in run.stderr
    loud = ddpfix(
        "launch",
        CASES / "batch_echo.py",
        "--global-batch",
        "64",
        "--per-gpu-batch",
        "16",
        "--gpus",
        "3",
        "--allow-inexact",
        "--dry-run",
        "--",
        "--output_dir",
        tmp_path,
    )
    assert loud.code == 0
    assert "INEXACT: the global batch will be 48, not 64" in loud.stderr


def test_launch_refuses_flags_it_sets(tmp_path: Path) -> None:
    run = ddpfix(
        "launch",
        CASES / "batch_echo.py",
        "--global-batch",
        "8",
        "--dry-run",
        "--",
        "--output_dir",
        tmp_path,
        "--train_batch_size=4",
    )
    assert run.code == 2 and "--train_batch_size is set by ddpfix launch" in run.stderr


def test_dry_run_prints_the_full_command(tmp_path: Path) -> None:
    run = ddpfix(
        "launch",
        CASES / "batch_echo.py",
        "--global-batch",
        "64",
        "--per-gpu-batch",
        "16",
        "--gpus",
        "2",
        "--dry-run",
        "--",
        "--output_dir",
        tmp_path,
    )
    assert run.code == 0
    assert "global batch 64 = 16 per GPU x 2 rank(s) x 2 accumulation step(s)" in run.stderr
    line = run.stdout.strip()
    assert "accelerate.commands.launch" in line and "--num_processes 2 --multi_gpu" in line
    assert line.endswith("--train_batch_size 16 --gradient_accumulation_steps 2")
    assert not list(tmp_path.iterdir())  # nothing ran


@pytest.mark.slow
def test_real_launch_gets_the_exact_batch_and_returns_the_exit_code(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    command = [
        sys.executable,
        "-m",
        "patcher",
        "launch",
        str(CASES / "batch_echo.py"),
        "--global-batch",
        "12",
        "--per-gpu-batch",
        "3",
        "--gpus",
        "2",
        "--",
        "--output_dir",
        str(tmp_path),
        "--exit_code",
        "3",
    ]
    run = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert run.returncode == 3
    assert sorted(p.read_text() for p in tmp_path.glob("rank*.txt")) == ["12", "12"]
    log = (tmp_path / "ddpfix-launch.log").read_text()
    assert "rank 0: global batch 12" in log and "rank 1: global batch 12" in log


def test_multi_node_plans_the_global_batch_over_nodes_x_gpus(tmp_path: Path) -> None:
    """One launcher per node (as under SLURM): the split covers every rank of every node."""
    run = ddpfix(
        "launch",
        CASES / "batch_echo.py",
        "--global-batch",
        "128",
        "--per-gpu-batch",
        "8",
        "--gpus",
        "4",
        "--num-machines",
        "2",
        "--machine-rank",
        "1",
        "--main-process-ip",
        "10.1.2.3",
        "--main-process-port",
        "29500",
        "--dry-run",
        "--",
        "--output_dir",
        tmp_path,
    )
    assert run.code == 0, run.stderr
    assert (
        "global batch 128 = 8 per GPU x 8 rank(s) (2 nodes x 4) x 2 accumulation step(s)"
        in run.stderr
    )
    line = run.stdout.strip()
    assert (
        "--num_machines 2 --machine_rank 1 --main_process_ip 10.1.2.3 --mixed_precision no "
        "--dynamo_backend no --main_process_port 29500 --num_processes 8 --multi_gpu" in line
    )
    assert line.endswith("--train_batch_size 8 --gradient_accumulation_steps 2")


def test_an_accelerate_config_file_gives_the_machines(tmp_path: Path) -> None:
    config = tmp_path / "multi.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_machines: 4\n"
        "num_processes: 16\nmachine_rank: 3\nmain_process_ip: 10.0.0.7\nmain_process_port: 6000\n"
    )
    run = ddpfix(
        "launch",
        CASES / "batch_echo.py",
        "--global-batch",
        "256",
        "--config-file",
        config,
        "--dry-run",
    )
    assert run.code == 0, run.stderr
    assert "256 = 16 per GPU x 16 rank(s) (4 nodes x 4) x 1 accumulation step(s)" in run.stderr
    assert "--num_machines 4 --machine_rank 3 --main_process_ip 10.0.0.7" in run.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num-machines", "2"], "more than one node needs --main-process-ip"),
        (
            ["--num-machines", "2", "--machine-rank", "2", "--main-process-ip", "h"],
            "--node-rank must be in 0..1 for 2 node(s)",
        ),
    ],
)
def test_multi_node_refusals(flags: list[str], message: str) -> None:
    run = ddpfix(
        "launch",
        CASES / "batch_echo.py",
        "--global-batch",
        "64",
        "--gpus",
        "2",
        *flags,
        "--dry-run",
    )
    assert run.code == 2 and message in run.stderr and run.stdout == ""
