"""Training-health findings from what the probe recorded about every parameter.

ORPHAN     received a non-zero gradient but is in no optimizer param group: it never trains.
NO-GRAD    in an optimizer, took part in backward, yet its gradient was exactly zero every step.
GRAD-DIED  had non-zero gradients, then exactly zero for the last K steps.
UNCHANGED  in an optimizer and given non-zero gradients, yet its value never changed.
SENTINEL   (opt-in) integer indices with negative values clamped to 0 were looked up in an
           embedding, and the rows they hit got gradient: "none" reached the loss.

A parameter whose gradient stayed None (not part of the loss at all, like an unused pooler) is not
a finding: that is a model choice, and DDP's find_unused_parameters territory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from patcher.verify.records import RankRecord

if TYPE_CHECKING:
    from patcher.verify.checks import Row

DEFAULT_K = 3


@dataclass(frozen=True)
class Finding:
    kind: str
    name: str
    site: str
    detail: str

    def line(self) -> str:
        where = "looked up at" if self.kind == "SENTINEL" else "created at"
        return f"{self.kind} {self.name} ({where} {self.site}): {self.detail}"

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "name": self.name, "site": self.site, "detail": self.detail}


def _finding(entry: dict[str, Any], k: int) -> Finding | None:
    steps = entry["none"] + entry["zero"] + entry["nonzero"]
    name, site = entry["name"], entry["site"]
    if entry["nonzero"] and not entry["in_optimizer"]:
        when = ""
        if entry.get("created_after_optimizer") and entry.get("optimizer_site"):
            when = f", created after the optimizer ({entry['optimizer_site']})"
        return Finding(
            "ORPHAN",
            name,
            site,
            f"non-zero gradients in {entry['nonzero']} of {steps} steps but in no optimizer "
            f"param group{when}: it never trains",
        )
    if entry["in_optimizer"] and entry["zero"] and not entry["nonzero"]:
        return Finding(
            "NO-GRAD",
            name,
            site,
            f"its gradient was exactly zero in all {entry['zero']} steps it took part in "
            "(is autograd cut, e.g. by a clamp or .data, on its path?)",
        )
    if entry["nonzero"] and entry["trailing_zero"] >= k:
        return Finding(
            "GRAD-DIED",
            name,
            site,
            f"non-zero gradients in {entry['nonzero']} steps, then exactly zero for the last "
            f"{entry['trailing_zero']}",
        )
    if entry["in_optimizer"] and entry["nonzero"] and entry.get("changed") is False:
        return Finding(
            "UNCHANGED",
            name,
            site,
            f"non-zero gradients in {entry['nonzero']} steps, yet its value never changed",
        )
    return None


def _sentinel(entry: dict[str, Any]) -> Finding | None:
    if not entry.get("reaches_loss"):
        return None  # clamped, but masked out downstream: fine
    return Finding(
        "SENTINEL",
        entry["name"],
        entry["site"],
        f"{entry['positions']} indices that were negative (a -1 'none' sentinel?) were clamped "
        "to 0, and their embedding rows reach the loss (non-zero gradient there)",
    )


def findings(records: list[RankRecord], k: int = DEFAULT_K) -> list[Finding]:
    """Findings of the first rank that reported health (ranks train the same parameters)."""
    for record in sorted(records, key=lambda r: r.rank):
        if record.health:
            found = [f for entry in record.health if (f := _finding(entry, k)) is not None]
            found += [f for entry in record.sentinels or () if (f := _sentinel(entry))]
            return sorted(found, key=lambda f: (f.kind, f.name))
    return []


def row(records: list[RankRecord], k: int = DEFAULT_K) -> Row:
    """The verdict table's row for training health."""
    from patcher.verify.checks import Row

    if not any(r.health for r in records):
        return Row("training health", True, "no optimizer step was taken: nothing to judge")
    found = findings(records, k)
    if not found:
        judged = max(len(r.health or []) for r in records)
        return Row("training health", True, f"{judged} parameters trained as expected")
    return Row("training health", False, "; ".join(f.line() for f in found))
