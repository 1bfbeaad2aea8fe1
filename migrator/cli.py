"""The ``migrator`` command line: parse options, call the core, render the result.

The only module that imports click or rich, and the only place that maps exceptions to exit
codes: a :class:`~migrator.errors.MigratorError` becomes ``error: <message>`` (and its hint) on
stderr and the error's ``exit_code``; a traceback only with ``-v``.
"""
from __future__ import annotations

import contextlib
import json
import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from migrator import __version__, crypto, kube
from migrator.cluster_report import cluster_report, compare_reports
from migrator.errors import (
    ConfigError,
    MigratorError,
    NeedsAttention,
    PartialFailure,
    SnapshotCorrupt,
    SnapshotExists,
    ValidationRejected,
    VerificationFailed,
)
from migrator.export import ExportOptions, ExportReport, connections_needed, export_cluster
from migrator.importer import (
    ConflictPolicy,
    ImportOptions,
    ImportReport,
    ImportScope,
    import_snapshot,
)
from migrator.snapshot import SnapshotReader, list_snapshots
from migrator.store import open_store
from migrator.transform.checkapis import check_apis, live_objects, snapshot_objects
from migrator.transform.differences import (
    DifferencesConfig,
    DifferencesInvalid,
    check_cluster_ip,
    parse_cidrs,
    parse_pairs,
)
from migrator.transform.report import describe_ref
from migrator.transform.rules import RuleSet, load_rules
from migrator.transform.stage import (
    Target,
    crd_group_versions,
    live_crds,
    parse_address,
    run_transform,
    snapshot_crds,
    target_from_cluster,
    target_from_version,
    with_custom_resources,
)

if TYPE_CHECKING:  # migrator.verify imports deepdiff, slow to load: only `verify` needs it
    from migrator.verify import VerifyReport

_VERBOSE_KEY = "migrator.verbose"

Rows = list[tuple[str, str]]
ProgressCallback = Callable[[str, int, int | None], None]


class _MigratorGroup(click.Group):
    """A click group that turns a MigratorError into a one-line message and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MigratorError as exc:
            if ctx.meta.get(_VERBOSE_KEY, 0) > 0:
                click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
            click.echo(f"error: {exc}", err=True)
            if exc.hint:
                click.echo(f"hint: {exc.hint}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_MigratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="migrator")
@click.option(
    "-v", "--verbose", count=True, help="More logging (-v: info and tracebacks, -vv: debug)."
)
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Migrate everything from one Kubernetes cluster to a new one."""
    ctx.meta[_VERBOSE_KEY] = verbose
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("migrator").setLevel(level)


@cli.command()
@click.option(
    "--context",
    "contexts",
    multiple=True,
    help="Kubeconfig context to inspect; repeat to compare (the first is the source). "
    "Default: the current-context.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.",
)
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def discover(contexts: tuple[str, ...], kubeconfig: Path | None, output: str) -> None:
    """Show each cluster's version, nodes and APIs, and what the target lacks."""
    reports = []
    for context in contexts or (None,):
        with kube.connect(kubeconfig, context) as cluster:
            reports.append(cluster_report(cluster))
    comparison = compare_reports(reports) if len(reports) > 1 else None
    if output == "json":
        click.echo(json.dumps({"clusters": reports, "comparison": comparison}, indent=2))
        return
    console = Console()
    for report in reports:
        _render(console, f"Cluster {report['context']}", _report_rows(report))
    if comparison is not None:
        for target in comparison["targets"]:
            title = f"{comparison['source']} → {target['target']}"
            _render(console, title, _comparison_rows(comparison["source"], target))


def _report_rows(report: Mapping[str, Any]) -> Rows:
    nodes = report["nodes"]
    rows = [
        ("server", report["server"]),
        ("version", report["version"]["gitVersion"]),
        ("nodes", f"{nodes['count']} ({nodes['ready']} ready)"),
        ("group/versions", str(len(report["groupVersions"]))),
        ("resource types", str(report["resourceTypes"])),
        ("deprecated served", _removal_list(report["deprecatedGroupVersions"]) or "none"),
    ]
    failed = report["failedDiscovery"]
    rows += [(f"discovery failed: {gv}", reason) for gv, reason in failed.items()]
    return rows


def _comparison_rows(source: str, target: Mapping[str, Any]) -> Rows:
    return [
        (f"served by {source} only", _removal_list(target["missingInTarget"]) or "none"),
        (f"served by {target['target']} only", "\n".join(target["onlyInTarget"]) or "none"),
    ]


def _removal_list(entries: Sequence[Mapping[str, Any]]) -> str:
    """One group/version a line, with the release that removed it."""
    return "\n".join(
        f"{entry['groupVersion']} (removed in {entry['removedIn']})"
        if entry["removedIn"]
        else entry["groupVersion"]
        for entry in entries
    )


def _render(console: Console, title: str, rows: Rows) -> None:
    """A key/value table on a terminal, plain aligned text otherwise (pipes, CI logs)."""
    if console.is_terminal:
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in rows:
            table.add_row(key, value)
        console.print(table)
        return
    width = max(len(key) for key, _value in rows)
    click.echo(title)
    for key, value in rows:
        first, *rest = value.split("\n")
        click.echo(f"  {key.ljust(width)}  {first}")
        for line in rest:
            click.echo(f"  {' ' * width}  {line}")
    click.echo()


