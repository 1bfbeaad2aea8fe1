"""``fan_in``: parallel reading of paginated lists, on plain
iterators."""
from __future__ import annotations

import pytest

from migrator.errors import ApiError
from migrator.kube.pager import fan_in


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
