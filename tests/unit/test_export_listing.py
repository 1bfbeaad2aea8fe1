"""The page work and page loop of an export, and the restart-on-410 logic, on plain data.

Pages are list documents encoded as the API server sends them, processed by
``process_page`` (in this process, or in worker processes: the same results); the writer is
a list that collects the lines of each written gzip member, and an expired list is a plain
function raising ``ApiError(status=410)``. What the API server really does (410 after an
etcd compaction, 403 for a forbidden type) is proved in tests/integration/test_export_listing.py.
"""
from __future__ import annotations

import gzip
import threading
from typing import Any

import orjson
import pytest

from migrator.errors import ApiError
from migrator.export.listing import export_pages, restart_on_expiry
from migrator.export.pages import PageResult, PageSpec, PageWorkers, list_total, process_page
from migrator.export.report import ResourceReport
from migrator.resources.scope import Scope
from migrator.resources.types import ResourceType

CM = ResourceType("", "v1", "configmaps", "ConfigMap", True)
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False)


def cm(i: int, uid: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": f"cm-{i}", "namespace": "a", "uid": uid or f"u-{i}",
                         "resourceVersion": "1"}, "data": {"i": str(i)}}


def page(items: list[dict[str, Any]], remaining: int | None = None, token: str = "") -> bytes:
    """A list page as the API server encodes it."""
    meta: dict[str, Any] = {"resourceVersion": "9"}
    if token:
        meta["continue"] = token
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    return orjson.dumps({"kind": "List", "apiVersion": "v1", "metadata": meta, "items": items})


def lines(member: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in gzip.decompress(member).splitlines()] if member else []


def run(raws: list[bytes], spec: PageSpec = PageSpec(CM)):
    written: list[tuple[dict, dict | None]] = []
    totals: list[int | None] = []
    report = ResourceReport.for_type(spec.rtype)

    def write(result: PageResult) -> None:
        objs, asides = lines(result.member), lines(result.aside_member)
        assert len(objs) == result.exported and len(asides) == result.aside
        by_name = {a["name"]: {k: v for k, v in a.items() if k not in ("name", "namespace")}
                   for a in asides}
        written.extend((obj, by_name.get(obj["metadata"]["name"])) for obj in objs)

    pages = ((raw, process_page(raw, spec)) for raw in raws)
    export_pages(pages, write, report, reprocess=lambda raw, ex: process_page(raw, spec, ex),
                 on_page=totals.append)
    return report, written, totals


def test_every_item_of_every_page_is_stripped_and_written_in_order() -> None:
    raws = [page([cm(0), cm(1), cm(2)], 4, "t1"), page([cm(3), cm(4), cm(5)], 1, "t2"),
            page([cm(6)])]
    report, written, totals = run(raws)
    assert report.listed == report.exported == 7
    assert [obj["metadata"]["name"] for obj, _aside in written] == [f"cm-{i}" for i in range(7)]
    assert all("uid" not in obj["metadata"] for obj, _aside in written)
    assert report.stripped == {"metadata.uid": 7, "metadata.resourceVersion": 7}
    assert totals == [7, 4, 1]  # one progress call per page, after it is written


def test_a_page_tells_where_the_list_goes_on_and_how_long_it_is() -> None:
    first = process_page(page([cm(0), cm(1)], 5, "next"), PageSpec(CM))
    assert (first.continue_token, first.total) == ("next", 7)
    assert process_page(page([cm(0)], None, "next"), PageSpec(CM)).total is None
    last = process_page(page([cm(0)]), PageSpec(CM))
    assert (last.continue_token, last.total) == ("", 1)
    assert list_total({"items": [1, 2], "metadata": {}}) == 2


def test_same_uid_on_a_later_page_is_written_once() -> None:
    report, written, _ = run([page([cm(1), cm(2)], 1, "t"), page([cm(3), cm(1, uid="u-1")])])
    assert report.duplicates == 1 and report.exported == 3 and report.listed == 4
    assert [obj["metadata"]["name"] for obj, _ in written] == ["cm-1", "cm-2", "cm-3"]


def test_same_uid_twice_on_one_page_is_written_once() -> None:
    report, written, _ = run([page([cm(1), cm(1, uid="u-1"), cm(2)])])
    assert report.duplicates == 1 and report.exported == 2 and len(written) == 2


def test_skipped_items_are_counted_by_rule_and_not_written() -> None:
    root_ca = {"metadata": {"name": "kube-root-ca.crt", "namespace": "a", "uid": "r"}}
    report, written, _ = run([page([cm(1), root_ca])])
    assert report.skipped == {"root-ca-configmap": 1} and report.exported == 1
    assert [obj["metadata"]["name"] for obj, _ in written] == ["cm-1"]