_KUBECONFIG_OPTION = click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.",
)
_OUTPUT_OPTION = click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text for people, json for machines.",
)
_S3_ENDPOINT_OPTION = click.option(
    "--s3-endpoint",
    metavar="URL",
    default=None,
    help="S3 endpoint for s3:// stores (MinIO and other S3-compatible servers). Default: "
    "AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS itself.",
)
DEFAULT_STORE = "./snapshots"


@cli.command()
@click.option("--from", "source", required=True, metavar="CONTEXT",
              help="Kubeconfig context of the cluster to export (the old cluster).")
@_KUBECONFIG_OPTION
@click.option("--to", "url", default=DEFAULT_STORE, show_default=True, metavar="URL",
              help="Where snapshots go: a directory, file:///path or s3://bucket/prefix.")
@click.option("--target", metavar="CONTEXT", default=None,
              help="Context of the new cluster: objects are read at the newest version both "
              "clusters serve, so the old API server converts them. Default: the source's "
              "preferred versions.")
@click.option("--id", "snapshot_id", metavar="ID", default=None,
              help="Snapshot id. Default: <context>-<UTC time>. Re-running with the id of an "
              "interrupted export resumes it.")
@click.option("--include-namespace", "include_namespaces", multiple=True, metavar="NS",
              help="Export only these namespaces (repeatable). Cluster-scoped types are then "
              "left out unless --cluster-scoped is given.")
@click.option("--exclude-namespace", "exclude_namespaces", multiple=True, metavar="NS",
              help="Leave these namespaces out (repeatable).")
@click.option("-l", "--selector", "label_selector", metavar="SELECTOR", default=None,
              help="Export only objects matching this label selector (e.g. app=shop,tier!=db); "
              "applies to every type, Namespaces included.")
@click.option("--include-resource", "include_resources", multiple=True, metavar="R",
              help="Export only these resource types, named as kubectl does: deployments, "
              "deployments.apps, deploy, ingresses.extensions (repeatable).")
@click.option("--exclude-resource", "exclude_resources", multiple=True, metavar="R",
              help="Leave these resource types out (repeatable).")
@click.option("--cluster-scoped/--no-cluster-scoped", default=None,
              help="Export cluster-scoped types (CRDs, ClusterRoles, PVs, ...). Default: yes, "
              "unless --include-namespace is given (then only those Namespace objects).")
@click.option("--include-system-namespaces", is_flag=True,
              help="Also export kube-system, kube-public and kube-node-lease.")
@click.option("--keep-node-ports", is_flag=True,
              help="Keep Services' nodePorts (they are stripped by default, to be allocated "
              "anew).")
@click.option("--keep-cluster-ips", is_flag=True,
              help="Keep Services' clusterIP(s) (stripped by default), for `migrator transform "
              "--cluster-ip keep|remap`. Recorded in the snapshot's manifest.")
@click.option("--encrypt-key-file", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help=f"Encrypt every data part with this key (AES-256-GCM; 32 raw bytes, 64 hex "
              f"characters or base64). Default: ${crypto.KEY_ENV} if set, else no encryption.")
@_S3_ENDPOINT_OPTION
@click.option("--workers", type=click.IntRange(1, 64), default=6, show_default=True,
              help="Resource types listed at the same time.")
@click.option("--restart", is_flag=True,
              help="Start snapshot ID over, discarding what an earlier run of it wrote "
              "(also replaces a complete snapshot of that id).")
@_OUTPUT_OPTION
def export(
    source: str,
    kubeconfig: Path | None,
    url: str,
    target: str | None,
    snapshot_id: str | None,
    include_namespaces: tuple[str, ...],
    exclude_namespaces: tuple[str, ...],
    label_selector: str | None,
    include_resources: tuple[str, ...],
    exclude_resources: tuple[str, ...],
    cluster_scoped: bool | None,
    include_system_namespaces: bool,
    keep_node_ports: bool,
    keep_cluster_ips: bool,
    encrypt_key_file: Path | None,
    s3_endpoint: str | None,
    workers: int,
    restart: bool,
    output: str,
) -> None:
    """Snapshot every object of the cluster --from into a store.

    Each object once, at the right version; what the new cluster regenerates is skipped and
    cluster-specific fields are stripped, each with its reason in the report. Exit code 5
    when some resource types could not be listed (the snapshot says which).
    """
    key = crypto.load_key(encrypt_key_file)
    store = open_store(url, s3_endpoint=s3_endpoint)
    options = ExportOptions(
        include_namespaces=include_namespaces,
        exclude_namespaces=exclude_namespaces,
        include_system_namespaces=include_system_namespaces,
        label_selector=label_selector,
        include_resources=include_resources,
        exclude_resources=exclude_resources,
        cluster_scoped=cluster_scoped,
        keep_node_ports=keep_node_ports,
        keep_cluster_ips=keep_cluster_ips,
        workers=workers,
    )
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(
            kube.connect(kubeconfig, source, pool_size=connections_needed(workers))
        )
        new = stack.enter_context(kube.connect(kubeconfig, target)) if target else None
        on_progress = _progress_bars(stack, output)
        try:
            result = export_cluster(
                cluster,
                store,
                snapshot_id=snapshot_id,
                options=options,
                target=new,
                key=key,
                restart=restart,
                on_progress=on_progress,
            )
        except SnapshotExists as exc:
            exc.hint = "choose another --id, or pass --restart to replace it"
            raise
    report = result.report
    if output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _render_export(Console(), report)
    if report.partial:
        failed = ", ".join(sorted(report.errors))
        raise PartialFailure(
            f"snapshot {report.snapshot_id} is missing {len(report.errors)} resource type(s) "
            f"that could not be listed: {failed}",
            hint="fix the cause (see the report), then export again with --restart",
        )


