"""Byte-exact fixtures: ``fixtures/<DIR>/<name>.in.py`` → ``<name>.out.py`` (+ ``<name>.findings``).

``<DIR>`` is a rule code (only that rule runs) or ``scripts`` (the default selection runs). A
fixture without ``.out.py`` must come out byte-identical. ``.findings`` lists every finding as
``CODE line fixed|no-fix``. ``python tests/fixture_cases.py`` rewrites the expected files from
the current rules — read every diff it makes before committing it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT / "fixtures"
sys.path.insert(0, str(ROOT.parent))

from patcher.engine import fix_text  # noqa: E402
from patcher.registry import every_rule, select_rules  # noqa: E402
from patcher.rule import Finding, Rule  # noqa: E402


@dataclass(frozen=True)
class Case:
    group: str
    source: Path

    @property
    def name(self) -> str:
        return f"{self.group}/{self.source.name[: -len('.in.py')]}"

    @property
    def expected_path(self) -> Path:
        return self.source.with_name(self.source.name.replace(".in.py", ".out.py"))

    @property
    def findings_path(self) -> Path:
        return self.source.with_name(self.source.name.replace(".in.py", ".findings"))

    def rules(self) -> list[Rule]:
        return select_rules(every_rule(), None if self.group == "scripts" else [self.group])

    def read(self) -> str:
        return self.source.read_bytes().decode("utf-8")

    def expected(self) -> str:
        path = self.expected_path
        return path.read_bytes().decode("utf-8") if path.exists() else self.read()

    def expected_findings(self) -> str:
        path = self.findings_path
        return path.read_bytes().decode("utf-8") if path.exists() else ""


def render_findings(findings: list[Finding]) -> str:
    return "".join(f"{f.code} {f.line} {'fixed' if f.fixed else 'no-fix'}\n" for f in findings)


def cases() -> list[Case]:
    return [
        Case(directory.name, source)
        for directory in sorted(FIXTURES.iterdir())
        if directory.is_dir()
        for source in sorted(directory.glob("*.in.py"))
    ]


def update() -> None:
    for case in cases():
        output, findings = fix_text(case.read(), case.rules())
        if output != case.read():
            case.expected_path.write_bytes(output.encode("utf-8"))
        elif case.expected_path.exists():
            case.expected_path.unlink()
        rendered = render_findings(findings)
        if rendered:
            case.findings_path.write_bytes(rendered.encode("utf-8"))
        elif case.findings_path.exists():
            case.findings_path.unlink()
        print(case.name, "changed" if output != case.read() else "unchanged", len(findings))


if __name__ == "__main__":
    update()
