"""The run report: a round trip through JSON, Markdown and HTML with the headline figures of
each stage's own report, and the terminal views of a preview, a preflight and a run."""

from __future__ import annotations

import json
from collections import Counter
from html.parser import HTMLParser

import pytest

from migrator.export import ExportReport, ResourceReport
from migrator.importer.report import ImportReport
from migrator.importer.report import PhaseReport as ImportPhase
from migrator.migrate.plan import ClusterRef, Hook, Hooks, Plan, StoreRef, VolumeSettings
from migrator.migrate.preview import Preview, phases
from migrator.migrate.report import (
    PhaseReport,
    RunReport,
    headline,
    html,
    markdown,
    timeline_bars,
)
from migrator.traffic import ShiftReport
from migrator.transform.base import Change, Severity
from migrator.transform.report import TransformReport, object_ref
from migrator.verify.stage import VerifyReport
from migrator.volumes.claims import Claim
from migrator.volumes.jobs import Attempt, MoverOutcome
from migrator.volumes.sync import SyncReport, VolumeResult

pytestmark = pytest.mark.unit

T0 = 1_800_000_000.0
SCRIPT = "<script>alert('x')</script>"


def _export() -> dict:
    report = ExportReport("snap-1", "old")
    report.resources = [
        ResourceReport("deployments.apps", "apps/v1", "Deployment", True, listed=7, exported=7),
        ResourceReport("pods", "v1", "Pod", True, listed=20, exported=3, skipped=Counter(owned=17)),
    ]
    return report.to_dict()


def _transform() -> dict:
    report = TransformReport("snap-1", "snap-1-new", {"version": "1.33"})
    cron = {"apiVersion": "batch/v1beta1", "kind": "CronJob", "metadata": {"name": "c"}}
    report.count("batch/v1beta1 CronJob").read = 4
    report.count("batch/v1beta1 CronJob").written = 4
    report.count("batch/v1beta1 CronJob").changed = 2
    report.record(
        object_ref(cron),
        "changed",
        [
            Change("/apiVersion", "convert", "batch/v1", Severity.INFO),
            Change("/spec/x", "drop", "x has no successor", Severity.LOSS),
        ],
        sensitive=False,
        written=cron,
    )
    return report.summary()


def _import() -> dict:
    report = ImportReport("snap-1-new", "s3://b", {"context": "new"}, "skip", False, {}, False)
    outcomes = Counter(created=11, updated=2, unchanged=1, skipped=3, failed=1)
    report.phases = {"workloads": ImportPhase("workloads", "after their config", 18, outcomes)}
    return report.to_dict()


def _verify() -> dict:
    missing = {"kind": "Service", "apiVersion": "v1", "namespace": "a", "name": "web"}
    report = VerifyReport("snap-1-new", {"context": "new"}, checked=42, ready=5)
    report.missing = [missing]
    report.not_ready = [{**missing, "kind": "Deployment", "state": "waiting", "reason": "0/1"}]
    return report.to_dict()


def _volumes() -> dict:
    backup = MoverOutcome(
        "backup", [Attempt("job-1", True, seconds=4.0, report={"files": 120, "bytesTotal": 8e6})]
    )
    result = VolumeResult(Claim("shop", "data"), node="n1", backup=backup)
    report = SyncReport("run-1", "final", "mover", [result], seconds=4.0, stopped_seconds=9.5)
    return report.to_dict()


def _traffic() -> dict:
    moves = [
        {"label": "10 % to new", "shares": {"shop.example.com": 0.1}, "checks": 6,
         "failedChecks": 0, "passedAt": T0},
        {"label": "50 % to new", "shares": {"shop.example.com": 0.5}, "checks": 3,
         "failedChecks": 3, "passedAt": None},
    ]  # fmt: skip
    report = ShiftReport(
        "m1", "rfc2136", ["shop.example.com"], "rolled-back", "s3://b/m1/traffic/state.json",
        reason="gate http failed 3 times", moves=moves, rollback={"seconds": 1.25},
    )  # fmt: skip
    return report.to_dict()