def _progress_bars(stack: contextlib.ExitStack, output: str) -> ProgressCallback | None:
    """Progress bars on stderr when it is a terminal and the output is for people: the
    callback the core stages report to, or None."""
    console = Console(stderr=True)
    if not console.is_terminal or output != "text":
        return None
    return stack.enter_context(_ProgressBars(console)).update


class _ProgressBars:
    """One rich progress bar per resource type, created when the type first reports."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._tasks: dict[str, Any] = {}

    def update(self, resource: str, done: int, total: int | None) -> None:
        if resource not in self._tasks:
            self._tasks[resource] = self._progress.add_task(resource, total=total)
        self._progress.update(self._tasks[resource], completed=done, total=total)

    def __enter__(self) -> _ProgressBars:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]


def _render_export(console: Console, report: ExportReport) -> None:
    data = report.to_dict()
    totals = data["totals"]
    _render(console, f"Snapshot {report.snapshot_id}", [
        ("store", report.store),
        ("source", report.source + (f" (versions for {report.target})" if report.target else "")),
        ("encrypted", "yes" if report.encrypted else "no"),
        ("objects", f"{totals['exported']} exported of {totals['listed']} listed, "
                    f"{totals['skipped']} skipped"),
        ("resource types", f"{totals['resources']} exported, {totals['failedResources']} failed"),
        ("namespaces excluded", ", ".join(data["scope"]["exclude"]) or "none"),
        ("time", f"{report.seconds:.1f}s"),
    ])
    rows = [
        [r.key, r.group_version, r.state, str(r.listed), str(r.exported),
         ", ".join(f"{rule} {n}" for rule, n in sorted(r.skipped.items()))]
        for r in report.resources
        if r.state != "skipped" and (r.listed or r.state == "failed")
    ]
    _render_table(console, "Resource types",
                  ["resource", "version", "state", "listed", "exported", "skipped"], rows)
    left_out = [
        [r.key, r.skip_rule or "", "?" if r.existing is None else str(r.existing)]
        for r in report.resources if r.state == "skipped"
    ]
    _render_table(console, "Types left out", ["resource", "rule", "objects"], left_out)
    stripped: dict[str, int] = {}
    for r in report.resources:
        for name, count in r.stripped.items():
            stripped[name] = stripped.get(name, 0) + count
    _render_table(console, "Fields stripped", ["field", "objects"],
                  [[name, str(n)] for name, n in sorted(stripped.items())])
    used = {r.skip_rule for r in report.resources if r.skip_rule}
    used |= {rule for r in report.resources for rule in r.skipped} | set(stripped)
    _render_table(console, "Why", ["rule", "reason"],
                  [[name, report.legend.get(name, "")] for name in sorted(used)])
    problems = [[f"discovery {gv}", why] for gv, why in report.failed_discovery.items()]
    problems += [[key, why] for key, why in report.errors.items()]
    _render_table(console, "Not exported (errors)", ["what", "error"], problems)


def _render_table(console: Console, title: str, header: list[str], rows: list[list[str]]) -> None:
    """A table with a header on a terminal, plain aligned columns otherwise; nothing if empty."""
    if not rows:
        return
    if console.is_terminal:
        table = Table(title=title, title_justify="left")
        for name in header:
            table.add_column(name, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    click.echo(title)
    for row in [header, *rows]:
        click.echo("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    click.echo()


@cli.group()
def snapshot() -> None:
    """List, show and verify snapshots in a store."""


@snapshot.command("list")
@click.argument("url", default=DEFAULT_STORE)
@_S3_ENDPOINT_OPTION
@_OUTPUT_OPTION
def snapshot_list(url: str, s3_endpoint: str | None, output: str) -> None:
    """List the snapshots in URL (default ./snapshots), complete or interrupted."""
    found = list_snapshots(open_store(url, s3_endpoint=s3_endpoint))
    if output == "json":
        click.echo(json.dumps(found, indent=2))
        return
    rows = [
        [s["id"], str(s["created_at"] or ""), "complete" if s["complete"] else "INTERRUPTED",
         "" if s["objects"] is None else str(s["objects"]), "yes" if s["encrypted"] else "no"]
        for s in found
    ]
    if not rows:
        click.echo(f"no snapshots in {url}")
    _render_table(Console(), f"Snapshots in {url}",
                  ["id", "created", "state", "objects", "encrypted"], rows)


@snapshot.command("show")
@click.argument("url")
@click.argument("snapshot_id", metavar="ID")
@_S3_ENDPOINT_OPTION
@_OUTPUT_OPTION
def snapshot_show(url: str, snapshot_id: str, s3_endpoint: str | None, output: str) -> None:
    """Show snapshot ID of URL: where it came from and what it holds (needs no key)."""
    reader = SnapshotReader(open_store(url, s3_endpoint=s3_endpoint), snapshot_id)
    manifest = reader.manifest
    if output == "json":
        click.echo(json.dumps(manifest, indent=2))
        return
    console = Console()
    source = manifest.get("source") or {}
    export_info = manifest.get("export") or {}
    encryption = manifest.get("encryption")
    resources = reader.resources()
    _render(console, f"Snapshot {snapshot_id}", [
        ("created", f"{manifest.get('created_at')} (completed {manifest.get('completed_at')})"),
        ("source", f"{source.get('context', '?')} {source.get('serverVersion', '')}".strip()),
        ("tool", f"migrator {manifest.get('tool_version')}"),
        ("encrypted", f"{encryption['algorithm']}, key id {encryption['key_id']}"
                      if encryption else "no"),
        ("objects", str(sum(e["objects"] for e in resources))),
        ("parts", str(sum(len(e["parts"]) + len(e.get("aside_parts", [])) for e in resources))),
    ])
    rows = [[_type_name(e["group"], e["resource"]), f"{e['group'] or 'core'}/{e['version']}",
             str(e["objects"])] for e in resources]
    _render_table(console, "Resources", ["resource", "version", "objects"], rows)
    problems = [[f"discovery {gv}", why] for gv, why in
                (export_info.get("failedDiscovery") or {}).items()]
    problems += [[key, why] for key, why in (export_info.get("errors") or {}).items()]
    _render_table(console, "Not in this snapshot (errors at export)", ["what", "error"], problems)


def _type_name(group: str, resource: str) -> str:
    return f"{resource}.{group}" if group else resource


@snapshot.command("verify")
@click.argument("url")
@click.argument("snapshot_id", metavar="ID")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=f"Key of an encrypted snapshot (default: ${crypto.KEY_ENV}): with it every "
              "part is also decrypted and decoded, not only checksummed.")
@_S3_ENDPOINT_OPTION
@_OUTPUT_OPTION
def snapshot_verify(
    url: str, snapshot_id: str, key_file: Path | None, s3_endpoint: str | None, output: str
) -> None:
    """Check every part of snapshot ID against its manifest (size and sha256).

    Exits non-zero if anything is missing, modified or undecodable. Unencrypted snapshots,
    and encrypted ones given their key, are also decoded object by object.
    """
    key = crypto.load_key(key_file)
    reader = SnapshotReader(open_store(url, s3_endpoint=s3_endpoint), snapshot_id, key=key)
    result = reader.verify()
    problems = [{"part": p.key, "problem": p.problem} for p in result.problems]
    decoded = None
    if not problems and (key is not None or not reader.encrypted):
        decoded = 0
        for entry in reader.resources():
            try:
                decoded += sum(1 for _ in reader.iter_objects(entry))
                sum(1 for _ in reader.iter_aside(entry))
            except SnapshotCorrupt as exc:
                problems.append({"part": exc.part or "?", "problem": str(exc)})
    summary = {"snapshotId": snapshot_id, "parts": result.parts, "bytes": result.bytes,
               "objectsDecoded": decoded, "problems": problems, "ok": not problems}
    if output == "json":
        click.echo(json.dumps(summary, indent=2))
    else:
        checked = f"{result.parts} parts, {result.bytes} bytes checked"
        if decoded is not None:
            checked += f", {decoded} objects decoded"
        click.echo(f"snapshot {snapshot_id}: {checked}")
        for problem in problems:
            click.echo(f"  {problem['part']}: {problem['problem']}")
    if problems:
        raise SnapshotCorrupt(f"snapshot {snapshot_id} failed verification: "
                              f"{len(problems)} problem(s)")


def _target(kubeconfig: Path | None, context: str | None, version: str | None,
            stack: contextlib.ExitStack) -> Target:
    """The target of transform/check-apis: a live context or a release (exactly one)."""
    if (context is None) == (version is None):
        raise click.UsageError("give exactly one of --target CONTEXT or --target-version V")
    if version is not None:
        return target_from_version(version)
    return target_from_cluster(stack.enter_context(kube.connect(kubeconfig, context)))


def _differences(rules: RuleSet | None, storage_class: tuple[str, ...],
                 registry: tuple[str, ...], namespace_map: tuple[str, ...],
                 cluster_ip: str | None, service_cidr: tuple[str, ...],
                 pod_cidr: tuple[str, ...], ingress_class: tuple[str, ...]) -> DifferencesConfig:
    """The rules file's differences with the CLI flags laid over them, key by key."""
    try:
        flags = DifferencesConfig(
            storage_classes=parse_pairs(storage_class, "--storage-class"),
            registries=parse_pairs(registry, "--registry"),
            namespaces=parse_pairs(namespace_map, "--namespace-map"),
            ingress_classes=parse_pairs(ingress_class, "--ingress-class"),
            cluster_ip=cluster_ip,
            service_cidrs=parse_cidrs(service_cidr, "--service-cidr"),
            pod_cidrs=parse_cidrs(pod_cidr, "--pod-cidr"),
        )
        merged = (rules.differences if rules is not None else DifferencesConfig()).merged(flags)
        check_cluster_ip(merged.cluster_ip, merged.service_cidrs, "--cluster-ip")
    except DifferencesInvalid as exc:
        raise ConfigError(str(exc)) from exc
    return merged


