"""``prefetched``: the read-ahead helper of paginated lists, on plain iterators."""
from __future__ import annotations

import pytest

from migrator.errors import ApiError
from migrator.kube.pager import prefetched


def test_prefetched_keeps_order() -> None:
    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))


def test_prefetched_reraises_where_the_error_would_have_surfaced() -> None:
    def failing():
        yield 1
        raise ApiError("boom", status=500)

    got = []
    with pytest.raises(ApiError, match="boom"):
        for value in prefetched(failing()):
            got.append(value)
    assert got == [1]


def test_prefetched_stops_its_helper_when_the_caller_stops() -> None:
    produced = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield i

    for value in prefetched(endless()):
        if value == 3:
            break
    assert len(produced) < 10  # the helper stopped instead of running on
