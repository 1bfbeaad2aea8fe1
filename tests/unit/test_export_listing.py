"""The page loop and the restart-on-410 logic of an export, on plain data.

Pages are lists of dicts, the writer is a list that collects what is written, and an
expired list is a plain function raising ``ApiError(status=410)``. What the API server
really does (410 after an etcd compaction, 403 for a forbidden type) is proved in
tests/integration/test_export_listing.py.
"""
from __future__ import annotations

from typing import Any

import pytest

from migrator.errors import ApiError
from migrator.export.listing import Page, PageRules, export_pages, restart_on_expiry
from migrator.export.report import ResourceReport
from migrator.export.scope import NamespaceScope
from migrator.export.selection import ResourceType

CM = ResourceType("", "v1", "configmaps", "ConfigMap", True)
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False)


def cm(i: int, uid: str | None = None) -> dict[str, Any]:
    return {"metadata": {"name": f"cm-{i}", "namespace": "a", "uid": uid or f"u-{i}",
                         "resourceVersion": "1"}, "data": {"i": str(i)}}


def report_for(rtype: ResourceType) -> ResourceReport:
    return ResourceReport.for_type(rtype)


def run(pages: list[Page], rtype: ResourceType = CM, page_rules: PageRules | None = None):
    written: list[tuple[dict, dict | None]] = []
    totals: list[int | None] = []
    report = report_for(rtype)
    export_pages(pages, rtype, lambda obj, aside: written.append((obj, aside)), report,
                 page_rules, on_page=totals.append)
    return report, written, totals


def test_every_item_of_every_page_is_stripped_and_written_in_order() -> None:
    pages = [Page([cm(0), cm(1), cm(2)], 7), Page([cm(3), cm(4), cm(5)], 7), Page([cm(6)], 7)]
    report, written, totals = run(pages)
    assert report.listed == report.exported == 7
    assert [obj["metadata"]["name"] for obj, _aside in written] == [f"cm-{i}" for i in range(7)]
    assert all("uid" not in obj["metadata"] for obj, _aside in written)
    assert report.stripped == {"metadata.uid": 7, "metadata.resourceVersion": 7}
    assert totals == [7, 7, 7]  # one progress call per page, after its items


def test_same_uid_twice_is_written_once() -> None:
    report, written, _ = run([Page([cm(1), cm(2)]), Page([cm(1, uid="u-1")])])
    assert report.duplicates == 1 and report.exported == 2 and report.listed == 3
    assert len(written) == 2


def test_skipped_items_are_counted_by_rule_and_not_written() -> None:
    root_ca = {"metadata": {"name": "kube-root-ca.crt", "namespace": "a", "uid": "r"}}
    report, written, _ = run([Page([cm(1), root_ca])])
    assert report.skipped == {"root-ca-configmap": 1} and report.exported == 1
    assert [obj["metadata"]["name"] for obj, _ in written] == ["cm-1"]


def test_namespaces_out_of_scope_are_skipped() -> None:
    pages = [Page([{"metadata": {"name": n, "uid": n}} for n in ("shop", "kube-system", "b")])]
    scope = NamespaceScope.build(("shop",), (), False)
    report, written, _ = run(pages, NAMESPACES, PageRules(scope=scope))
    assert [obj["metadata"]["name"] for obj, _ in written] == ["shop"]
    assert sum(report.skipped.values()) == 2


def test_status_worth_keeping_is_set_aside() -> None:
    pvc_type = ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
    pvc = {"metadata": {"name": "data", "uid": "p"}, "status": {"phase": "Bound"}}
    report, written, _ = run([Page([pvc])], pvc_type)
    assert written == [({"metadata": {"name": "data"}}, {"status": {"phase": "Bound"}})]
    assert report.aside == 1


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
    report = report_for(CM)
    attempts: list[int] = []

    def pages():
        yield Page([cm(0), cm(1)])
        if not attempts[-1]:
            raise ApiError("expired", status=410)
        yield Page([cm(2)])

    def list_once() -> None:
        attempts.append(len(attempts))
        export_pages(pages(), CM, lambda obj, aside: written.append(obj), report)

    def reset(_exc: ApiError) -> None:
        written.clear()
        report.reset_counts()

    _result, restarts = restart_on_expiry(list_once, max_restarts=1, before_restart=reset)
    assert restarts == 1 and report.exported == 3 and len(written) == 3