_SNAPSHOT_HELP = (
    "SNAPSHOT is a snapshot id in --from-store (default ./snapshots, where `migrator export` "
    "writes), or STORE_URL/ID to name the store too: ./snapshots/ID, "
    "s3://bucket/prefix/ID."
)
_FROM_STORE_OPTION = click.option(
    "--from-store", "from_store", default=DEFAULT_STORE, show_default=True, metavar="URL",
    help="Store holding the source snapshot when SNAPSHOT is a bare id.")
_TARGET_OPTIONS = (
    click.option("--target", "target_context", metavar="CONTEXT", default=None,
                  help="Kubeconfig context of the new cluster: its discovery decides what is "
                  "served."),
    click.option("--target-version", metavar="V", default=None,
                  help="Release of the new cluster (e.g. 1.33) when it is not reachable: the "
                  "built-in table of API removals decides."),
)
_KEY_OPTION = click.option(
    "--encrypt-key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help=f"Key of an encrypted snapshot (default: ${crypto.KEY_ENV}); the new snapshot is "
    "encrypted with it too.")


def _with(*options: Any) -> Any:
    """Apply several click options in order (shared option groups)."""
    def decorate(fn: Any) -> Any:
        for option in reversed(options):
            fn = option(fn)
        return fn
    return decorate


