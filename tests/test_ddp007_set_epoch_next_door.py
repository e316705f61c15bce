"""DDP007's "no epoch loop calls set_epoch" report looks at the project files next door (eighth
batch D1/D2): a sampler built in a helper module and reshuffled by the script that imports it
(FreeYOLO: ``utils/misc.py`` builds it, ``train.py`` calls
``dataloader.batch_sampler.sampler.set_epoch(epoch)``), or built in the script and reshuffled
in a trainer package it imports, is not "every epoch repeats the same shuffle"."""

from __future__ import annotations

from pathlib import Path

from patcher.engine import fix_text
from patcher.registry import every_rule, select_rules

BUILDER = """import torch
from torch.utils.data import DataLoader, DistributedSampler


def build_dataloader(dataset, batch_size):
    sampler = DistributedSampler(dataset)
    batch_sampler = torch.utils.data.BatchSampler(sampler, batch_size, drop_last=True)
    return DataLoader(dataset, batch_sampler=batch_sampler)
"""

SCRIPT = """import torch
from utils.misc import build_dataloader


def main(dataset, model, optimizer, epochs):
    dataloader = build_dataloader(dataset, 4)
    for epoch in range(epochs):
        dataloader.batch_sampler.sampler.set_epoch(epoch)
        for x in dataloader:
            model(x).sum().backward()
            optimizer.step()
"""

TRAINER = """class Trainer:
    def __init__(self, model, data_loader, epochs):
        self.model, self.data_loader, self.epochs = model, data_loader, epochs

    def train(self):
        for epoch in range(self.epochs):
            self.data_loader.sampler.set_epoch(epoch)
            for x in self.data_loader:
                self.model(x).sum().backward()
"""

ENTRY = """import torch
from torch.utils.data import DataLoader, DistributedSampler

from trainer import Trainer


def main(dataset, model, epochs):
    train_sampler = DistributedSampler(dataset)
    loader = make_loader(dataset, sampler=train_sampler)
    Trainer(model, loader, epochs).train()
"""


def _reports(path: Path) -> list[str]:
    _, findings = fix_text(path.read_text(), select_rules(every_rule(), ["DDP007"]), path=path)
    return [f.message for f in findings if not f.fixed]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_a_helper_whose_importer_reshuffles_is_not_reported(tmp_path: Path) -> None:
    _write(tmp_path, {"utils/misc.py": BUILDER, "utils/__init__.py": "", "train.py": SCRIPT})
    assert _reports(tmp_path / "utils" / "misc.py") == []


def test_a_helper_nobody_reshuffles_is_reported(tmp_path: Path) -> None:
    script = SCRIPT.replace("        dataloader.batch_sampler.sampler.set_epoch(epoch)\n", "")
    _write(tmp_path, {"utils/misc.py": BUILDER, "utils/__init__.py": "", "train.py": script})
    reports = _reports(tmp_path / "utils" / "misc.py")
    assert len(reports) == 1 and "no epoch loop" in reports[0], reports


def test_a_trainer_package_that_reshuffles_silences_the_entry_script(tmp_path: Path) -> None:
    package = {"trainer/__init__.py": "from .trainer import *\n", "trainer/trainer.py": TRAINER}
    _write(tmp_path, {**package, "train.py": ENTRY})
    assert _reports(tmp_path / "train.py") == []
    (tmp_path / "trainer" / "trainer.py").write_text(
        TRAINER.replace("            self.data_loader.sampler.set_epoch(epoch)\n", "")
    )
    assert len(_reports(tmp_path / "train.py")) == 1


def test_a_neighbour_that_only_defines_set_epoch_does_not_silence_it(tmp_path: Path) -> None:
    script = SCRIPT.replace("        dataloader.batch_sampler.sampler.set_epoch(epoch)\n", "")
    helper = BUILDER + "\n\nclass Sampler:\n    def set_epoch(self, epoch):\n        pass\n"
    _write(tmp_path, {"utils/misc.py": helper, "utils/__init__.py": "", "train.py": script})
    assert len(_reports(tmp_path / "utils" / "misc.py")) == 1
