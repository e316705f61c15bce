"""The locality check the fixture, corpus and generated-variant tests rely on must itself fail."""

from __future__ import annotations

from locality import statements, unexplained_changes

SOURCE = (
    "def train(args):\n"
    "    if args.local_rank == -1:\n"
    "        results = evaluate(args)\n"
    "    report(results)\n"
    "    save(args)\n"
)


def test_flattening_keeps_headers_depths_and_parents() -> None:
    found = statements(SOURCE)
    assert [(s.depth, s.lines, s.parent) for s in found] == [
        (0, range(1, 2), None),
        (1, range(2, 3), 0),
        (2, range(3, 4), 1),
        (1, range(4, 5), 0),
        (1, range(5, 6), 0),
    ]
    assert "body=[]" in found[1].shape  # a compound statement is its header only


def test_a_change_far_from_the_finding_is_reported() -> None:
    output = SOURCE.replace("save(args)", "save(args, twice=True)")
    assert unexplained_changes(SOURCE, output, {2}) == [
        "lines 5-5 changed outside any touched statement"
    ]
    assert unexplained_changes(SOURCE, output, {5}) == []


def test_a_deleted_statement_needs_a_finding() -> None:
    output = SOURCE.replace("    report(results)\n", "")
    assert unexplained_changes(SOURCE, output, set()) != []
    assert unexplained_changes(SOURCE, output, {4}) == []


def test_a_statement_moved_under_the_named_gate_is_inside_it() -> None:
    output = (
        "def train(args):\n"
        "    if args.local_rank in [-1, 0]:\n"
        "        results = evaluate(args)\n"
        "        report(results)\n"
        "    save(args)\n"
    )
    assert unexplained_changes(SOURCE, output, {2}) == []
    assert unexplained_changes(SOURCE, output, {5}) != []  # the finding is elsewhere


def test_insertions_alone_change_nothing_that_was_there() -> None:
    output = "import os\n\n" + SOURCE.replace("    save(args)\n", "    save(args)\n    os.sync()\n")
    assert unexplained_changes(SOURCE, output, set()) == []


def test_comments_and_layout_are_not_tree_changes() -> None:
    output = SOURCE.replace("save(args)", "save( args )  # kept")
    assert unexplained_changes(SOURCE, output, set()) == []