@cli.command(epilog=_SNAPSHOT_HELP)
@click.argument("snapshot")
@_with(_FROM_STORE_OPTION, *_TARGET_OPTIONS)
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="User rules file (YAML: rules and differences); validated "
              "before anything is read.")
@click.option("--out", "out_url", default=None, metavar="URL",
              help="Store for the new snapshot. Default: the source's store.")
@click.option("--id", "new_id", default=None, metavar="NEW_ID",
              help="Id of the new snapshot. Default: <source id>-<target>-<UTC time>.")
@_KUBECONFIG_OPTION
@click.option("--validate", is_flag=True,
              help="Dry-run every transformed object on the target (server-side); exit "
              "non-zero if any is rejected.")
@click.option("--storage-class", multiple=True, metavar="OLD=NEW",
              help="Map a storage class (PVs, PVCs, StatefulSet claim templates, the "
              "StorageClass itself). Repeatable.")
@click.option("--registry", multiple=True, metavar="OLD=NEW",
              help="Rewrite an image registry prefix in every container. Repeatable.")
@click.option("--namespace-map", multiple=True, metavar="OLD=NEW",
              help="Rename a namespace; references (bindings, claimRefs, webhooks...) "
              "follow. Repeatable.")
@click.option("--cluster-ip", type=click.Choice(["drop", "keep", "remap"]), default=None,
              help="Service cluster IPs: drop (allocate anew), keep, or remap into the new "
              "service CIDR at the same offset (needs --service-cidr).")
@click.option("--service-cidr", multiple=True, metavar="OLD=NEW",
              help="Old and new service CIDR for --cluster-ip remap (repeat for dual stack).")
@click.option("--pod-cidr", multiple=True, metavar="OLD=NEW",
              help="Rewrite NetworkPolicy ipBlocks inside the old pod CIDR into the new one.")
@click.option("--ingress-class", multiple=True, metavar="OLD=NEW",
              help="Map an ingress class (ingressClassName, annotation, IngressClass).")
@click.option("--last-applied", type=click.Choice(["rewrite", "drop", "keep"]),
              default="rewrite", show_default=True,
              help="kubectl's last-applied annotation at a removed apiVersion: rewrite it with "
              "the object's conversion (kubectl apply keeps working), drop it, or keep it.")
@_KEY_OPTION
@_S3_ENDPOINT_OPTION
@_OUTPUT_OPTION
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Also write the full JSON report (every change) here.")
def transform(
    snapshot: str, from_store: str, target_context: str | None, target_version: str | None,
    rules_file: Path | None, out_url: str | None, new_id: str | None,
    kubeconfig: Path | None, validate: bool, storage_class: tuple[str, ...],
    registry: tuple[str, ...], namespace_map: tuple[str, ...], cluster_ip: str | None,
    service_cidr: tuple[str, ...], pod_cidr: tuple[str, ...], ingress_class: tuple[str, ...],
    last_applied: str, encrypt_key_file: Path | None, s3_endpoint: str | None, output: str,
    report_file: Path | None,
) -> None:
    """Rewrite snapshot SNAPSHOT for the target cluster into a new snapshot.

    Removed API versions are converted field by field, then the cluster differences asked
    for and the user rules are applied; every change is reported object by object. The
    source snapshot is only read.
    """
    rules = load_rules(rules_file) if rules_file is not None else None
    differences = _differences(rules, storage_class, registry, namespace_map, cluster_ip,
                               service_cidr, pod_cidr, ingress_class)
    key = crypto.load_key(encrypt_key_file)
    store_url, source_id = parse_address(snapshot, from_store)
    with contextlib.ExitStack() as stack:
        target = _target(kubeconfig, target_context, target_version, stack)
        source = open_store(store_url, s3_endpoint=s3_endpoint)
        out = open_store(out_url, s3_endpoint=s3_endpoint) if out_url else source
        try:
            result = run_transform(source=source, source_id=source_id, out=out, out_id=new_id,
                                   target=target, rules=rules, differences=differences,
                                   key=key, validate=validate, last_applied=last_applied)
        except SnapshotExists as exc:
            exc.hint = "choose another --id"
            raise
    data = result.report.to_dict()
    if result.validation is not None:
        data["validation"] = result.validation.to_dict()
    if report_file is not None:
        report_file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        _render_transform(Console(), result.report.summary(), out.url)
        if result.validation is not None:
            _render_validation(Console(), result.validation.to_dict())
    if result.validation is not None and result.validation.rejected:
        raise ValidationRejected(
            f"the target rejected {len(result.validation.rejected)} transformed object(s) "
            "in a dry-run", hint="see the messages above; fix them with a rule and run again")