def _run() -> RunReport:
    spans = [
        ("export", "done", 0, 30, _export(), []),
        ("transform", "done", 30, 10, _transform(), []),
        ("import", "failed", 40, 60, _import(), ["deployments.apps a/web: " + SCRIPT]),
        ("verify", "done", 100, 20, _verify(), []),
        ("final-pass", "done", 120, 40, _volumes(), []),
        ("traffic", "done", 160, 120, _traffic(), []),
        ("teardown", "done", 280, 20, {"scaled": ["a/web", "a/db"], "hook": {"exitCode": 0,
                                                                            "ok": True}}, []),
        ("soak", "skipped", None, 0, {}, []),
    ]  # fmt: skip
    phases_ = [
        PhaseReport(
            name,
            status,
            None if start is None else T0 + start,
            None if start is None else T0 + start + took,
            float(took),
            summary,
            problems,
            resumed=1 if name == "import" else 0,
        )
        for name, status, start, took, summary, problems in spans
    ]
    return RunReport(
        "shop",
        "old",
        "new",
        "s3://bucket",
        status="failed",
        started_at=T0,
        ended_at=T0 + 300,
        phases=phases_,
        preflight={"ready": True, "checks": [{"name": "versions", "status": "pass"}]},
        alerts=[{"at": T0 + 50, "phase": "import", "message": "import stuck for 600s"}],
        rto_seconds=300.0,
        rpo_seconds=12.5,
        extra={"rehearsal": False},
    )


def test_round_trip() -> None:
    report = _run()
    doc = json.loads(json.dumps(report.to_dict()))
    again = RunReport.from_dict(doc)
    assert again == report
    assert again.to_dict() == report.to_dict()


def test_markdown_headlines_and_problems() -> None:
    text = markdown(_run())
    assert text.startswith("# Migration shop: failed")
    expected = [
        "10 exported of 27 listed, 17 skipped",  # export
        "**losses**: 1",  # transform: one loss change
        "1 info, 1 loss",
        "11 created, 2 updated, 1 unchanged, 3 skipped, 1 failed",  # import
        "42 checked, 0 different, 1 missing, 1 not ready",  # verify
        "1 volumes (0 failed), 120 files, 8.0 MB, 2.0 MB/s",  # volumes
        "writers stopped 9.5s",
        "shop.example.com 10% new; gates 6 checks, 0 failed; passed",  # traffic
        "shop.example.com 50% new; gates 3 checks, 3 failed; not passed",
        "records restored in 1.2s",
        "**workloads scaled**: 2",  # teardown
        "**hook**: ok (exit 0)",
        "| RTO | 5m 00s |",  # rehearsal
        "| RPO | 12.5s |",
        "import: import stuck for 600s",
    ]
    for figure in expected:
        assert figure in text, figure
    failed = text.split("### import (failed)")[1].split("###")[0]
    assert "Problems (1):" in failed
    assert "deployments.apps a/web: &lt;script&gt;" in failed
    assert "<script>" not in text


def test_unknown_summary_is_listed_compactly() -> None:
    report = RunReport("p", "old", "new", "s3://b", phases=[
        PhaseReport("quiesce", "done", T0, T0 + 2, 2.0,
                    {"method": "scale", "workloads": {"scaled": 3, "names": ["a/web"]},
                     "undone": False}),
    ])  # fmt: skip
    text = markdown(report)
    for row in ("**method**: scale", "**workloads.scaled**: 3", "**workloads.names**: a/web",
                "**undone**: no"):  # fmt: skip
        assert row in text


