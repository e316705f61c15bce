"""DDP001 at run time: no LOCAL_RANK read without a process group; the read where args are parsed.

Issue 9, class 6: ``runtime_scripts/dataparallel_dormant.py`` is DataParallel-only; it kept the
template's ``--local_rank``, a barrier pair and ``get_world_size()`` behind ``local_rank != -1``,
and never initialises a process group. Under ``accelerate launch`` it runs as two independent
copies. Reading LOCAL_RANK (what DDP001 did before) wakes that code up and both ranks die with
"Default process group has not been initialized"; patched now, the script must behave exactly as
the original (both copies exit 0 with the same parameters) and DDP001 must say why it left it.

Issue 9, class 9: ``runtime_scripts/configs_parsed/`` is a CodeT5-style pair; run.py gets its
arguments from ``configs.add_args``, which declares ``--local_rank`` and parses. ``ddpfix apply``
on the directory reads LOCAL_RANK in configs.py, so both ranks join the process group.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("accelerate")
pytestmark = pytest.mark.slow

from ranked import SCRIPTS, Ranked, launch, patched  # noqa: E402

from clihelp import ddpfix  # noqa: E402
from patcher.engine import fix_text  # noqa: E402
from patcher.registry import all_rules  # noqa: E402
from patches.ddp001_local_rank_from_env import MARKER, NO_PROCESS_GROUP  # noqa: E402

DORMANT = (SCRIPTS / "dataparallel_dormant.py").read_text()
LAYOUT = SCRIPTS / "configs_parsed"
PARSE = "    args = parser.parse_args()\n"
ENV_READ = (
    PARSE + '    if "LOCAL_RANK" in os.environ and args.local_rank == -1:\n'
    '        args.local_rank = int(os.environ["LOCAL_RANK"])\n'
)


def copies_ok(run: Ranked) -> bool:
    """Both processes ran to exit 0 without a process group (``Ranked.ok`` wants one)."""
    return (
        not run.outcome.timed_out
        and run.outcome.returncode == 0
        and len(run.records) == 2
        and all(r.exit_code == 0 for r in run.records)
    )


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    return launch(DORMANT, [], Path(tmp_path_factory.mktemp("dormant-original")))


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Ranked:
    return launch(patched(DORMANT), [], Path(tmp_path_factory.mktemp("dormant-patched")))


def test_dataparallel_script_is_reported_not_fixed() -> None:
    output, findings = fix_text(DORMANT, all_rules())
    reports = [f for f in findings if f.code == "DDP001" and not f.fixed]
    assert [f.message for f in reports] == [NO_PROCESS_GROUP]
    assert MARKER not in output and 'os.environ["LOCAL_RANK"]' not in output


def test_dataparallel_script_behaves_as_the_original(original: Ranked, fixed: Ranked) -> None:
    assert copies_ok(original), original.explain()
    assert copies_ok(fixed), fixed.explain()
    assert all(r.dist_rank is None for r in fixed.records)  # no group, as in the original
    # every copy trains the whole model on the whole data, as the original's copies do
    assert set(fixed.param_hashes()) == {"0", "1"}, fixed.explain()
    assert set(fixed.param_hashes().values()) == set(original.param_hashes().values())
    assert len(set(original.param_hashes().values())) == 1


def test_reading_local_rank_there_breaks_it(tmp_path: Path) -> None:
    """What DDP001 used to insert, so the tests above can fail: every rank dies."""
    assert DORMANT.count(PARSE) == 1
    woken = patched(DORMANT).replace(PARSE, ENV_READ)
    run = launch(woken, [], tmp_path)
    assert run.outcome.returncode != 0, run.explain()
    assert not any(r.exit_code == 0 for r in run.records), run.explain()
    assert "Default process group has not been initialized" in run.log


def test_codet5_layout_reads_local_rank_in_configs(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    for name in ("run.py", "configs.py"):
        (project / name).write_text((LAYOUT / name).read_text())
    # before configs.py is patched, run.py names where the parse happens
    checked = ddpfix("check", project)
    assert "DDP001 (no fix) `--local_rank` is parsed in configs.add_args (configs.py)" in (
        checked.stderr
    )
    applied = ddpfix("apply", project)
    configs = (project / "configs.py").read_text()
    run_py = (project / "run.py").read_text()
    assert MARKER in configs and MARKER not in run_py
    # configs.py is patched first (files go in order): by then it reads LOCAL_RANK, and run.py,
    # which sees its sibling, has nothing to ask (unseen10 Q1)
    assert applied.code == 1  # DDP014's report on run.py stays
    assert "DDP001" not in applied.stderr.split("run.py", 1)[1]
    assert "DDP001 (fixed)" in applied.stderr
    run = launch(run_py, [], tmp_path / "patched", extra_files={"configs.py": configs})
    assert run.ok, run.explain()  # every rank joined the process group and exited 0
    assert sorted(-1 if r.dist_rank is None else r.dist_rank for r in run.records) == [0, 1]


def test_codet5_layout_unpatched_runs_as_copies(tmp_path: Path) -> None:
    """The original pair never joins a group under the launcher: LOCAL_RANK is never read."""
    sources = {name: (LAYOUT / name).read_text() for name in ("run.py", "configs.py")}
    configs = {"configs.py": sources["configs.py"]}
    run = launch(sources["run.py"], [], tmp_path, extra_files=configs)
    assert copies_ok(run), run.explain()
    assert all(r.dist_rank is None for r in run.records)