def _render_transform(console: Console, summary: Mapping[str, Any], store: str) -> None:
    totals = summary["totals"]
    _render(console, f"Snapshot {summary['snapshotId']}", [
        ("from", f"{summary['sourceSnapshot']} (unchanged)"),
        ("store", store),
        ("target", ", ".join(f"{k} {v}" for k, v in summary["target"].items())),
        ("objects", f"{totals['written']} written of {totals['read']} read: "
                    f"{totals['changed']} changed, {totals['dropped']} dropped, "
                    f"{totals['duplicates']} duplicates"),
        ("changes", ", ".join(f"{n} {s}" for s, n in summary["bySeverity"].items()) or "none"),
    ])
    _render_table(console, "By kind (as read)",
                  ["kind", "read", "written", "changed", "dropped", "duplicates"],
                  [[k, *(str(v[f]) for f in ("read", "written", "changed", "dropped",
                                             "duplicates"))]
                   for k, v in summary["byKind"].items()])
    _render_table(console, "Needs a person", ["object", "why"],
                  [[n["object"], "; ".join(n["why"])] for n in summary["needsPerson"]])


def _render_validation(console: Console, validation: Mapping[str, Any]) -> None:
    outcomes = ", ".join(f"{n} {o}" for o, n in validation["outcomes"].items()) or "nothing"
    click.echo(f"Dry-run on {validation['target']}: {outcomes}")
    _render_table(console, "Not accepted", ["object", "outcome", "message"],
                  [[describe_ref(p["object"]), p["outcome"], p["message"]]
                   for p in validation["problems"]])


@cli.command("check-apis", epilog=_SNAPSHOT_HELP.replace("SNAPSHOT is", "--snapshot takes"))
@click.option("--snapshot", default=None, metavar="SNAPSHOT",
              help="Check the objects of this snapshot.")
@click.option("--from", "source_context", default=None, metavar="CONTEXT",
              help="Check the objects of this live cluster instead.")
@_with(_FROM_STORE_OPTION, *_TARGET_OPTIONS)
@_KUBECONFIG_OPTION
@_KEY_OPTION
@_S3_ENDPOINT_OPTION
@_OUTPUT_OPTION
def check_apis_command(
    snapshot: str | None, source_context: str | None, from_store: str,
    target_context: str | None, target_version: str | None, kubeconfig: Path | None,
    encrypt_key_file: Path | None, s3_endpoint: str | None, output: str,
) -> None:
    """Say what the transform will do to each object whose API the target lacks.

    convert, convert with a change a person must review or a loss, or drop with a suggested
    replacement. Exit code 1 when something needs a person.
    """
    if (snapshot is None) == (source_context is None):
        raise click.UsageError("give exactly one of --snapshot SNAPSHOT or --from CONTEXT")
    with contextlib.ExitStack() as stack:
        target = _target(kubeconfig, target_context, target_version, stack)
        if snapshot is not None:
            store_url, snapshot_id = parse_address(snapshot, from_store)
            reader = SnapshotReader(open_store(store_url, s3_endpoint=s3_endpoint), snapshot_id,
                                    key=crypto.load_key(encrypt_key_file))
            target = with_custom_resources(target, crd_group_versions(snapshot_crds(reader)))
            objects: Any = snapshot_objects(reader)
        else:
            cluster = stack.enter_context(kube.connect(kubeconfig, source_context))
            discovery = kube.discover(cluster)
            target = with_custom_resources(target, crd_group_versions(live_crds(cluster, discovery)))
            objects = live_objects(cluster, discovery, target.serves)
        report = check_apis(objects, target.serves, target=target.describe,
                            converter=target.converter())
    data = report.to_dict()
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"Target {target.label}: "
                   + (", ".join(f"{n} {v}" for v, n in data["verdicts"].items()) or "no objects"))
        rows = [[describe_ref(c["object"]), c["verdict"], c.get("becomes", ""),
                 (c.get("writtenVia") or {}).get("groupVersion", ""), "; ".join(c["details"])]
                for c in data["objects"]]
        _render_table(Console(), "Objects", ["object", "verdict", "becomes", "written via",
                                             "details"], rows)
    if report.needs_person:
        raise NeedsAttention(f"{len(report.needs_person)} object(s) need a person",
                             hint="see the verdicts and details above")