class _Page(HTMLParser):
    """Collects the timeline bars and every start tag, and checks the tags balance."""

    VOID = {"meta", "br", "hr", "img", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.bars: dict[str, dict[str, float]] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag not in self.VOID:
            self.stack.append(tag)
        values = dict(attrs)
        if tag == "div" and "bar" in (values.get("class") or "").split():
            style = dict(part.split(":") for part in (values.get("style") or "").split(";") if part)
            name = (values.get("title") or "").split(":")[0]
            self.bars[name] = {k: float(v.rstrip("%")) for k, v in style.items()}

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_well_formed_with_proportional_timeline() -> None:
    report = _run()
    page = _Page()
    page.feed(html(report))
    page.close()
    assert page.stack == [], "every element is closed"
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    timed = [p for p in report.phases if p.started_at is not None]
    assert set(page.bars) == {p.name for p in report.phases}
    base = page.bars["export"]["width"] / 30.0
    for p in timed:
        bar = page.bars[p.name]
        assert bar["width"] == pytest.approx(p.seconds * base, abs=0.01), p.name
        assert bar["left"] == pytest.approx((p.started_at - T0) * base, abs=0.01), p.name
    assert page.bars["soak"]["width"] == 0
    assert (
        page.bars["traffic"]["width"] > page.bars["import"]["width"] > page.bars["export"]["width"]
    )
    text = "".join(page.text)
    assert SCRIPT in text, "the problem is shown as text"
    assert "11 created, 2 updated" in text and "10 exported of 27 listed" in text


def test_html_escapes_everything_from_the_report() -> None:
    report = _run()
    report.plan_name = SCRIPT
    report.phases[0].name = "<b>export</b>"
    report.alerts = [{"message": SCRIPT}]
    page = html(report)
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page


def test_timeline_bars_stay_in_the_track() -> None:
    resumed = PhaseReport("import", "done", T0, T0 + 10, 50.0)  # worked longer than its span
    bars = timeline_bars([PhaseReport("export", "done", T0, T0 + 50, 50.0), resumed])
    assert all(left >= 0 and left + width <= 100.0001 for _p, left, width in bars)


# -- the terminal views -----------------------------------------------------------------------


def _console():
    from rich.console import Console

    return Console(record=True, width=120, force_terminal=True, color_system=None)


def test_render_preflight() -> None:
    from migrator.cli.plan_view import render_preflight

    console = _console()
    render_preflight(console, {"ready": False, "checks": [
        {"name": "versions", "status": "pass", "summary": "1.21 → 1.33", "action": "",
         "details": []},
        {"name": "certificates", "status": "fail", "summary": "the API server's expires in 3 days",
         "action": "renew it before the migration", "details": ["old: apiserver 2026-12-09"]},
        {"name": "quotas", "status": "skip", "summary": "skipped by the plan", "details": []},
    ]})  # fmt: skip
    lines = console.export_text().splitlines()
    assert lines[0].startswith("PASS") and "versions: 1.21 → 1.33" in lines[0]
    fail = next(i for i, line in enumerate(lines) if line.startswith("FAIL"))
    assert "certificates: the API server's expires in 3 days" in lines[fail]
    assert "renew it before the migration" in lines[fail + 1]
    assert "old: apiserver 2026-12-09" in lines[fail + 2]
    assert any(line.startswith("SKIP") and "quotas" in line for line in lines)
    assert "not ready" in lines[-1]


def test_render_run() -> None:
    from migrator.cli.plan_view import render_run

    console = _console()
    render_run(console, _run())
    text = console.export_text()
    for figure in ("11 created, 2 updated, 1 unchanged, 3 skipped, 1 failed",
                   "10 exported of 27 listed", "42 checked, 0 different, 1 missing",
                   "import: 1 problem(s)", SCRIPT, "5m 00s", "import stuck for 600s"):  # fmt: skip
        assert figure in text, figure


def _plan(**kw) -> Plan:
    return Plan(
        name="shop",
        file=None,
        source=ClusterRef("old", "old-prod"),
        target=ClusterRef("new", "new-prod"),
        store=StoreRef("s3://bucket"),
        **kw,
    )


def test_phases_from_the_plan() -> None:
    hooks = Hooks(
        {
            "preExport": (Hook("hooks.preExport[0]", run="make freeze"),),
            "postShift": (Hook("hooks.postShift[0]", run="notify", retries=2),),
        }
    )
    rows = phases(_plan(hooks=hooks, volumes=VolumeSettings(stage_passes=2, parallel=3)))
    by_name = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows] == [
        "preflight", "export", "volumes-first", "transform", "import", "volumes-stage-1",
        "volumes-stage-2", "verify", "volumes-final", "verify-data", "start", "shift", "soak",
        "teardown"]
    assert by_name["volumes-first"]["does"] == (
        "first volume pass while the applications run: backups (mover Jobs), 3 at a time")
    assert by_name["volumes-final"]["does"].startswith("stop the writers (scale the workloads")
    assert by_name["export"]["hooks"][0]["does"].startswith("run make freeze")
    assert by_name["export"]["hooks"][0]["when"] == "before"
    assert by_name["shift"]["skipped"] and by_name["shift"]["hooks"][0]["point"] == "postShift"
    none = {r["name"]: r for r in phases(_plan(volumes=VolumeSettings(method="none")))}
    assert none["volumes-first"]["skipped"] and none["volumes-final"]["skipped"]


