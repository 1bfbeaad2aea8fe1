"""The runner against a fake API server: pagination, 410 restarts, duplicates, failures."""
from __future__ import annotations

from typing import Any

import pytest

from migrator.errors import ApiError
from migrator.export.runner import ListOptions, export_types
from migrator.export.selection import ResourceType
from migrator.snapshot import SnapshotReader, SnapshotWriter
from migrator.store import LocalStore

pytestmark = pytest.mark.unit

CM = ResourceType("", "v1", "configmaps", "ConfigMap", True)
SECRETS = ResourceType("", "v1", "secrets", "Secret", True)


def cm(i: int, uid: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": f"cm-{i}", "namespace": "a", "uid": uid or f"u-{i}",
                         "resourceVersion": "1"}, "data": {"i": str(i)}}


class FakeCluster:
    """Serves ``lists[path]`` in pages of the requested limit; ``expire`` continue tokens
    answer 410 (once each); ``forbidden`` paths answer 403."""

    context = "fake"

    def __init__(self, lists: dict[str, list[dict]], expire: int = 0,
                 forbidden: tuple[str, ...] = ()) -> None:
        self.lists = lists
        self.expire = expire
        self.forbidden = forbidden
        self.requests: list[tuple[str, dict]] = []

    def request(self, method: str, path: str, *, query: Any = None, body: Any = None) -> dict:
        query = dict(query or {})
        self.requests.append((path, query))
        if path in self.forbidden:
            raise ApiError("forbidden", status=403, method=method, path=path)
        start = int(query.get("continue") or 0)
        if start and self.expire:
            self.expire -= 1
            raise ApiError("expired", status=410, reason="Expired", method=method, path=path)
        items = self.lists[path]
        end = start + int(query["limit"])
        meta = {"continue": str(end)} if end < len(items) else {}
        if meta:
            meta["remainingItemCount"] = len(items) - end
        return {"items": [dict(i, metadata=dict(i["metadata"])) for i in items[start:end]],
                "metadata": meta}


def run(cluster: FakeCluster, tmp_path, types=(CM,), **options):
    store = LocalStore(tmp_path)
    writer = SnapshotWriter(store, "snap")
    progress: list[tuple[str, int, int | None]] = []
    reports = export_types(cluster, writer, list(types), ListOptions(page_size=3, **options),
                           on_progress=lambda *a: progress.append(a))
    writer.commit()
    return reports, SnapshotReader(store, "snap"), progress


def test_pages_are_followed_and_progress_reported(tmp_path) -> None:
    cluster = FakeCluster({"/api/v1/configmaps": [cm(i) for i in range(7)]})
    [report], reader, progress = run(cluster, tmp_path)
    assert report.state == "exported" and report.listed == report.exported == 7
    assert len(cluster.requests) == 3
    assert cluster.requests[0][1]["fieldSelector"].startswith("metadata.namespace!=")
    assert progress == [("configmaps", 3, 7), ("configmaps", 6, 7), ("configmaps", 7, 7)]
    stored = list(reader.iter_objects(reader.find("", "v1", "configmaps")))
    assert [o["metadata"]["name"] for o in stored] == [f"cm-{i}" for i in range(7)]
    assert all("uid" not in o["metadata"] for o in stored)


def test_410_expired_restarts_the_list_without_duplicating(tmp_path) -> None:
    cluster = FakeCluster({"/api/v1/configmaps": [cm(i) for i in range(7)]}, expire=1)
    [report], reader, _ = run(cluster, tmp_path)
    assert report.list_restarts == 1 and report.listed == report.exported == 7
    stored = list(reader.iter_objects(reader.find("", "v1", "configmaps")))
    assert len(stored) == 7 and report.stripped["metadata.uid"] == 7


def test_a_list_that_keeps_expiring_fails_that_type_only(tmp_path) -> None:
    cluster = FakeCluster({"/api/v1/configmaps": [cm(i) for i in range(7)],
                           "/api/v1/secrets": [cm(1)]}, expire=10)
    reports, reader, _ = run(cluster, tmp_path, types=(CM, SECRETS), max_list_restarts=2)
    by_key = {r.key: r for r in reports}
    assert by_key["configmaps"].state == "failed" and "expired" in by_key["configmaps"].error
    assert by_key["secrets"].state == "exported"
    assert reader.find("", "v1", "configmaps") is None


def test_same_uid_twice_is_written_once(tmp_path) -> None:
    cluster = FakeCluster({"/api/v1/configmaps": [cm(1), cm(2), cm(1, uid="u-1")]})
    [report], reader, _ = run(cluster, tmp_path)
    assert report.duplicates == 1 and report.exported == 2


def test_forbidden_type_is_recorded_and_the_rest_exported(tmp_path) -> None:
    cluster = FakeCluster({"/api/v1/configmaps": [cm(1)]}, forbidden=("/api/v1/secrets",))
    reports, reader, _ = run(cluster, tmp_path, types=(CM, SECRETS))
    assert [r.state for r in reports] == ["exported", "failed"]
    assert "forbidden" in reports[1].error
    assert reader.find("", "v1", "configmaps")["objects"] == 1


def test_prefetched_keeps_order_reraises_and_stops_early() -> None:
    from migrator.kube.pager import prefetched

    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        raise ApiError("boom", status=500)

    got = []
    with pytest.raises(ApiError, match="boom"):
        for value in prefetched(failing()):
            got.append(value)
    assert got == [1]
    produced = []

    def endless():
        for i in range(10_000):
            produced.append(i)
            yield i

    for value in prefetched(endless()):
        if value == 3:
            break
    assert len(produced) < 10  # the helper stopped instead of running on
