"""DDP001 in an argument helper judges the scripts that import it, proven by running.

Seventh unseen batch, A3/A4: a project parses ``--local_rank`` in a helper module
(``options.setup_args()``, ``setting.parse()``) and its scripts read ``args.local_rank``.
Reading LOCAL_RANK in the helper wakes the scripts' distributed code, which the helper's own
post-conditions cannot see:

- ``runtime_scripts/options_parsed/``: run.py shards with a DistributedSampler and its
  imported Fitter wraps in DDP once ``local_rank != -1``, and nothing in the project sets up a
  process group. Woken, every rank dies with "Default process group has not been initialized".
- ``runtime_scripts/setting_parsed/``: the helper sets up the group, the imported Engine owns
  the DDP model, and run.py breaks out of the epoch loop on ``local_rank == 0`` alone. Woken,
  rank 0 stops early and the other rank's next backward fails (gloo; NCCL: a hang).

DDP001 now reports the helper instead of reading the rank there, naming the importer and why,
and the importer's report no longer advises running ddpfix on the helper. Patched, every
process exits 0, as the original does (lone copies); the old rewrite fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

from ranked import SCRIPTS, Ranked, launch  # noqa: E402

from clihelp import ddpfix  # noqa: E402
from patches.ddp001_local_rank_from_env import MARKER  # noqa: E402

PARSE = "    args = parser.parse_args()\n"


def _woken(helper: str, unset: str) -> str:
    """The helper with the read DDP001 used to insert there."""
    assert helper.count(PARSE) == 1
    read = (
        PARSE + f'    if "LOCAL_RANK" in os.environ and args.local_rank {unset}:\n'
        '        args.local_rank = int(os.environ["LOCAL_RANK"])\n'
    )
    return "import os\n" + helper.replace(PARSE, read)


def _applied(layout: str, tmp_path: Path) -> tuple[dict[str, str], str]:
    """``ddpfix apply`` on a copy of the layout: the patched files and the CLI's findings."""
    project = tmp_path / layout
    project.mkdir()
    for path in (SCRIPTS / layout).glob("*.py"):
        (project / path.name).write_text(path.read_text())
    applied = ddpfix("apply", project)
    return {p.name: p.read_text() for p in project.glob("*.py")}, applied.stderr


def _all_exit_zero(run: Ranked) -> bool:
    return (
        not run.outcome.timed_out
        and run.outcome.returncode == 0
        and len(run.records) == 2
        and all(r.exit_code == 0 for r in run.records)
    )


def _launch(files: dict[str, str], workdir: Path) -> Ranked:
    extra = {name: text for name, text in files.items() if name != "run.py"}
    return launch(files["run.py"], [], workdir, extra_files=extra)


def test_options_helper_withheld_and_named(tmp_path: Path) -> None:
    files, stderr = _applied("options_parsed", tmp_path)
    assert MARKER not in files["options.py"]
    assert (
        "options.py:11:5: DDP001 (no fix) `--local_rank` is parsed here for scripts that import "
        "this module, and reading LOCAL_RANK here would break one of them: run.py takes a "
        "distributed branch once local_rank != -1" in stderr
    )
    assert "in run.py, fitter.py" in stderr
    importer = stderr.split("run.py:16:5: DDP001 (no fix) ", 1)[1].splitlines()[0]
    assert importer.startswith(
        "`--local_rank` is parsed in options.setup_args (options.py), but reading LOCAL_RANK "
        "there would break this file: run.py takes a distributed branch"
    )
    assert "run ddpfix on that file too" not in stderr
    run = _launch(files, tmp_path / "patched")
    assert _all_exit_zero(run), run.explain()
    assert all(r.dist_rank is None for r in run.records)


def test_options_helper_old_rewrite_fails_on_every_rank(tmp_path: Path) -> None:
    files = {p.name: p.read_text() for p in (SCRIPTS / "options_parsed").glob("*.py")}
    original = _launch(files, tmp_path / "original")
    assert _all_exit_zero(original), original.explain()
    files["options.py"] = _woken(files["options.py"], "== -1")
    run = _launch(files, tmp_path / "old")
    assert run.outcome.returncode != 0, run.explain()
    assert len(run.records) == 2 and not any(r.exit_code == 0 for r in run.records), run.explain()
    assert "Default process group has not been initialized" in run.log


def test_setting_helper_withheld_for_rank_zero_early_stop(tmp_path: Path) -> None:
    files, stderr = _applied("setting_parsed", tmp_path)
    assert MARKER not in files["setting.py"]
    assert (
        "setting.py:14:5: DDP001 (no fix) `--local_rank` is parsed here for scripts that import "
        "this module, and reading LOCAL_RANK here would break one of them: run.py: only some "
        "ranks leave the loop at line 22, out of code that calls engine.train_epoch() of "
        "engine.py, which synchronises" in stderr
    )
    run = _launch(files, tmp_path / "patched")
    assert run.ok, run.explain()  # both ranks in the group, every epoch, exit 0


def test_setting_helper_old_rewrite_leaves_a_rank_behind(tmp_path: Path) -> None:
    files, _ = _applied("setting_parsed", tmp_path)
    files["setting.py"] = _woken(files["setting.py"], "is None")
    run = _launch(files, tmp_path / "old")
    assert run.outcome.returncode != 0, run.explain()
    assert any(r.exit_code not in (0, None) for r in run.records), run.explain()


STOP = "            if engine.should_stop(1.0):\n"
SAVE = "            torch.save(engine.model.state_dict(), 'best.bin')\n"
GATE = "        if args.local_rank == 0:\n"


def test_rank_zero_save_and_stop_keeps_its_local_rank_gate(tmp_path: Path) -> None:
    """CoNKT's shape: the rank-0 block saves too, so DDP008 would gate it on RANK (set by the
    launcher whatever the helper reads): rank 0 would stop alone. It is reported instead; the
    patched layout runs every epoch on both ranks, the old rewrite leaves rank 1 behind."""
    project = tmp_path / "project"
    project.mkdir()
    for path in sorted((SCRIPTS / "setting_parsed").glob("*.py")):
        text = path.read_text()
        if path.name == "run.py":
            assert text.count(STOP) == 1 and text.count(GATE) == 1
            text = "import torch\n" + text.replace(STOP, SAVE + STOP)
        (project / path.name).write_text(text)
    ddpfix("apply", project)
    files = {p.name: p.read_text() for p in project.glob("*.py")}
    assert GATE in files["run.py"] and "RANK" not in files["run.py"]
    run = _launch(files, tmp_path / "patched")
    assert run.ok, run.explain()
    old = dict(files)
    old["run.py"] = "import os\n" + files["run.py"].replace(
        GATE, "        if int(os.environ.get('RANK', args.local_rank)) == 0:\n"
    )
    broken = _launch(old, tmp_path / "old")
    assert broken.outcome.returncode != 0, broken.explain()
    assert any(r.exit_code not in (0, None) for r in broken.records), broken.explain()
