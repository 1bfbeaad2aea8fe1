"""JSON Pointer and JSON Patch (RFC 6901/6902) on plain data."""
from __future__ import annotations

import pytest

from migrator.transform import jsonpatch as jp

pytestmark = pytest.mark.unit


def doc() -> dict:
    return {"metadata": {"labels": {"a/b": "1", "m~n": "2"}}, "spec": {"list": [1, 2, 3]}}


def test_pointer_escaping() -> None:
    assert jp.parse_pointer("/metadata/labels/a~1b") == ["metadata", "labels", "a/b"]
    assert jp.parse_pointer("/m~0n") == ["m~n"]
    assert jp.parse_pointer("/~01") == ["~1"]  # ~0 first would be wrong: RFC 6901 §4
    assert jp.join_pointer("metadata", "labels", "a/b") == "/metadata/labels/a~1b"
    assert jp.resolve(doc(), "/metadata/labels/m~0n") == "2"


@pytest.mark.parametrize("op, expected", [
    ({"op": "add", "path": "/spec/list/1", "value": 9}, [1, 9, 2, 3]),
    ({"op": "add", "path": "/spec/list/-", "value": 9}, [1, 2, 3, 9]),
    ({"op": "remove", "path": "/spec/list/0"}, [2, 3]),
    ({"op": "replace", "path": "/spec/list/2", "value": 0}, [1, 2, 0]),
])
def test_array_operations(op: dict, expected: list) -> None:
    assert jp.apply_patch(doc(), [op])["spec"]["list"] == expected


def test_copy_move_test() -> None:
    out = jp.apply_patch(doc(), [
        {"op": "copy", "from": "/metadata/labels/a~1b", "path": "/metadata/labels/c"},
        {"op": "move", "from": "/metadata/labels/m~0n", "path": "/spec/moved"},
        {"op": "test", "path": "/spec/moved", "value": "2"},
    ])
    assert out["metadata"]["labels"] == {"a/b": "1", "c": "1"}
    assert out["spec"]["moved"] == "2"


def test_failures_leave_the_original_alone() -> None:
    original = doc()
    with pytest.raises(jp.PatchTestFailed):
        jp.apply_patch(original, [{"op": "remove", "path": "/spec"},
                                  {"op": "test", "path": "/metadata/labels/m~0n", "value": 2}])
    assert original == doc()
    for bad in ({"op": "remove", "path": "/nope"}, {"op": "replace", "path": "/spec/x", "value": 1},
                {"op": "add", "path": "/spec/list/9", "value": 1},
                {"op": "move", "from": "/spec", "path": "/spec/inner"}):
        with pytest.raises(jp.PatchError):
            jp.apply_patch(original, [bad])


def test_json_equality() -> None:
    assert jp.json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not jp.json_equal(True, 1)
    assert not jp.json_equal("1", 1)
