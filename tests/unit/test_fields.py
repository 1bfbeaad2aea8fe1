"""The shared settings reader: durations, choices, lists, maps, ranges, unknown keys."""

from __future__ import annotations

import pytest

from migrator.errors import SettingsInvalid, ShiftSettingsInvalid
from migrator.fields import Fields, duration, format_duration

pytestmark = pytest.mark.unit


def problem(call, *args, **kwargs) -> str:
    with pytest.raises(SettingsInvalid) as caught:
        call(*args, **kwargs)
    return str(caught.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (0.5, 0.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("10m", 600.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1h30m15s", 5415.0),
        ("1.5h", 5400.0),
        ("500ms", 0.5),
        ("2d", 172800.0),
        (" 5m ", 300.0),
    ],
)
def test_a_duration_is_seconds_or_text_with_units(value, seconds):
    assert Fields({"wait": value}, "verify").duration("wait", 1) == seconds


def test_a_missing_or_null_duration_is_its_default():
    assert Fields({}, "verify").duration("wait", 300) == 300
    assert Fields({"wait": None}, "verify").duration("wait", 300) == 300


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10 minutes", "got '10 minutes'"),
        ("5x", "got '5x'"),
        ("m", "got 'm'"),
        ("", "got ''"),
        (True, "got true"),
        ([5], "got a list"),
        ({"m": 5}, "got a mapping"),
        ("nan", "got 'nan'"),
    ],
)
def test_a_wrong_duration_names_the_field_and_the_forms_it_takes(value, message):
    text = problem(Fields({"wait": value}, "verify").duration, "wait", 1)
    assert (
        text
        == f"verify.wait: expected a duration such as 90s, 10m or 1h30m (or seconds), {message}"
    )


def test_a_duration_out_of_range_says_the_bounds_as_durations():
    f = Fields({"a": "10s", "b": "0s", "c": "8d"}, "volumes")
    assert problem(f.duration, "a", 60, minimum=30) == "volumes.a: must be at least 30s (got 10s)"
    assert problem(f.duration, "b", 1, minimum=1) == "volumes.b: must be at least 1s (got 0s)"
    assert (
        problem(f.duration, "c", 3600, minimum=30, maximum=7 * 86400)
        == "volumes.c: must be between 30s and 7d (got 8d)"
    )
    assert problem(duration, "-5", "x") == "x: must be at least 0s (got -5s)"


def test_durations_are_shown_the_way_they_are_read():
    for seconds in (0.5, 45, 90, 3600, 5415, 86400 + 60):
        assert duration(format_duration(seconds), "x") == seconds
    assert format_duration(5400) == "1h30m"


def test_range_errors_say_the_bounds_and_the_value():
    f = Fields({"steps": 150, "workers": 0, "rate": "x", "half": 1.5}, "")
    assert (
        problem(f.integer, "steps", 0, maximum=100) == "steps: must be between 0 and 100 (got 150)"
    )
    assert problem(f.integer, "workers", 8, minimum=1) == "workers: must be at least 1 (got 0)"
    assert problem(f.number, "rate", 0) == "rate: expected a number, got 'x'"
    assert problem(f.integer, "half", 1) == "half: expected a whole number, got 1.5"


def test_choices_lists_and_maps():
    f = Fields(
        {"mode": "keep", "names": ["a", "b"], "map": {"x": "y"}, "skip": ["dns", "cpu"]}, "t"
    )
    assert f.choice("mode", "rewrite", ("rewrite", "drop", "keep")) == "keep"
    assert f.choice("other", "drop", ("rewrite", "drop")) == "drop"
    assert f.string_list("names") == ("a", "b")
    assert f.string_list("none") == ()
    assert f.string_map("map") == {"x": "y"}
    assert problem(f.choice_list, "skip", ("dns", "store")) == (
        "t.skip[1]: 'cpu': expected one of dns, store"
    )
    bad = Fields({"mode": "x", "names": "a", "items": ["a", {}], "map": {"k": [1]}}, "t")
    assert problem(bad.choice, "mode", "a", ("a", "b")) == "t.mode: 'x': expected one of a, b"
    assert problem(bad.string_list, "names") == "t.names: expected a list, got a string"
    assert problem(bad.string_list, "items") == (
        "t.items[1]: expected a non-empty string, got a mapping"
    )
    assert problem(bad.string_map, "map") == "t.map.k: expected a non-empty string, got a list"


def test_unknown_keys_are_refused_naming_the_known_ones():
    f = Fields({"wait": 5, "wiat": 6, "zz": 1}, "verify")
    f.duration("wait", 1)
    f.boolean("check", True)
    assert problem(f.done) == "verify.wiat: unknown setting (known here: check, wait)"


def test_the_caller_chooses_the_error_class_and_sub_mappings_keep_it():
    f = Fields({"gates": {"checks": 0}}, "traffic", error=ShiftSettingsInvalid)
    with pytest.raises(ShiftSettingsInvalid) as caught:
        f.sub("gates").integer("checks", 6, minimum=1)
    assert caught.value.field == "traffic.gates.checks"
    assert caught.value.hint == "fix the shift's settings; nothing was changed"
    with pytest.raises(ShiftSettingsInvalid):
        Fields([1], "traffic", error=ShiftSettingsInvalid)
