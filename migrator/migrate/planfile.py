"""Reading a plan file: YAML in, a validated :class:`~migrator.migrate.plan.Plan` out.

:func:`load` reads the file, :func:`parse` its text. The YAML is composed into nodes first so
every key and list item keeps its line; then each section is read with
:class:`~migrator.fields.Fields`, and the sections a stage owns go to that stage's own parser
(``traffic:`` to :func:`migrator.traffic.parse`, ``transform.differences`` to
:func:`~migrator.transform.differences.parse_config`, a rules file to
:func:`~migrator.transform.rules.load_rules`). The first wrong setting stops the read with a
:class:`~migrator.errors.PlanInvalid` naming file, line, field and problem
(``plan.yaml:23: traffic.steps[2]: must be between 0 and 100 (got 150)``), before anything
is touched. Keys nobody reads are refused at every level, so a misspelt setting never goes
unnoticed. Relative paths (rules, hook Jobs, the key file, a directory store, the
kubeconfig) are relative to the plan file's folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from migrator import traffic
from migrator.errors import PlanInvalid, RulesInvalid, SettingsInvalid
from migrator.export import ExportOptions
from migrator.fields import Fields, kind
from migrator.importer import ConflictPolicy
from migrator.migrate.plan import (
    GITOPS_MODES,
    HOOK_CLUSTERS,
    HOOK_POINTS,
    NOTIFY_FORMATS,
    PREFLIGHT_CHECKS,
    PULL_POLICIES,
    QUIESCE_METHODS,
    VOLUME_METHODS,
    ClusterRef,
    Hook,
    Hooks,
    ImportSettings,
    Notification,
    Plan,
    PreflightSettings,
    QuiesceSettings,
    StoreRef,
    TeardownSettings,
    TransformSettings,
    VerifySettings,
    VolumeSettings,
)
from migrator.traffic import ShiftSettings
from migrator.transform.builtin import LAST_APPLIED_MODES
from migrator.transform.differences import parse_config
from migrator.transform.rules import load_rules

__all__ = ["load", "parse"]

SECTIONS = (
    "name",
    "kubeconfig",
    "source",
    "target",
    "store",
    "export",
    "transform",
    "gitops",
    "import",
    "verify",
    "volumes",
    "quiesce",
    "hooks",
    "traffic",
    "soak",
    "stuckAfter",
    "teardown",
    "notifications",
    "preflight",
)
NAME_MAX = 40
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NO_FILE = "<plan>"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MAX_SETTINGS = 100_000

# The dataclasses' own defaults are the plan's defaults: one place says them.
_EXPORT = ExportOptions()
_TRANSFORM = TransformSettings()
_IMPORT = ImportSettings()
_VERIFY = VerifySettings()
_VOLUMES = VolumeSettings()
_QUIESCE = QuiesceSettings()
_HOOK = Hook(where="")
_PREFLIGHT = PreflightSettings()
_PLAN_DEFAULTS = Plan(
    name="",
    file=None,
    source=ClusterRef("", ""),
    target=ClusterRef("", ""),
    store=StoreRef(""),
)


def load(path: Path) -> Plan:
    """The validated plan in file ``path``; :class:`PlanInvalid` names line and field."""
    file = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise PlanInvalid(file, None, "", f"cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise PlanInvalid(file, None, "", f"not UTF-8 text: {exc.reason}") from exc
    return parse(text, Path(path))


def parse(text: str, file: Path | None = None) -> Plan:
    """The validated plan in ``text``, read from ``file`` (relative paths in it are relative
    to its folder; to the current directory without one)."""
    shown = str(file) if file is not None else _NO_FILE
    doc, lines = _compose(text, shown)
    if doc is None:
        raise PlanInvalid(
            shown, 1, "", "the plan is empty: it needs at least name, source, target and store"
        )
    if not isinstance(doc, Mapping):
        raise PlanInvalid(
            shown,
            lines.get("", 1),
            "",
            f"expected a mapping of settings (name, source, target, store, ...), got {kind(doc)}",
        )
    base = file.absolute().parent if file is not None else Path.cwd()
    try:
        plan = _plan(_expanded(doc, "", os.environ), file, base)
    except SettingsInvalid as exc:
        raise PlanInvalid(shown, _line(lines, exc.field), exc.field, exc.problem) from exc
    return replace(plan, raw=dict(doc))  # the plan as written: ${VARS} unexpanded


_VARIABLE = re.compile(r"\$(\$|\{([^}]*)\})")


def _expanded(doc: Any, path: str, env: Mapping[str, str]) -> Any:
    """``doc`` with every ``${NAME}`` in its strings replaced by the environment variable
    (``$$`` is a ``$``): what differs between machines (a kubeconfig's path, an endpoint)
    stays out of the plan, and out of its fingerprint, so a run resumed elsewhere is the
    same run. An unset variable is an error naming the field."""
    if isinstance(doc, str):

        def value(match: re.Match[str]) -> str:
            if match.group(1) == "$":
                return "$"
            name = match.group(2)
            if not _ENV_NAME.fullmatch(name):
                raise SettingsInvalid(path, f"${{{name}}} is not an environment variable's name")
            if name not in env:
                raise SettingsInvalid(path, f"the environment variable {name} is not set")
            return env[name]

        return _VARIABLE.sub(value, doc)
    if isinstance(doc, Mapping):
        return {k: _expanded(v, f"{path}.{k}" if path else str(k), env) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_expanded(v, f"{path}[{i}]", env) for i, v in enumerate(doc)]
    return doc


# --- YAML with lines ------------------------------------------------------------------


def _compose(text: str, shown: str) -> tuple[Any, dict[str, int]]:
    """The document and the line of every mapping key and list item, by its path."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: dict[str, int] = {"": node.start_mark.line + 1}
        _index(node, "", lines, shown, set())
        return loader.construct_document(node), lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        if context and problem.startswith("but "):  # "expected X, but found Y"
            problem = f"{context}, {problem}"
        line = mark.line + 1 if mark is not None else None
        raise PlanInvalid(shown, line, "", f"not valid YAML: {problem}") from exc
    finally:
        loader.dispose()


def _index(node: yaml.Node, path: str, lines: dict[str, int], shown: str, seen: set[int]) -> None:
    if id(node) in seen:  # an alias of a node that holds itself
        return
    if len(lines) > _MAX_SETTINGS:  # aliases of aliases: no plan is this large
        raise PlanInvalid(shown, None, "", f"more than {_MAX_SETTINGS} settings: not a plan")
    seen = seen | {id(node)}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.tag == _MERGE_TAG:  # "<<": the merged keys are read where they are written
                continue
            child = f"{path}.{key.value}" if path else str(key.value)
            line = key.start_mark.line + 1
            if child in lines:
                raise PlanInvalid(shown, line, child, f"given twice (first on line {lines[child]})")
            lines[child] = line
            _index(value, child, lines, shown, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{path}[{i}]"
            lines[child] = item.start_mark.line + 1
            _index(item, child, lines, shown, seen)


_LAST_PART = re.compile(r"(\.[^.\[\]]*|\[\d+\])$")


def _line(lines: dict[str, int], field: str) -> int:
    """The line of ``field``, or of the deepest part of its path the file has."""
    path = field
    while path:
        if path in lines:
            return lines[path]
        shorter = _LAST_PART.sub("", path)
        path = "" if shorter == path else shorter
    return lines.get("", 1)


# --- the sections -----------------------------------------------------------------------


def _plan(doc: Mapping[str, Any], file: Path | None, base: Path) -> Plan:
    f = Fields(doc, "")
    f.only(*SECTIONS)
    name = _name(f)
    kubeconfig = _path(f, "kubeconfig", base)
    source = _cluster(f.sub("source"), "old")
    target = _cluster(f.sub("target"), "new")
    if target.context == source.context:
        raise SettingsInvalid(
            "target.context",
            f"the same context as source ({source.context!r}): a migration needs two clusters",
        )
    store = _store(f.sub("store"), base)
    export = _export(f.sub("export"))
    transform = _transform(f.sub("transform"), base)
    gitops = f.choice("gitops", _PLAN_DEFAULTS.gitops, GITOPS_MODES)
    imports = _imports(f.sub("import"))
    vf = f.sub("verify")
    verify = VerifySettings(wait=vf.duration("wait", _VERIFY.wait))
    vf.done()
    volumes = _volumes(f.sub("volumes"), store)
    quiesce = _quiesce(f.sub("quiesce"))
    hooks = _hooks(f.sub("hooks"), base)
    shift = _traffic(f, base)
    soak = f.duration("soak", _PLAN_DEFAULTS.soak)
    stuck_after = f.duration("stuckAfter", _PLAN_DEFAULTS.stuck_after, minimum=1)
    tf = f.sub("teardown")
    teardown_hook = tf.raw("hook")
    teardown = TeardownSettings(
        hook=_hook(tf.at("hook"), teardown_hook, base) if teardown_hook is not None else None
    )
    tf.done()
    notifications = tuple(_notification(path, item) for path, item in f.items("notifications"))
    preflight = _preflight(f.sub("preflight"))
    return Plan(
        name=name,
        file=file,
        source=source,
        target=target,
        store=store,
        kubeconfig=kubeconfig,
        export=export,
        transform=transform,
        gitops=gitops,
        imports=imports,
        verify=verify,
        volumes=volumes,
        quiesce=quiesce,
        hooks=hooks,
        traffic=shift,
        soak=soak,
        stuck_after=stuck_after,
        teardown=teardown,
        notifications=notifications,
        preflight=preflight,
        raw=dict(doc),
    )


def _name(f: Fields) -> str:
    name = f.required("name", "the migration's name (it names the run in the store)")
    if len(name) > NAME_MAX or not _NAME.fullmatch(name):
        raise SettingsInvalid(
            f.at("name"),
            f"{name!r}: use lowercase letters, digits and '-' (not first or last), "
            f"at most {NAME_MAX} characters: it names the run in the store",
        )
    return name


def _path(f: Fields, key: str, base: Path) -> Path | None:
    """The path under ``key`` (``~`` expanded, relative to the plan's folder), or None."""
    value = f.string(key)
    return base / Path(value).expanduser() if value else None


def _existing_file(f: Fields, key: str, base: Path) -> Path | None:
    path = _path(f, key, base)
    if path is not None and not path.is_file():
        raise SettingsInvalid(f.at(key), f"no such file: {path}")
    return path


def _cluster(f: Fields, side: str) -> ClusterRef:
    f.only("context", "name")
    context = f.required("context", f"the kubeconfig context of the {side} cluster")
    name = f.string("name") or context
    f.done()
    return ClusterRef(context=context, name=name)


def _http_url(f: Fields, key: str) -> str | None:
    """An http(s) URL under ``key``; the value is never repeated (it may hold a token)."""
    value = f.string(key)
    if value is not None:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsInvalid(f.at(key), "must be an http:// or https:// URL")
    return value


def _store(f: Fields, base: Path) -> StoreRef:
    f.only("url", "s3Endpoint", "keyFile")
    url = f.required("url", "where snapshots, volume data and the run journal go")
    scheme = urlparse(url).scheme
    if scheme == "s3":
        if not urlparse(url).netloc:
            raise SettingsInvalid(f.at("url"), f"{url!r} names no bucket: use s3://BUCKET/PREFIX")
    elif scheme != "file":
        if "://" in url:
            raise SettingsInvalid(
                f.at("url"),
                f"{url!r}: use s3://BUCKET/PREFIX, file:///PATH or a directory",
            )
        url = str(base / Path(url).expanduser())
    endpoint = _http_url(f, "s3Endpoint")
    if endpoint and scheme != "s3":
        raise SettingsInvalid(f.at("s3Endpoint"), "only read with an s3:// store url")
    key_file = _existing_file(f, "keyFile", base)
    f.done()
    return StoreRef(url=url, s3_endpoint=endpoint, key_file=key_file)


def _export(f: Fields) -> ExportOptions:
    options = ExportOptions(
        include_namespaces=f.string_list("namespaces"),
        exclude_namespaces=f.string_list("excludeNamespaces"),
        include_system_namespaces=f.boolean(
            "includeSystemNamespaces", _EXPORT.include_system_namespaces
        ),
        label_selector=f.string("selector") or None,
        include_resources=f.string_list("resources"),
        exclude_resources=f.string_list("excludeResources"),
        cluster_scoped=f.optional_boolean("clusterScoped"),
        keep_node_ports=f.boolean("keepNodePorts", _EXPORT.keep_node_ports),
        keep_cluster_ips=f.boolean("keepClusterIps", _EXPORT.keep_cluster_ips),
        workers=f.integer("workers", _EXPORT.workers, minimum=1, maximum=64),
    )
    f.done()
    return options


def _transform(f: Fields, base: Path) -> TransformSettings:
    differences = parse_config(f.raw("differences"), prefix=f.at("differences"))
    rules_file = _existing_file(f, "rules", base)
    if rules_file is not None:
        try:
            load_rules(rules_file)
        except RulesInvalid as exc:
            raise SettingsInvalid(f.at("rules"), str(exc)) from exc
    settings = TransformSettings(
        differences=differences,
        rules_file=rules_file,
        validate=f.boolean("validate", _TRANSFORM.validate),
        last_applied=f.choice("lastApplied", _TRANSFORM.last_applied, LAST_APPLIED_MODES),
        pod_security_labels=f.boolean("podSecurityLabels", _TRANSFORM.pod_security_labels),
    )
    f.done()
    return settings


def _imports(f: Fields) -> ImportSettings:
    policies = [p.value for p in ConflictPolicy]
    settings = ImportSettings(
        conflict=ConflictPolicy(f.choice("conflict", _IMPORT.conflict.value, policies)),
        workers=f.integer("workers", _IMPORT.workers, minimum=1, maximum=128),
        qps=f.number("qps", _IMPORT.qps),
        restore_status=f.boolean("restoreStatus", _IMPORT.restore_status),
    )
    f.done()
    return settings


def _only_with(f: Fields, keys: tuple[str, ...], setting: str, wanted: str, actual: str) -> None:
    """Refuse any of ``keys`` given when ``setting`` is not ``wanted``: it would do nothing."""
    if actual == wanted:
        return
    for key in keys:
        if f.has(key):
            raise SettingsInvalid(f.at(key), f"only read with {setting} {wanted}, not {actual}")


def _volumes(f: Fields, store: StoreRef) -> VolumeSettings:
    method = f.choice("method", _VOLUMES.method, VOLUME_METHODS)
    zones = f.string_list("zones")
    for i, zone in enumerate(zones):
        old, _, new = zone.partition("=")
        if not old or not new:
            raise SettingsInvalid(
                f"{f.at('zones')}[{i}]", f"{zone!r}: expected OLD=NEW (availability zones)"
            )
    settings = VolumeSettings(
        method=method,
        parallel=f.integer("parallel", _VOLUMES.parallel, minimum=1, maximum=32),
        stage_passes=f.integer("stagePasses", _VOLUMES.stage_passes, minimum=0, maximum=10),
        image=f.string("image") or None,
        pull_policy=f.choice("pullPolicy", _VOLUMES.pull_policy, PULL_POLICIES),
        pods_s3_endpoint=_http_url(f, "podsS3Endpoint"),
        attempts=f.integer("attempts", _VOLUMES.attempts, minimum=1, maximum=10),
        job_timeout=round(
            f.duration("jobTimeout", _VOLUMES.job_timeout, minimum=30, maximum=7 * 86400)
        ),
        start_timeout=f.duration("startTimeout", _VOLUMES.start_timeout, minimum=1),
        zones=zones,
        region=f.string("region") or None,
    )
    f.done()
    _only_with(f, ("image", "pullPolicy", "podsS3Endpoint"), "method", "mover", method)
    _only_with(f, ("zones", "region"), "method", "ebs", method)
    if method == "mover" and not store.url.startswith("s3://"):
        which = "mover" if f.has("method") else "mover (the default)"
        raise SettingsInvalid(
            f.at("method"),
            f"{which} needs an s3:// store: its Jobs in both clusters carry the volume data "
            "through the store, and store.url is a directory; use an s3:// store, or method "
            "ebs or none",
        )
    return settings


def _quiesce(f: Fields) -> QuiesceSettings:
    settings = QuiesceSettings(
        method=f.choice("method", _QUIESCE.method, QUIESCE_METHODS),
        hook=f.string("hook"),
        unhook=f.string("unhook"),
        timeout=f.duration("timeout", _QUIESCE.timeout, minimum=1),
    )
    f.done()
    if settings.method == "hook" and not settings.hook:
        raise SettingsInvalid(
            f.at("hook"), "required with method hook: the command run in each pod mounting a claim"
        )
    _only_with(f, ("hook", "unhook"), "method", "hook", settings.method)
    return settings


def _hooks(f: Fields, base: Path) -> Hooks:
    points = {}
    for point in HOOK_POINTS:
        found = tuple(_hook(path, item, base) for path, item in f.items(point))
        if found:
            points[point] = found
    f.done()
    return Hooks(points=points)


def _hook(where: str, item: Any, base: Path) -> Hook:
    """One hook: ``{run: CMD}`` (or just ``CMD``) or ``{job: FILE, cluster: old|new}``."""
    if isinstance(item, str):
        item = {"run": item}
    f = Fields(item, where)
    run = f.string("run")
    job_text = f.string("job")
    cluster = f.choice("cluster", _HOOK.cluster, HOOK_CLUSTERS)
    retries = f.integer("retries", _HOOK.retries, minimum=0, maximum=20)
    timeout = f.duration("timeout", _HOOK.timeout, minimum=1)
    f.done()
    if bool(run) == bool(job_text):
        raise SettingsInvalid(
            where, "give exactly one of: run (a command here) or job (a Job manifest file)"
        )
    if run and f.has("cluster"):
        raise SettingsInvalid(f.at("cluster"), "only read with job, not run")
    job = _existing_file(f, "job", base)
    if job is not None:
        _check_job(job, f.at("job"))
    return Hook(where=where, run=run, job=job, cluster=cluster, retries=retries, timeout=timeout)


def _check_job(path: Path, field: str) -> None:
    """A hook's Job file holds one Job manifest."""
    try:
        manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise SettingsInvalid(field, f"{path}: cannot read a manifest: {exc}") from exc
    found = manifest.get("kind") if isinstance(manifest, Mapping) else None
    if found != "Job":
        what = f"kind {found}" if found else kind(manifest)
        raise SettingsInvalid(field, f"{path}: expected a Job manifest, got {what}")


def _traffic(f: Fields, base: Path) -> ShiftSettings | None:
    """The ``traffic:`` section, read by the traffic stage itself; a TSIG key file is
    relative to the plan's folder like every other path here."""
    doc = f.raw("traffic")
    if doc is None:
        return None
    shift = traffic.parse(doc, path="traffic")
    rfc2136 = shift.provider.rfc2136
    if rfc2136 is None or rfc2136.tsig is None or not rfc2136.tsig.secret_file:
        return shift
    secret = base / Path(rfc2136.tsig.secret_file).expanduser()
    if not secret.is_file():
        raise SettingsInvalid("traffic.provider.rfc2136.tsig.secretFile", f"no such file: {secret}")
    tsig = replace(rfc2136.tsig, secret_file=str(secret))
    provider = replace(shift.provider, rfc2136=replace(rfc2136, tsig=tsig))
    return replace(shift, provider=provider)


def _notification(where: str, item: Any) -> Notification:
    f = Fields(item, where)
    url = _http_url(f, "url")
    url_env = f.string("urlEnv")
    fmt = f.choice("format", Notification().format, NOTIFY_FORMATS)
    f.done()
    if bool(url) == bool(url_env):
        raise SettingsInvalid(
            where, "give exactly one of: url, or urlEnv (the variable holding a secret URL)"
        )
    if url_env and not _ENV_NAME.fullmatch(url_env):
        raise SettingsInvalid(f.at("urlEnv"), f"{url_env!r} is not an environment variable name")
    return Notification(url=url, url_env=url_env, format=fmt)


def _preflight(f: Fields) -> PreflightSettings:
    settings = PreflightSettings(
        certificate_days=f.number("certificateDays", _PREFLIGHT.certificate_days, maximum=3650),
        skip=f.choice_list("skip", PREFLIGHT_CHECKS),
    )
    f.done()
    return settings