def test_render_preview() -> None:
    from migrator.cli.plan_view import render_preview

    preview = Preview(
        plan="shop",
        source={"context": "old", "name": "old-prod", "available": True, "version": "v1.21.14",
                "server": "https://old"},
        target={"context": "new", "name": "new-prod", "available": False,
                "reason": "cannot reach https://new"},
        objects={"available": True, "total": 3, "scope": {"excludeNamespaces": ["kube-system"]},
                 "types": [{"resource": "deployments.apps", "kind": "Deployment",
                            "groupVersion": "apps/v1", "namespaced": True, "objects": 3}],
                 "leftOut": [{"resource": "events", "objects": 9, "rule": "regenerated",
                              "reason": "the new cluster makes its own"}]},
        conversions={"available": False, "reason": "the target cluster (new) cannot be read"},
        volumes={"available": True, "method": "mover", "stagePasses": 1, "parallel": 2,
                 "quiesce": "scale", "totalBytes": 2**30,
                 "claims": [{"claim": "shop/data", "size": "1Gi", "bytes": 2**30,
                             "storageClass": "local", "targetClass": "gp3", "phase": "Bound"}]},
        traffic={"available": True, "provider": "rfc2136",
                 "names": {"shop.example.com": {"old": "10.0.0.1", "new": "10.0.1.1"}},
                 "before": ["shop.example.com A 10.0.0.1"],
                 "steps": [{"label": "25 % to new", "waitSeconds": 120, "gated": True,
                            "approve": False, "changes": 2,
                            "weights": {"shop.example.com": {"old": 0.75, "new": 0.25}}}]},
        phases=phases(_plan()),
    )  # fmt: skip
    console = _console()
    render_preview(console, preview)
    text = console.export_text()
    for figure in ("unavailable: cannot reach https://new", "deployments.apps", "Deployment",
                   "3 in 1 resource types", "events", "the new cluster makes its own",
                   "the target cluster (new) cannot be read", "shop/data", "1Gi", "gp3",
                   "1.1 GB requested", "1 stage pass + final", "old 75% → new 25%",
                   "wait 120s with gates", "quiesce: scale"):  # fmt: skip
        assert figure in text, figure
    assert json.loads(json.dumps(preview.to_dict()))["unavailable"] == {
        "target": "cannot reach https://new",
        "conversions": "the target cluster (new) cannot be read",
    }


def test_brackets_in_messages_are_text_not_markup() -> None:
    from migrator.cli.plan_view import render_run

    report = _run()
    message = "spec.containers[0]: [/x] refused [bold]here"
    report.phases[2].problems = [message]
    report.phases[2].summary = {"reason": message}
    console = _console()
    render_run(console, report)
    assert console.export_text().count(message) == 2


def test_the_data_check_says_what_was_compared() -> None:
    volume = {"volume": "shop/data", "ok": True, "files": 3, "bytes": 1500, "differences": []}
    phase = PhaseReport("verify-data", "done", summary={"volumes": [volume], "files": 3,
                                                        "bytes": 1500})
    assert headline(phase) == [("compared", "1 volumes, 3 files, 1.5 kB"),
                               ("verdict", "all identical")]
    bad = {**volume, "ok": False, "differences": ["content of a"]}
    phase.summary["volumes"] = [volume, bad]
    assert headline(phase)[1] == ("verdict", "1 differ")
