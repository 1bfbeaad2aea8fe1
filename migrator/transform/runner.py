"""The transform runner: a snapshot in, a new snapshot out, object by object.

Each object goes through, in order: the built-in conversion (when the target no longer
serves its group/version), the built-in normalisers (pod templates), the cluster-difference
rules, then the user's rules. Every change keeps the name of what made it. The object is
written into the resource of its *new* group/version/kind (an extensions/v1beta1 Ingress
lands in ``networking.k8s.io/v1/ingresses``), and an identity already written there (the same
object exported under two versions) is not written twice: resources the target serves as
they are come first, so the server-converted copy wins over our own conversion.

Memory stays bounded: one object at a time, plus one open part per target resource and the
identities written (namespace and name, to refuse duplicates). The source is only read.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.resources.identity import split_api_version
from migrator.resources.inventory import TARGET_WINS
from migrator.resources.objects import Obj, object_ref
from migrator.run.progress import Progress
from migrator.snapshot import ResourceEntry, ResourceWriter, SnapshotReader, SnapshotWriter
from migrator.snapshot.layout import api_version, resource_folder, typed
from migrator.transform import builtin
from migrator.transform.base import Change, Severity
from migrator.transform.differences import DifferenceRule, applies
from migrator.transform.kinds import Placement, Resolver
from migrator.transform.podsecurity import PodSecuritySurvey
from migrator.transform.podspecs import group_kind
from migrator.transform.report import TransformReport, is_sensitive
from migrator.transform.rules import RuleSet

log = logging.getLogger(__name__)

Serves = Callable[[str], bool]
_PROGRESS_EVERY = 500  # objects between progress reports


@dataclass(frozen=True)
class TransformOptions:
    """How to run: what the target is (recorded), and the seams to the built-ins."""

    target: Mapping[str, Any] = field(default_factory=dict)  # {"context"...} or {"version"...}
    resolver: Resolver = field(default_factory=Resolver)
    converter: builtin.Converter = builtin.convert
    normalizers: tuple[tuple[str, builtin.Normalizer], ...] = builtin.NORMALIZERS
    differences_settings: Mapping[str, Any] = field(default_factory=dict)  # recorded only
    target_wins: tuple[Mapping[str, str], ...] = ()  # objects yielding to the target's own
    pod_security: PodSecuritySurvey | None = None  # the namespaces' Pod Security levels
    on_progress: Progress | None = None  # ("objects", done, total in the snapshot)
    conversion_webhooks: Mapping[str, str] = field(default_factory=dict)  # CRD → what is done


def _tag(changes: list[Change], source: str) -> list[Change]:
    """Fill in ``source`` where the maker left it empty."""
    return [c if c.source else dataclasses.replace(c, source=source) for c in changes]


class Pipeline:
    """The steps one object goes through; ``run`` returns the new object (or None) and changes."""

    def __init__(
        self,
        serves: Serves,
        rules: RuleSet | None,
        differences: list[DifferenceRule],
        options: TransformOptions,
    ) -> None:
        self.serves = serves
        self.rules = rules
        self.differences = differences
        self.steps: list[tuple[str, builtin.Normalizer]] = [
            ("conversion", lambda obj: options.converter(obj, serves)),
            *options.normalizers,
        ]

    def run(self, obj: Obj) -> tuple[Obj | None, list[Change]]:
        changes: list[Change] = []
        for name, step in self.steps:
            result = step(obj)
            source = f"{name} {obj.get('apiVersion')} {obj.get('kind')}"
            changes += _tag(result.changes, source)
            if result.obj is None:
                return None, changes
            obj = result.obj
        kind = group_kind(obj)
        for rule in self.differences:
            if applies(rule, kind):
                changes += _tag(rule.apply(obj), rule.name)
        if self.rules is not None:
            obj, made = self.rules.apply(obj)
            changes += made
        return obj, changes


class _Sinks:
    """One open resource writer per target resource, and the identities written to each."""

    def __init__(self, writer: SnapshotWriter) -> None:
        self.writer = writer
        self.open: dict[tuple[str, str, str], ResourceWriter] = {}
        self.seen: dict[tuple[str, str, str], set[tuple[str, str]]] = {}

    def get(self, place: Placement) -> ResourceWriter:
        sink = self.open.get(place.ident)
        if sink is None:
            sink = self.writer.resource(
                place.group, place.version, place.resource, place.kind, place.namespaced
            )
            self.open[place.ident] = sink
            self.seen[place.ident] = set()
        return sink

    def claim(self, place: Placement, obj: Obj) -> bool:
        """False if an object of this identity was already written to ``place``."""
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            return True
        key = (str(meta.get("namespace") or ""), str(name))
        seen = self.seen[place.ident]
        if key in seen:
            return False
        seen.add(key)
        return True

    def close(self) -> None:
        for sink in self.open.values():
            sink.close()

    def abort(self) -> None:
        for sink in self.open.values():
            sink.abort()


def _entry_placement(entry: ResourceEntry) -> Placement:
    return Placement(
        entry["group"], entry["version"], entry["resource"], entry["kind"], entry["namespaced"]
    )


class _Run:
    """The state of one transform: pipeline, sinks, report."""

    def __init__(
        self,
        reader: SnapshotReader,
        writer: SnapshotWriter,
        pipeline: Pipeline,
        options: TransformOptions,
        report: TransformReport,
    ) -> None:
        self.reader = reader
        self.pipeline = pipeline
        self.options = options
        self.report = report
        self.sinks = _Sinks(writer)
        self.done = 0
        self.total = sum(e["objects"] for e in reader.resources())

    def resource(self, entry: ResourceEntry) -> None:
        if entry["objects"] == 0:
            if self.pipeline.serves(api_version(entry)):
                self.sinks.get(_entry_placement(entry))  # an empty type stays visible
            return
        for obj, aside in self.reader.iter_with_aside(entry):
            self.one(entry, typed(obj, entry), aside)
            self.done += 1
            if self.options.on_progress is not None and self.done % _PROGRESS_EVERY == 0:
                self.options.on_progress("objects", self.done, self.total)

    def one(self, entry: ResourceEntry, obj: Obj, aside: Obj | None) -> None:
        source = object_ref(obj)  # before any step: difference rules change in place
        sensitive = is_sensitive(obj)
        counts = self.report.count(f"{source['apiVersion']} {source['kind']}")
        counts.read += 1
        new, changes = self.pipeline.run(obj)
        if new is None:
            counts.dropped += 1
            self.report.record(source, "dropped", changes, sensitive=sensitive)
            return
        sensitive = sensitive or is_sensitive(new)
        place, more = self.placement(entry, new)
        changes += more
        folder = resource_folder(*place.ident)
        sink = self.sinks.get(place)
        if not self.sinks.claim(place, new):
            counts.duplicates += 1
            self.report.record(
                source,
                "duplicate",
                changes
                + [
                    Change(
                        path="",
                        action="skip",
                        source="runner",
                        reason=f"the same object is already in {folder} (read through another "
                        "version); written once",
                    )
                ],
                sensitive=sensitive,
            )
            return
        sink.write(new, aside)
        counts.written += 1
        if changes:
            counts.changed += 1
            self.report.record(
                source, "changed", changes, sensitive=sensitive, written=new, resource=folder
            )

    def placement(self, entry: ResourceEntry, obj: Obj) -> tuple[Placement, list[Change]]:
        """Where ``obj`` is written: its own resource if unchanged, else the resolved one."""
        gv, kind = str(obj.get("apiVersion") or ""), str(obj.get("kind") or "")
        if gv == api_version(entry) and kind == entry["kind"]:
            return _entry_placement(entry), []
        place = self.options.resolver.placement(gv, kind)
        if place is not None:
            return place, []
        group, version = split_api_version(gv)
        guess = Placement(group, version, kind.lower() + "s", kind, entry["namespaced"])
        return guess, [
            Change(
                path="",
                action="keep",
                severity=Severity.REVIEW,
                source="runner",
                reason=f"no resource known for {gv} {kind}: stored as {guess.resource}",
            )
        ]


def transform(
    reader: SnapshotReader,
    writer: SnapshotWriter,
    *,
    serves: Serves,
    rules: RuleSet | None,
    differences: list[DifferenceRule],
    options: TransformOptions,
) -> TransformReport:
    """Transform every object of ``reader`` into ``writer`` and commit it; see the module doc.

    The new manifest records ``parent`` (the source snapshot id), the target, the rules
    file (path, sha256 and content) and ``options.differences_settings`` (the rules in
    ``differences`` are what is applied; the settings say how they were configured).
    """
    started = time.monotonic()
    report = TransformReport(
        source_snapshot=reader.snapshot_id,
        snapshot_id=writer.snapshot_id,
        target=dict(options.target),
        rules={"file": rules.file, "sha256": rules.sha256} if rules is not None else None,
        differences=dict(options.differences_settings),
        conversion_webhooks=dict(options.conversion_webhooks),
    )
    run = _Run(reader, writer, Pipeline(serves, rules, differences, options), options, report)
    entries = sorted(reader.resources(), key=lambda e: not serves(api_version(e)))
    try:
        for entry in entries:
            run.resource(entry)
        run.sinks.close()
    except BaseException:
        run.sinks.abort()
        raise
    if options.pod_security is not None:
        report.pod_security = options.pod_security.to_dict()
    report.seconds = time.monotonic() - started
    writer.commit(
        parent=reader.snapshot_id,
        source=reader.manifest.get("source"),
        target=dict(options.target),
        transform={
            "rules": rules.to_manifest() if rules is not None else None,
            "differences": dict(options.differences_settings),
            "summary": report.summary(),
            TARGET_WINS: [dict(y) for y in options.target_wins],
        },
    )
    log.info(
        "transform %s → %s: %d objects in %.1fs",
        reader.snapshot_id,
        writer.snapshot_id,
        run.done,
        report.seconds,
    )
    return report
