"""``prefetched`` and ``fan_in``: read-ahead and parallel reading of paginated lists, on plain
iterators."""
from __future__ import annotations

import pytest

from migrator.errors import ApiError
from migrator.kube.pager import fan_in, prefetched


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


def test_fan_in_yields_every_item_keeping_each_sources_order() -> None:
    sources = [iter([(s, i) for i in range(20)]) for s in range(7)]
    got = list(fan_in(sources, parallel=3))
    assert sorted(got) == [(s, i) for s in range(7) for i in range(20)]
    for s in range(7):
        assert [i for source, i in got if source == s] == list(range(20))


def test_fan_in_of_no_sources_is_empty() -> None:
    assert list(fan_in([], parallel=4)) == []


def test_fan_in_reraises_the_first_error_and_stops_the_others() -> None:
    produced: list[int] = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield i

    def failing():
        yield -1
        raise ApiError("forbidden", status=403)

    with pytest.raises(ApiError, match="forbidden"):
        for _item in fan_in([endless(), failing()], parallel=2):
            pass
    assert len(produced) < 10_000  # the endless source was stopped, not drained
