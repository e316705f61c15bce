"""Reading the user's launch line by running it with stand-ins (bash; no torch, no launch)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from patcher.verify import launchline

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

RUN_SH = r"""#!/bin/bash
# the auto-scaling launchers people write
NUM_GPUS=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
ALSO=$(python -c "import torch; print(torch.cuda.device_count())")
ACCUM_STEPS=$(( 32 / NUM_GPUS / 8 ))
MODEL=${1:-microsoft/codebert-base}
pip install -q transformers==4.30
mkdir -p saved_models
accelerate launch --multi_gpu --num_processes $NUM_GPUS \
    run.py \
    --model_name_or_path=$MODEL \
    --train_batch_size 8 --gradient_accumulation_steps $ACCUM_STEPS \
    --note "$ALSO gpus" 2>&1 | tee train.log
cd ../evaluator && python evaluator.py -a answers.txt -p predictions.txt
"""


def _project(tmp_path: Path, text: str = RUN_SH) -> Path:
    code = tmp_path / "code"
    code.mkdir()
    (code / "run.py").write_text("print('never runs')\n")
    (tmp_path / "evaluator").mkdir()
    (tmp_path / "evaluator" / "evaluator.py").write_text("print('never runs')\n")
    script = code / "run.sh"
    script.write_text(text)
    return script


def test_a_shell_launcher_is_read_with_n_stand_in_gpus(tmp_path: Path) -> None:
    script = _project(tmp_path)
    before = sorted(p.name for p in script.parent.iterdir())
    launch = launchline.read(script, gpus=4, shell_args=["microsoft/graphcodebert-base"])
    assert launch.script == (script.parent / "run.py").resolve()
    assert launch.args == [
        "--model_name_or_path=microsoft/graphcodebert-base",
        "--train_batch_size",
        "8",
        "--gradient_accumulation_steps",
        "1",
        "--note",
        "4 gpus",
    ]
    assert launch.launcher == ["accelerate", "launch", "--multi_gpu", "--num_processes", "4"]
    assert launch.processes == 4
    # the evaluator run after training is a second python script: listed, not verified
    evaluator = (tmp_path / "evaluator" / "evaluator.py").resolve()
    assert launch.others == [f"python {evaluator} -a answers.txt -p predictions.txt"]
    # it ran in a copy: no saved_models/, no train.log, nothing installed
    assert sorted(p.name for p in script.parent.iterdir()) == before


@pytest.mark.parametrize(
    ("command", "launcher"),
    [
        (
            ["torchrun", "--nproc_per_node=2", "run.py", "--do_train"],
            ["torchrun", "--nproc_per_node=2"],
        ),
        (
            [
                "python",
                "-m",
                "torch.distributed.launch",
                "--nproc_per_node",
                "2",
                "run.py",
                "--do_train",
            ],
            ["python", "-m", "torch.distributed.launch", "--nproc_per_node", "2"],
        ),
        (["python", "run.py", "--do_train"], ["python"]),
    ],
)
def test_launcher_commands(
    tmp_path: Path, monkeypatch, command: list[str], launcher: list[str]
) -> None:
    _project(tmp_path)
    monkeypatch.chdir(tmp_path / "code")
    launch = launchline.read(command, gpus=2)
    assert launch.script == (tmp_path / "code" / "run.py").resolve()
    assert launch.args == ["--do_train"]
    assert launch.launcher == launcher


def test_a_launch_line_without_a_script_is_a_clear_error(tmp_path: Path) -> None:
    script = _project(tmp_path, "#!/bin/bash\necho nothing to launch\nexit 3\n")
    with pytest.raises(
        launchline.LaunchLineError, match="launched no Python script; it exited with 3"
    ):
        launchline.read(script, gpus=2)