_IMPORT_SCOPE_OPTIONS = (
    click.option("--include-namespace", "include_namespaces", multiple=True, metavar="NS",
                 help="Only objects in these namespaces (repeatable); cluster-scoped types "
                 "are then left out, except those namespaces and the PVs claimed from them, "
                 "unless --cluster-scoped."),
    click.option("--exclude-namespace", "exclude_namespaces", multiple=True, metavar="NS",
                 help="Leave these namespaces out (repeatable)."),
    click.option("--include-resource", "include_resources", multiple=True, metavar="R",
                 help="Only these resource types, named as kubectl does: deployments, "
                 "deployments.apps, Deployment (repeatable)."),
    click.option("--cluster-scoped/--no-cluster-scoped", default=None,
                 help="Import cluster-scoped types (CRDs, ClusterRoles, PVs, ...). Default: "
                 "yes, unless --include-namespace is given."),
)
_IMPORT_COMMON = (
    click.argument("snapshot"),
    click.option("--to", "context", required=True, metavar="CONTEXT",
                 help="Kubeconfig context of the target (new) cluster."),
    click.option("--store", "store_url", default=DEFAULT_STORE, show_default=True,
                 metavar="URL", help="Store holding SNAPSHOT when it is a bare id."),
    _KUBECONFIG_OPTION,
    click.option("--encrypt-key-file", type=click.Path(dir_okay=False, path_type=Path),
                 default=None, help=f"Key of an encrypted snapshot (default: "
                 f"${crypto.KEY_ENV})."),
    *_IMPORT_SCOPE_OPTIONS,
    _S3_ENDPOINT_OPTION,
    _OUTPUT_OPTION,
)


def _import_scope(include_namespaces: tuple[str, ...], exclude_namespaces: tuple[str, ...],
                  include_resources: tuple[str, ...], cluster_scoped: bool | None
                  ) -> ImportScope:
    return ImportScope(tuple(include_namespaces), tuple(exclude_namespaces),
                       tuple(include_resources), cluster_scoped)


def _open_snapshot(snapshot: str, store_url: str, s3_endpoint: str | None,
                   key_file: Path | None) -> SnapshotReader:
    url, snapshot_id = parse_address(snapshot, store_url)
    return SnapshotReader(open_store(url, s3_endpoint=s3_endpoint), snapshot_id,
                          key=crypto.load_key(key_file))


@cli.command("import", epilog=_SNAPSHOT_HELP.replace("--from-store", "--store"))
@_with(*_IMPORT_COMMON)
@click.option("--conflict", type=click.Choice([p.value for p in ConflictPolicy]),
              default=ConflictPolicy.SKIP.value, show_default=True,
              help="An object that already exists in the target: skip leaves it untouched, "
              "update applies the snapshot's fields over it (taking their ownership), fail "
              "leaves it and reports it as a failure.")
@click.option("--dry-run", is_flag=True,
              help="Server-side dry-run of every object: the target validates and admits "
              "each one and changes nothing (no lock, no progress recorded).")
@click.option("--workers", type=click.IntRange(1, 128), default=8, show_default=True,
              help="Objects applied at the same time within an ordering tier.")
@click.option("--qps", type=click.FloatRange(min=0), default=0, show_default=True,
              help="Client-side limit of write requests per second (0: no limit).")
@click.option("--restore-status", is_flag=True,
              help="Also restore the status of custom resources (through their status "
              "subresource when they have one), for controllers that cannot rebuild it.")
@click.option("--restart", is_flag=True,
              help="Forget the progress of earlier runs of this import: every object is "
              "applied again (the conflict policy still decides on existing ones).")
def import_command(
    snapshot: str, context: str, store_url: str, kubeconfig: Path | None,
    encrypt_key_file: Path | None, include_namespaces: tuple[str, ...],
    exclude_namespaces: tuple[str, ...], include_resources: tuple[str, ...],
    cluster_scoped: bool | None, s3_endpoint: str | None, output: str, conflict: str,
    dry_run: bool, workers: int, qps: float, restore_status: bool, restart: bool,
) -> None:
    """Recreate snapshot SNAPSHOT in the cluster --to, in order, idempotently.

    CRDs first (waiting until Established), then namespaces, classes, volumes and claims,
    configuration, RBAC, workloads, networking, custom resources, and webhooks last;
    server-side apply as field manager "migrator". Killed or failed, it resumes where it
    stopped when run again. Exit code 5 when some objects were rejected (the report names each
    with the API server's message), 8 when another import into that cluster is running.
    """
    reader = _open_snapshot(snapshot, store_url, s3_endpoint, encrypt_key_file)
    options = ImportOptions(
        conflict=ConflictPolicy(conflict),
        scope=_import_scope(include_namespaces, exclude_namespaces, include_resources,
                            cluster_scoped),
        dry_run=dry_run, workers=workers, qps=qps, restore_status=restore_status,
        restart=restart,
    )
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(kube.connect(kubeconfig, context, pool_size=workers + 2))
        on_progress = _progress_bars(stack, output)
        report = import_snapshot(reader, cluster, options,
                                 on_progress=on_progress)
    if output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _render_import(Console(), report)
    if report.partial:
        raise PartialFailure(
            f"{len(report.failures)} object(s) of snapshot {report.snapshot_id} could not be "
            f"imported{' (dry run)' if report.dry_run else ''}",
            hint="see the failures above; fix the cause and run the same import again: it "
            "retries only what failed")


_MAX_LISTED = 50  # failures and differences shown in text output (-o json has them all)


