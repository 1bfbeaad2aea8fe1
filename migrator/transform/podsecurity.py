"""Pod Security Admission in place of PodSecurityPolicy: the level each namespace can enforce.

PodSecurityPolicy left Kubernetes in 1.25; a PSP is dropped by the transform (it has no
successor). Its replacement is a label on each namespace,
``pod-security.kubernetes.io/enforce: privileged|baseline|restricted``, which the API server
enforces on every pod created there. For each namespace, :func:`survey` finds the most
restrictive level that all its pods and pod templates would pass (standalone pods, workloads'
templates, CronJobs' job templates, PodTemplates), following the Pod Security Standards as
the ``k8s.io/pod-security-admission`` checks of :data:`VERSION` implement them; the reasons a
stricter level would refuse them come with it. :class:`PodSecurityLabels` (opt in:
``migrator transform --pod-security-labels``) sets the label, pinned to :data:`VERSION`, on the
Namespace objects; a namespace that already carries an ``enforce`` label keeps it.

Templates are checked as the target will see them: seccomp and AppArmor annotations first
become securityContext fields (the built-in pod template normalizer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from migrator.resources.objects import Obj, lookup, meta
from migrator.snapshot import SnapshotReader
from migrator.snapshot.layout import typed
from migrator.transform import builtin
from migrator.transform.base import Change
from migrator.transform.jsonpatch import join_pointer
from migrator.transform.podspecs import POD_KINDS, POD_SPEC_PATHS, group_kind

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (RESTRICTED, BASELINE, PRIVILEGED)  # most restrictive first
VERSION = "v1.33"  # the release of the standards these checks follow
ENFORCE = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
MAX_REASONS = 5  # per namespace, in the report

_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
# Capabilities a container may add under baseline; volume types restricted allows.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
_SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
        "net.ipv4.tcp_rmem",
        "net.ipv4.tcp_wmem",
    }
)
RESTRICTED_VOLUMES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "image",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_GOOD_PROFILES = frozenset({"RuntimeDefault", "Localhost"})


# -- the checks: (pod metadata, pod spec) → what is forbidden, or "" --------------------------


def _containers(spec: Obj) -> list[Obj]:
    return [c for key in _CONTAINER_LISTS for c in spec.get(key) or () if isinstance(c, dict)]


def _context(container: Obj) -> Obj:
    return container.get("securityContext") or {}


def _names(containers: Iterable[Obj]) -> str:
    return ", ".join(repr(c.get("name")) for c in containers)


def _windows(spec: Obj) -> bool:
    return lookup(spec, ("os", "name")) == "windows"


def _setters(spec: Obj, bad: Callable[[Obj], bool]) -> str:
    """ "pod and containers 'a', 'b'": where ``bad`` holds of a securityContext."""
    found = ["pod"] if bad(spec.get("securityContext") or {}) else []
    containers = [c for c in _containers(spec) if bad(_context(c))]
    if containers:
        found.append(f"containers {_names(containers)}")
    return " and ".join(found)


def _host_process(_meta: Obj, spec: Obj) -> str:
    where = _setters(spec, lambda ctx: lookup(ctx, ("windowsOptions", "hostProcess")) is True)
    return f"{where} set windowsOptions.hostProcess=true" if where else ""


def _host_namespaces(_meta: Obj, spec: Obj) -> str:
    used = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    return f"host namespaces: {', '.join(used)}" if used else ""


def _privileged(_meta: Obj, spec: Obj) -> str:
    bad = [c for c in _containers(spec) if _context(c).get("privileged") is True]
    return f"privileged containers {_names(bad)}" if bad else ""


def _added(container: Obj) -> set[str]:
    return set(lookup(_context(container), ("capabilities", "add")) or ())


def _capabilities_baseline(_meta: Obj, spec: Obj) -> str:
    extra = set().union(*(_added(c) - BASELINE_CAPABILITIES for c in _containers(spec)))
    return f"capabilities added beyond the default set: {', '.join(sorted(extra))}" if extra else ""


def _host_path(_meta: Obj, spec: Obj) -> str:
    bad = [v.get("name") for v in spec.get("volumes") or () if "hostPath" in v]
    return f"hostPath volumes {', '.join(map(repr, bad))}" if bad else ""


def _host_ports(_meta: Obj, spec: Obj) -> str:
    ports = sorted(
        {p.get("hostPort") for c in _containers(spec) for p in c.get("ports") or ()} - {None, 0}
    )
    return f"hostPorts {', '.join(map(str, ports))}" if ports else ""


def _apparmor(pod_meta: Obj, spec: Obj) -> str:
    where = _setters(
        spec,
        lambda ctx: (
            "appArmorProfile" in ctx
            and lookup(ctx, ("appArmorProfile", "type")) not in _GOOD_PROFILES
        ),
    )
    annotations = [
        key
        for key, value in (pod_meta.get("annotations") or {}).items()
        if key.startswith(_APPARMOR_ANNOTATION)
        and value
        and value != "runtime/default"
        and not str(value).startswith("localhost/")
    ]
    problems = [f"{where} set an unconfined AppArmor profile"] if where else []
    problems += [f"annotation {key}" for key in annotations]
    return "; ".join(problems)


def _selinux(_meta: Obj, spec: Obj) -> str:
    def bad(ctx: Obj) -> bool:
        options = ctx.get("seLinuxOptions")
        if not isinstance(options, dict):
            return False
        return (
            (options.get("type") or "") not in _SELINUX_TYPES
            or bool(options.get("user"))
            or bool(options.get("role"))
        )

    where = _setters(spec, bad)
    return f"{where} set forbidden seLinuxOptions" if where else ""


def _proc_mount(_meta: Obj, spec: Obj) -> str:
    bad = [c for c in _containers(spec) if _context(c).get("procMount") not in (None, "Default")]
    return f"containers {_names(bad)} set procMount" if bad else ""


def _seccomp_type(ctx: Obj) -> Any:
    return lookup(ctx, ("seccompProfile", "type"))


def _seccomp_baseline(_meta: Obj, spec: Obj) -> str:
    where = _setters(spec, lambda ctx: _seccomp_type(ctx) == "Unconfined")
    return f"{where} set seccompProfile Unconfined" if where else ""


def _sysctls(_meta: Obj, spec: Obj) -> str:
    names = [
        s.get("name")
        for s in lookup(spec, ("securityContext", "sysctls")) or ()
        if s.get("name") not in _SYSCTLS
    ]
    return f"sysctls {', '.join(map(str, names))}" if names else ""


def _volumes_restricted(_meta: Obj, spec: Obj) -> str:
    bad = sorted(
        {
            key
            for volume in spec.get("volumes") or ()
            for key in volume
            if key != "name" and key not in RESTRICTED_VOLUMES
        }
    )
    return f"volume types {', '.join(bad)}" if bad else ""


def _privilege_escalation(_meta: Obj, spec: Obj) -> str:
    if _windows(spec):
        return ""
    bad = [c for c in _containers(spec) if _context(c).get("allowPrivilegeEscalation") is not False]
    return f"containers {_names(bad)} must set allowPrivilegeEscalation=false" if bad else ""


def _run_as_non_root(_meta: Obj, spec: Obj) -> str:
    pod = lookup(spec, ("securityContext", "runAsNonRoot"))
    explicit = _setters(spec, lambda ctx: ctx.get("runAsNonRoot") is False)
    if explicit:
        return f"{explicit} set runAsNonRoot=false"
    implicit = [
        c for c in _containers(spec) if _context(c).get("runAsNonRoot") is None and pod is not True
    ]
    return f"pod or containers {_names(implicit)} must set runAsNonRoot=true" if implicit else ""


def _run_as_root(_meta: Obj, spec: Obj) -> str:
    where = _setters(spec, lambda ctx: ctx.get("runAsUser") == 0)
    return f"{where} set runAsUser=0" if where else ""


def _seccomp_restricted(_meta: Obj, spec: Obj) -> str:
    if _windows(spec):
        return ""
    pod = _seccomp_type(spec.get("securityContext") or {})
    explicit = _setters(spec, lambda ctx: _seccomp_type(ctx) not in (None, *_GOOD_PROFILES))
    if explicit:
        return f"{explicit} set a seccompProfile other than RuntimeDefault or Localhost"
    implicit = [c for c in _containers(spec) if _seccomp_type(_context(c)) is None and pod is None]
    return (
        f"pod or containers {_names(implicit)} must set seccompProfile RuntimeDefault or Localhost"
        if implicit
        else ""
    )


def _capabilities_restricted(_meta: Obj, spec: Obj) -> str:
    if _windows(spec):
        return ""
    keeps = [
        c
        for c in _containers(spec)
        if "ALL" not in (lookup(_context(c), ("capabilities", "drop")) or ())
    ]
    adds = set().union(*(_added(c) - {"NET_BIND_SERVICE"} for c in _containers(spec)))
    problems = [f"containers {_names(keeps)} must drop ALL capabilities"] if keeps else []
    if adds:
        problems.append(f"capabilities added: {', '.join(sorted(adds))}")
    return "; ".join(problems)


Check = Callable[[Obj, Obj], str]

# (the level a check belongs to, the check); a pod fails a level when any check of that
# level, or of a less restrictive one, forbids something.
CHECKS: tuple[tuple[str, Check], ...] = (
    (BASELINE, _host_process),
    (BASELINE, _host_namespaces),
    (BASELINE, _privileged),
    (BASELINE, _capabilities_baseline),
    (BASELINE, _host_path),
    (BASELINE, _host_ports),
    (BASELINE, _apparmor),
    (BASELINE, _selinux),
    (BASELINE, _proc_mount),
    (BASELINE, _seccomp_baseline),
    (BASELINE, _sysctls),
    (RESTRICTED, _volumes_restricted),
    (RESTRICTED, _privilege_escalation),
    (RESTRICTED, _run_as_non_root),
    (RESTRICTED, _run_as_root),
    (RESTRICTED, _seccomp_restricted),
    (RESTRICTED, _capabilities_restricted),
)


def evaluate(pod_meta: Obj, spec: Obj) -> tuple[str, list[str]]:
    """The most restrictive level a pod (its metadata and spec) passes, and what the next
    stricter level forbids in it."""
    failed: dict[str, list[str]] = {BASELINE: [], RESTRICTED: []}
    for level, check in CHECKS:
        problem = check(pod_meta, spec)
        if problem:
            failed[level].append(problem)
    if failed[BASELINE]:
        return PRIVILEGED, failed[BASELINE]
    if failed[RESTRICTED]:
        return BASELINE, failed[RESTRICTED]
    return RESTRICTED, []


def pod_of(obj: Obj) -> tuple[Obj, Obj] | None:
    """The pod metadata and spec an object carries (itself, or its template), or None."""
    tokens = POD_SPEC_PATHS.get(group_kind(obj))
    if tokens is None:
        return None
    spec = lookup(obj, tokens)
    if not isinstance(spec, dict):
        return None
    pod_meta = lookup(obj, (*tokens[:-1], "metadata")) or {}
    return (pod_meta if isinstance(pod_meta, dict) else {}), spec


# -- per namespace ---------------------------------------------------------------------------


@dataclass
class NamespaceLevel:
    """One namespace: the level all its pods pass, how many were checked, and why not the
    stricter one (the first few reasons, each naming its object)."""

    level: str = RESTRICTED
    pods: int = 0
    why: list[str] = field(default_factory=list)

    def add(self, name: str, level: str, reasons: list[str]) -> None:
        self.pods += 1
        if LEVELS.index(level) > LEVELS.index(self.level):
            self.level, self.why = level, []
        if level == self.level and reasons and len(self.why) < MAX_REASONS:
            self.why.append(f"{name}: {'; '.join(reasons)}")


@dataclass
class PodSecuritySurvey:
    """The level of every namespace of a snapshot, and which labels were set or kept."""

    namespaces: dict[str, NamespaceLevel] = field(default_factory=dict)
    labelled: dict[str, str] = field(default_factory=dict)  # namespace → what happened

    def level(self, namespace: str) -> NamespaceLevel:
        return self.namespaces.setdefault(namespace, NamespaceLevel())

    def renamed(self, mapping: Mapping[str, str]) -> PodSecuritySurvey:
        """The survey with namespaces renamed as ``--namespace-map`` renames them."""
        return PodSecuritySurvey({mapping.get(ns, ns): v for ns, v in self.namespaces.items()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "namespaces": {
                ns: {
                    "level": v.level,
                    "podsAndTemplates": v.pods,
                    "whyNotStricter": v.why,
                    **({"label": self.labelled[ns]} if ns in self.labelled else {}),
                }
                for ns, v in sorted(self.namespaces.items())
            },
        }


def survey(reader: SnapshotReader) -> PodSecuritySurvey:
    """The Pod Security level of every namespace of the snapshot (reads only the Namespace
    objects and the types that carry pods)."""
    found = PodSecuritySurvey()
    for entry in reader.resources():
        if (entry["group"], entry["kind"]) == ("", "Namespace"):
            for obj in reader.iter_objects(entry):
                found.level(str(meta(obj).get("name")))
        elif (entry["group"], entry["kind"]) in POD_KINDS:
            for obj in reader.iter_objects(entry):
                _survey_one(found, typed(obj, entry))
    return found


def _survey_one(found: PodSecuritySurvey, obj: Obj) -> None:
    normalized = builtin.normalize_pod_template(obj).obj or obj
    pod = pod_of(normalized)
    if pod is None:
        return
    level, reasons = evaluate(*pod)
    m = meta(obj)
    found.level(str(m.get("namespace") or "")).add(f"{obj['kind']} {m.get('name')}", level, reasons)


@dataclass(frozen=True)
class PodSecurityLabels:
    """Set the Pod Security Admission labels on Namespace objects (``--pod-security-labels``):
    ``enforce`` at the surveyed level and ``enforce-version`` at :data:`VERSION`; a
    namespace that has an ``enforce`` label keeps it."""

    found: PodSecuritySurvey
    name: str = "pod security labels"
    kinds: frozenset[tuple[str, str]] = frozenset({("", "Namespace")})

    def apply(self, obj: Obj) -> list[Change]:
        namespace = str(meta(obj).get("name") or "")
        labels = meta(obj).get("labels") or {}
        if ENFORCE in labels:
            self.found.labelled[namespace] = f"kept: {ENFORCE}={labels[ENFORCE]}"
            return []
        level = self.found.level(namespace).level
        obj.setdefault("metadata", {}).setdefault("labels", {}).update(
            {ENFORCE: level, ENFORCE_VERSION: VERSION}
        )
        self.found.labelled[namespace] = f"set: {ENFORCE}={level}"
        return [
            Change(
                path=join_pointer("metadata", "labels", key),
                action="set",
                reason="Pod Security Admission replaces PodSecurityPolicy: the most restrictive "
                f"level all pods and pod templates of the namespace pass ({VERSION} standards)",
                after=value,
                source=self.name,
            )
            for key, value in ((ENFORCE, level), (ENFORCE_VERSION, VERSION))
        ]
