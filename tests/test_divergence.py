"""The access paths the divergent-state post-condition compares (``patches/_divergence.py``)."""

from __future__ import annotations

import libcst as cst
import pytest

from patches._divergence import _complete, _overlap, path


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("patience", ("patience",)),
        ("self.best", ("self", ".best")),
        ("state['is_early_stop'][task]", ("state", "['is_early_stop']", "[*]")),
        ("is_early_stop[task]['x']", ("is_early_stop", "[*]", "['x']")),
        ("scores[0]", ("scores", "[0]")),
        ("make()[0]", None),
    ],
)
def test_path(code: str, expected: tuple[str, ...] | None) -> None:
    assert path(cst.parse_expression(code)) == expected


def test_a_non_literal_index_may_name_any_key() -> None:
    written = _complete(("is_early_stop", "[*]", "['x']"))
    assert written == ("is_early_stop",)
    assert _overlap(written, ("is_early_stop",))
    assert _overlap(("state", "['is_early_stop']"), ("state",))  # the whole dict is read
    assert not _overlap(("state", "['is_early_stop']"), ("state", "['skip_cnt']"))
    assert not _overlap(("args", ".best"), ("args", ".patience"))
