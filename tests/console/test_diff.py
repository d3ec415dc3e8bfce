"""An audit entry's before and after, field by field."""

from __future__ import annotations

from promos.console.diff import Row, rows


def test_a_changed_field_shows_both_values():
    assert rows({"name": "a", "sku": "x"}, {"name": "b", "sku": "x"}) == [
        Row("name", "a", "b", "changed"),
        Row("sku", "x", "x", "same"),
    ]


def test_nested_objects_are_read_as_dotted_fields():
    assert rows({"rules": {"max": 1}}, {"rules": {"max": 2}}) == [
        Row("rules.max", "1", "2", "changed")
    ]


def test_fields_that_come_or_go_are_marked():
    assert rows({"old": 1}, {"new": 2}) == [
        Row("old", "1", None, "removed"),
        Row("new", None, "2", "added"),
    ]


def test_values_read_as_people_read_them():
    [row] = rows(None, {"v": None})
    assert row.after == "none"
    assert [r.after for r in rows(None, {"b": False, "l": [1, "a"], "s": "text"})] == [
        "false",
        '[1,"a"]',
        "text",
    ]


def test_a_creation_has_only_values_after():
    assert rows(None, {"name": "a"}) == [Row("name", None, "a", "added")]