def test_namespaces_out_of_scope_are_skipped() -> None:
    raws = [page([{"metadata": {"name": n, "uid": n}} for n in ("shop", "kube-system", "b")])]
    scope = Scope.build(("shop",), (), False)
    report, written, _ = run(raws, PageSpec(NAMESPACES, scope=scope))
    assert [obj["metadata"]["name"] for obj, _ in written] == ["shop"]
    assert sum(report.skipped.values()) == 2


def test_status_worth_keeping_is_set_aside() -> None:
    pvc_type = ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
    pvc = {"metadata": {"name": "data", "uid": "p"}, "status": {"phase": "Bound"}}
    report, written, _ = run([page([pvc])], PageSpec(pvc_type))
    assert written == [({"metadata": {"name": "data"}}, {"status": {"phase": "Bound"}})]
    assert report.aside == 1


def test_a_page_that_is_not_a_list_document_is_an_error() -> None:
    with pytest.raises(ValueError, match="configmaps"):
        process_page(b"[1, 2]", PageSpec(CM))


@pytest.mark.parametrize("other_thread", [False, True], ids=["forked", "forkserver"])
def test_worker_processes_give_what_the_calling_thread_gives(other_thread: bool) -> None:
    """With another thread running, the workers start from a fresh server process instead of
    a fork: either way a page comes back exactly as processed here."""
    raws = [page([cm(i + 10 * p) for i in range(10)], 0, "t") for p in range(6)]
    stop = threading.Event()
    busy = threading.Thread(target=stop.wait, daemon=True)
    if other_thread:
        busy.start()
    try:
        with PageWorkers(2) as workers:
            remote = [workers.process(raw, PageSpec(CM)) for raw in raws]
            again = workers.process(raws[0], PageSpec(CM), exclude=["u-0"])
    finally:
        stop.set()
    local = [process_page(raw, PageSpec(CM)) for raw in raws]
    assert [lines(r.member) for r in remote] == [lines(r.member) for r in local]
    assert [(r.exported, r.uids, r.stripped, r.line_bytes) for r in remote] == \
        [(r.exported, r.uids, r.stripped, r.line_bytes) for r in local]
    assert again.duplicates == 1 and again.exported == 9


def expiring(failures: int, result: str = "listed"):
    """A list that fails with 410 Expired ``failures`` times, then completes."""
    calls: list[int] = []

    def list_once() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise ApiError("continue token expired", status=410, reason="Expired")
        return result

    return list_once, calls


def test_an_expired_list_is_restarted_after_cleaning_up() -> None:
    list_once, calls = expiring(2)
    cleanups: list[int] = []
    result, restarts = restart_on_expiry(list_once, max_restarts=3,
                                         before_restart=lambda exc: cleanups.append(exc.status))
    assert (result, restarts, len(calls)) == ("listed", 2, 3)
    assert cleanups == [410, 410]


def test_a_list_that_keeps_expiring_gives_up_with_the_410() -> None:
    list_once, calls = expiring(10)
    with pytest.raises(ApiError) as info:
        restart_on_expiry(list_once, max_restarts=2, before_restart=lambda exc: None)
    assert info.value.status == 410 and len(calls) == 3


def test_other_errors_are_not_restarted() -> None:
    def forbidden() -> None:
        raise ApiError("secrets is forbidden", status=403, reason="Forbidden")

    cleanups: list[ApiError] = []
    with pytest.raises(ApiError, match="forbidden"):
        restart_on_expiry(forbidden, max_restarts=3, before_restart=cleanups.append)
    assert cleanups == []


def test_restart_and_page_loop_together_write_each_object_once() -> None:
    """A pass that expires midway leaves nothing behind once ``before_restart`` resets."""
    written: list[dict] = []
    report = ResourceReport.for_type(CM)
    attempts: list[int] = []
    spec = PageSpec(CM)

    def pages():
        raw = page([cm(0), cm(1)], 1, "t")
        yield raw, process_page(raw, spec)
        if not attempts[-1]:
            raise ApiError("expired", status=410)
        raw = page([cm(2)])
        yield raw, process_page(raw, spec)

    def list_once() -> None:
        attempts.append(len(attempts))
        export_pages(pages(), lambda result: written.extend(lines(result.member)), report,
                     reprocess=lambda raw, ex: process_page(raw, spec, ex))

    def reset(_exc: ApiError) -> None:
        written.clear()
        report.reset_counts()

    _result, restarts = restart_on_expiry(list_once, max_restarts=1, before_restart=reset)
    assert restarts == 1 and report.exported == 3 and len(written) == 3