def _render_import(console: Console, report: ImportReport) -> None:
    data = report.to_dict()
    totals = data["totals"]
    resumed = f", {totals['fromEarlierRuns']} done by an earlier run" if report.resumed else ""
    _render(console, f"Import of {report.snapshot_id}" + (" (dry run)" if report.dry_run else ""),
            [("target", f"{data['target']['context']} {data['target']['server']}"),
             ("conflict policy", report.conflict),
             ("objects", f"{totals['objects']}: {totals['created']} created, "
                         f"{totals['updated']} updated, {totals['unchanged']} unchanged, "
                         f"{totals['skipped']} skipped (existed), {totals['failed']} failed"
                         + (f", {totals['unchecked']} not checked" if totals["unchecked"]
                            else "") + resumed),
             ("owner references", f"{data['ownerReferences']['relinked']} relinked, "
                                  f"{len(data['ownerReferences']['dropped'])} dropped"),
             ("webhooks", data["webhooks"]),
             ("time", f"{report.seconds:.1f}s")]
            + ([("progress discarded", report.discarded_progress)]
               if report.discarded_progress else []))
    _render_table(console, "Phases", ["phase", "objects", "created", "updated", "skipped",
                                      "failed", "seconds"],
                  [[p["name"], str(p["objects"]), str(p["created"]),
                    str(p["updated"] + p["unchanged"]), str(p["skipped"]), str(p["failed"]),
                    f"{p['seconds']:.1f}"] for p in data["phases"]])
    _render_table(console, "CRDs", ["crd", "state"], [[k, v] for k, v in data["crds"].items()
                                                      if v != "Established"])
    _render_table(console, "Owner references dropped (owner not imported)",
                  ["object", "owner", "reason"],
                  [[f"{d['kind']} {d['namespace'] + '/' if d['namespace'] else ''}{d['name']}",
                    f"{d['ownerKind']} {d['ownerName']}", d["reason"]]
                   for d in data["ownerReferences"]["dropped"][:_MAX_LISTED]])
    for title, listed in (("Failed", data["failures"]), ("Not checked (dry run)",
                                                         data["unchecked"])):
        _render_table(console, title + (f" (first {_MAX_LISTED} of {len(listed)})"
                                        if len(listed) > _MAX_LISTED else ""),
                      ["object", "error"],
                      [[f"{f['resource']} {(f['namespace'] or '') and f['namespace'] + '/'}"
                        f"{f['name']}", f["error"]] for f in listed[:_MAX_LISTED]])


@cli.command("verify", epilog=_SNAPSHOT_HELP.replace("--from-store", "--store"))
@_with(*_IMPORT_COMMON)
@click.option("--wait", type=click.FloatRange(min=0), default=0, show_default=True,
              metavar="SECONDS", help="Wait up to this long for workloads, claims, jobs and "
              "CRDs to become ready (those reporting they cannot progress fail at once).")
def verify_command(
    snapshot: str, context: str, store_url: str, kubeconfig: Path | None,
    encrypt_key_file: Path | None, include_namespaces: tuple[str, ...],
    exclude_namespaces: tuple[str, ...], include_resources: tuple[str, ...],
    cluster_scoped: bool | None, s3_endpoint: str | None, output: str, wait: float,
) -> None:
    """Check that the cluster --to holds every object of SNAPSHOT as it was, and that it runs.

    Compares only the fields the snapshot sets (server defaults and server-owned fields do
    not count); Secret values are never shown. Exit code 7 when objects are missing or
    differ, or workloads are not ready.
    """
    from migrator.verify import VerifyOptions, verify_snapshot

    reader = _open_snapshot(snapshot, store_url, s3_endpoint, encrypt_key_file)
    options = VerifyOptions(scope=_import_scope(include_namespaces, exclude_namespaces,
                                                include_resources, cluster_scoped), wait=wait)
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(kube.connect(kubeconfig, context))
        on_progress = _progress_bars(stack, output)
        report = verify_snapshot(reader, cluster, options,
                                 on_progress=on_progress)
    if output == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _render_verify(Console(), report)
    if not report.ok:
        raise VerificationFailed(
            f"snapshot {report.snapshot_id} and cluster {context!r} differ: "
            f"{len(report.missing)} missing, {len(report.differing)} differing, "
            f"{len(report.not_ready)} not ready")


def _render_verify(console: Console, report: VerifyReport) -> None:
    totals = report.to_dict()["totals"]
    _render(console, f"Verify {report.snapshot_id} against {report.target['context']}", [
        ("objects", f"{totals['checked']} checked: {totals['missing']} missing, "
                    f"{totals['differing']} differing, {totals['extra']} extra in target"),
        ("readiness", f"{totals['ready']} ready, {totals['notReady']} not ready"),
        ("result", "OK" if report.ok else "DIFFERENT"),
    ])

    def name(o: Mapping[str, Any]) -> str:
        return f"{o['kind']} {(o['namespace'] or '') and o['namespace'] + '/'}{o['name']}"

    _render_table(console, "Missing in target", ["object"],
                  [[name(o)] for o in report.missing[:_MAX_LISTED]])
    _render_table(console, "Differing", ["object", "field", "snapshot", "target"],
                  [[name(o), d["path"], json.dumps(d["snapshot"]), json.dumps(d["target"])]
                   for o in report.differing[:_MAX_LISTED] for d in o["differences"]])
    _render_table(console, "Not ready", ["object", "state", "reason"],
                  [[name(o), o["state"], o["reason"]] for o in report.not_ready[:_MAX_LISTED]])
    _render_table(console, "Extra in target (not in the snapshot)", ["object"],
                  [[name(o)] for o in report.extra[:_MAX_LISTED]])


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="migrator")

