"""DDP001 in a helper that parses ``--local_rank``: the importers decide (seventh batch A3/A4).

Multi-file layouts built from ``runtime_scripts/options_parsed`` and ``setting_parsed``
(the runtime proof is ``test_runtime_ddp001_helper_importers.py``): the read is withheld when
an importer would break once woken, and made when none would (or none is found).
"""

from __future__ import annotations

from pathlib import Path

from ranked import SCRIPTS

from patcher.engine import fix_text
from patcher.registry import all_rules
from patches.ddp001_local_rank_from_env import MARKER

OPTIONS = SCRIPTS / "options_parsed"
SETTING = SCRIPTS / "setting_parsed"
GROUP = "    args = setup_args()\n    torch.distributed.init_process_group('gloo')\n"


def _copy(layout: Path, into: Path) -> Path:
    into.mkdir(parents=True)
    for path in layout.glob("*.py"):
        (into / path.name).write_text(path.read_text())
    return into


def _ddp001(path: Path) -> tuple[bool, list[str]]:
    """(DDP001 read LOCAL_RANK in ``path``, DDP001's reports there)."""
    new, findings = fix_text(path.read_text(), all_rules(), path=path)
    return MARKER in new, [f.message for f in findings if f.code == "DDP001" and not f.fixed]


def test_no_group_for_the_importer(tmp_path: Path) -> None:
    project = _copy(OPTIONS, tmp_path / "p")
    fixed, messages = _ddp001(project / "options.py")
    assert not fixed
    assert (
        len(messages) == 1
        and "would break one of them: run.py takes a distributed" in (messages[0])
    )


def test_importer_that_sets_up_the_group_lets_the_helper_read(tmp_path: Path) -> None:
    project = _copy(OPTIONS, tmp_path / "p")
    run = project / "run.py"
    text = run.read_text()
    assert text.count("    args = setup_args()\n") == 1
    run.write_text(text.replace("    args = setup_args()\n", GROUP))
    fixed, _ = _ddp001(project / "options.py")
    assert fixed
    _, messages = _ddp001(run)
    assert messages == [
        "`--local_rank` is parsed in options.setup_args (options.py): run ddpfix on that file "
        "too, or read LOCAL_RANK there"
    ]


def test_rank_read_only_in_the_imported_trainer(tmp_path: Path) -> None:
    """run.py never names local_rank; the Fitter it imports wraps in DDP on it."""
    project = _copy(OPTIONS, tmp_path / "p")
    run = project / "run.py"
    text = run.read_text()
    branch = (
        "    if args.local_rank == -1:\n        sampler = RandomSampler(data)\n"
        "    else:\n        sampler = DistributedSampler(data)\n"
    )
    assert branch in text
    text = text.replace(branch, "    sampler = RandomSampler(data)\n")
    text = text.replace('"local_rank": args.local_rank, ', "").replace("local_rank", "rank")
    run.write_text(text)
    fixed, messages = _ddp001(project / "options.py")
    assert not fixed
    assert "wrap, in fitter.py) but no process group" in messages[0]


def test_package_relative_import(tmp_path: Path) -> None:
    project = _copy(OPTIONS, tmp_path / "pkg")
    (project / "__init__.py").write_text("")
    run = project / "run.py"
    text = run.read_text().replace("from options import", "from .options import")
    run.write_text(text.replace("from fitter import", "from .fitter import"))
    fixed, messages = _ddp001(project / "options.py")
    assert not fixed and "run.py takes a distributed branch" in messages[0]


def test_no_importer_keeps_the_read(tmp_path: Path) -> None:
    project = _copy(OPTIONS, tmp_path / "p")
    (project / "run.py").unlink()
    fixed, messages = _ddp001(project / "options.py")
    assert fixed and not messages


def test_rank_zero_exit_in_an_importer_one_directory_up(tmp_path: Path) -> None:
    """setting.py in a package ``model/``; run.py next to it imports ``model.setting``."""
    project = tmp_path / "p"
    _copy(SETTING, project / "model")
    (project / "model" / "run.py").rename(project / "run.py")
    run = project / "run.py"
    text = run.read_text().replace("from engine import", "from model.engine import")
    run.write_text(text.replace("from setting import", "from model.setting import"))
    fixed, messages = _ddp001(project / "model" / "setting.py")
    assert not fixed
    assert (
        "run.py: only some ranks leave the loop at line 22, out of code that calls "
        in (messages[0])
    )
    assert "engine.train_epoch() of engine.py, which synchronises" in messages[0]


def test_rank_zero_exit_without_synchronising_code_keeps_the_read(tmp_path: Path) -> None:
    project = _copy(SETTING, tmp_path / "p")
    engine = project / "engine.py"
    text = engine.read_text()
    assert "loss.backward()" in text and "DistributedDataParallel(" in text
    text = text.replace("        loss.backward()\n", "")
    engine.write_text(text.replace("DistributedDataParallel(torch", "(torch"))
    fixed, messages = _ddp001(project / "setting.py")
    assert fixed and not messages


def test_global_rank_gate_not_made_when_rank_zero_stops_alone(tmp_path: Path) -> None:
    """CoNKT's shape: the rank-0 block saves (DDP008 would gate it on RANK, which the launcher
    sets whether or not the helper reads LOCAL_RANK) and breaks; the engine the loop calls
    synchronises. The RANK gate would make rank 0 stop alone: DDP008 reports instead."""
    project = _copy(SETTING, tmp_path / "p")
    run = project / "run.py"
    text = run.read_text()
    stop = "            if engine.should_stop(1.0):\n"
    assert text.count(stop) == 1
    save = "            torch.save(engine.model.state_dict(), 'best.bin')\n"
    run.write_text("import torch\n" + text.replace(stop, save + stop))
    new, findings = fix_text(run.read_text(), all_rules(), path=run)
    assert "if args.local_rank == 0:" in new and "RANK" not in new
    (ddp008,) = [f for f in findings if f.code == "DDP008"]
    assert not ddp008.fixed
    assert ddp008.message.endswith(
        "not rewritten: only some ranks leave the loop, out of code that calls "
        "engine.train_epoch() of engine.py, which synchronises (backward, a collective or a "
        "DDP model): the other ranks would wait for it in their next collective (hang)"
    )
