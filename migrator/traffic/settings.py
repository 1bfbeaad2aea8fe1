"""A traffic shift's settings: one validated data structure, read from a plain mapping.

The mapping is what a settings file holds under ``traffic:`` (the plan file embeds the same
section), with the command line's flags laid over it. :func:`parse` checks every field and
raises :class:`~migrator.errors.ShiftSettingsInvalid` naming the first wrong one by its path
(``traffic.steps[3]``, ``traffic.gates.http.latency.max``), before anything is read or
written. Defaults are safe for real use (a minute's TTL, two minutes between steps, six
health checks ten seconds apart); every duration goes down to a fraction of a second, so
tests and the benchmark run in seconds.

Secrets are never part of the settings: a TSIG key is named by the file or environment
variable holding it, and AWS credentials come from boto3's usual chain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from migrator.errors import ShiftSettingsInvalid
from migrator.fields import Fields, integer
from migrator.traffic.records import Targets, absolute

ROOT = "traffic"
PROVIDERS = ("rfc2136", "route53", "external-dns")
DEFAULT_STEPS = (0, 10, 25, 50, 100)
KINDS = ("service", "ingress")
_LABEL = re.compile(r"^(?!-)[a-z0-9_*-]{1,63}(?<!-)$")


def _fields(doc: Any, path: str) -> Fields:
    return Fields(doc, path, error=ShiftSettingsInvalid)


def _integer(value: Any, path: str, minimum: int, maximum: int | None) -> int:
    return integer(value, path, minimum, maximum, error=ShiftSettingsInvalid)


def _dns_name(value: str, path: str) -> str:
    name = absolute(value)
    labels = name[:-1].split(".")
    if len(name) > 254 or not all(_LABEL.match(label) for label in labels):
        raise ShiftSettingsInvalid(path, f"{value!r} is not a DNS name")
    return name


# --- the parts ------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectRef:
    """A Service or Ingress in one cluster: ``service/NAMESPACE/NAME``."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, value: Any, path: str, kind: str | None = None) -> ObjectRef:
        """``service/NS/NAME``, ``ingress/NS/NAME``, or ``NS/NAME`` when ``kind`` is given."""
        parts = str(value).split("/")
        if kind is not None and len(parts) == 2:
            parts = [kind, *parts]
        if len(parts) != 3 or parts[0].lower() not in KINDS or not all(parts):
            raise ShiftSettingsInvalid(
                path, f"{value!r}: expected service/NAMESPACE/NAME or ingress/NAMESPACE/NAME"
            )
        return cls(parts[0].lower(), parts[1], parts[2])


@dataclass(frozen=True)
class Side:
    """Where a name points on one cluster: targets given as they are, or read from a Service
    or Ingress of that cluster (``status.loadBalancer.ingress``), or (old side only) None:
    what the records point at before the shift."""

    targets: Targets | None = None
    ref: ObjectRef | None = None

    @property
    def given(self) -> bool:
        return self.targets is not None or self.ref is not None

    def to_dict(self) -> dict[str, Any]:
        if self.ref:
            return {"from": str(self.ref)}
        return self.targets.to_dict() if self.targets else {}


def _side(doc: Any, path: str) -> Side:
    if doc is None:
        return Side()
    if isinstance(doc, str) or (isinstance(doc, Sequence) and not isinstance(doc, Mapping)):
        values = [doc] if isinstance(doc, str) else list(doc)
        return Side(targets=_targets(values, path))
    f = _fields(doc, path)
    source = f.string("from")
    addresses = [str(v) for _p, v in f.items("addresses")]
    hostname = f.string("hostname")
    alias_zone = f.string("aliasHostedZoneId")
    f.done()
    given = [bool(source), bool(addresses), bool(hostname)]
    if sum(given) != 1:
        raise ShiftSettingsInvalid(path, "give exactly one of: from, addresses, hostname")
    if alias_zone and not hostname:
        raise ShiftSettingsInvalid(f"{path}.aliasHostedZoneId", "needs a hostname")
    if source:
        return Side(ref=ObjectRef.parse(source, f"{path}.from"))
    if hostname:
        return Side(
            targets=Targets(hostname=_dns_name(hostname, f"{path}.hostname"), alias_zone=alias_zone)
        )
    return Side(targets=_targets(addresses, f"{path}.addresses"))


def _targets(values: Sequence[Any], path: str) -> Targets:
    try:
        return Targets.of(str(v) for v in values)
    except ValueError as exc:
        raise ShiftSettingsInvalid(path, str(exc)) from None


@dataclass(frozen=True)
class NameSettings:
    """One DNS name to move, and where it points on each cluster."""

    name: str
    old: Side
    new: Side

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "old": self.old.to_dict(), "new": self.new.to_dict()}


@dataclass(frozen=True)
class Step:
    """Send ``percent`` of the traffic to the new cluster; ``approve``: wait for a person
    (``--resume``) before this step."""

    percent: int
    approve: bool = False


def _steps(f: Fields, default: Sequence[int]) -> tuple[Step, ...]:
    raw = f.raw("steps", list(default))
    if isinstance(raw, str):  # "0,10,25,50,100" from the command line
        raw = [p.strip() for p in raw.split(",") if p.strip()]
    if isinstance(raw, str) or not isinstance(raw, Sequence) or not raw:
        raise ShiftSettingsInvalid(f.at("steps"), "expected a list of percentages ending at 100")
    steps: list[Step] = []
    for i, item in enumerate(raw):
        path = f"{f.at('steps')}[{i}]"
        if isinstance(item, Mapping):
            sf = _fields(item, path)
            step = Step(
                sf.integer("weight", -1, minimum=0, maximum=100), sf.boolean("approve", False)
            )
            sf.done()
        else:
            step = Step(_integer(item, path, 0, 100))
        if steps and step.percent <= steps[-1].percent:
            raise ShiftSettingsInvalid(
                path,
                f"{step.percent} % does not move on from the step before ({steps[-1].percent} %): "
                "steps must increase",
            )
        steps.append(step)
    if steps[-1].percent != 100:
        raise ShiftSettingsInvalid(
            f"{f.at('steps')}[{len(steps) - 1}]",
            f"the last step is {steps[-1].percent} %: a shift ends with 100 % on the new cluster",
        )
    return tuple(steps)


@dataclass(frozen=True)
class Tsig:
    """Where the TSIG key is: a key file (BIND's ``key`` clause, or the base64 secret alone)
    or an environment variable holding the secret; ``name`` and ``algorithm`` unless the
    key file says them."""

    name: str | None = None
    algorithm: str = "hmac-sha256"
    secret_file: str | None = None
    secret_env: str | None = None


@dataclass(frozen=True)
class Rfc2136Settings:
    server: str
    port: int
    zone: str
    tsig: Tsig | None
    timeout: float


@dataclass(frozen=True)
class Route53Settings:
    hosted_zone_id: str
    region: str | None
    endpoint_url: str | None
    sync_timeout: float
    sync_interval: float


@dataclass(frozen=True)
class ExternalDnsSettings:
    """The Services/Ingresses external-dns publishes the names from, in each cluster, and
    where it writes the records (Route53: weights are its ``aws-weight`` annotation)."""

    old: tuple[ObjectRef, ...]
    new: tuple[ObjectRef, ...]
    route53: Route53Settings
    sync_timeout: float


@dataclass(frozen=True)
class ProviderSettings:
    kind: str
    set_ids: tuple[str, str]  # the weighted sets' identifiers: (old, new)
    rfc2136: Rfc2136Settings | None = None
    route53: Route53Settings | None = None
    external_dns: ExternalDnsSettings | None = None

    @property
    def zone(self) -> str:
        """The zone's identity, for people and for the fingerprint."""
        if self.rfc2136:
            return f"{self.rfc2136.zone} at {self.rfc2136.server}:{self.rfc2136.port}"
        route53 = self.route53 or (self.external_dns.route53 if self.external_dns else None)
        return f"route53 {route53.hosted_zone_id}" if route53 else ""


def _route53(f: Fields) -> Route53Settings:
    settings = Route53Settings(
        hosted_zone_id=f.required("hostedZoneId", "the hosted zone's id (Z...)").split("/")[-1],
        region=f.string("region"),
        endpoint_url=f.string("endpointUrl"),
        sync_timeout=f.number("syncTimeout", 600.0, minimum=1),
        sync_interval=f.number("syncInterval", 5.0, minimum=0.05),
    )
    f.done()
    return settings


def _provider(f: Fields) -> ProviderSettings:
    kind = f.required("kind", f"one of {', '.join(PROVIDERS)}")
    if kind not in PROVIDERS:
        raise ShiftSettingsInvalid(
            f.at("kind"), f"{kind!r}: expected one of {', '.join(PROVIDERS)}"
        )
    ids = f.sub("setIdentifiers")
    set_ids = (ids.string("old", "old") or "old", ids.string("new", "new") or "new")
    ids.done()
    if set_ids[0] == set_ids[1]:
        raise ShiftSettingsInvalid(ids.at("new"), "the two set identifiers must differ")
    settings = ProviderSettings(kind=kind, set_ids=set_ids)
    if kind == "rfc2136":
        rf = f.sub("rfc2136")
        server = rf.required("server", "the DNS server's address")
        port = rf.integer("port", 53, minimum=1, maximum=65535)
        if ":" in server and server.count(":") == 1:
            server, port_text = server.split(":")
            port = _integer(port_text, rf.at("server"), 1, 65535)
        zone = _dns_name(rf.required("zone", "the zone the names are in"), rf.at("zone"))
        tsig = None
        if rf.doc.get("tsig") is not None:
            tf = rf.sub("tsig")
            tsig = Tsig(
                name=tf.string("name"),
                algorithm=tf.string("algorithm", "hmac-sha256") or "hmac-sha256",
                secret_file=tf.string("secretFile"),
                secret_env=tf.string("secretEnv"),
            )
            tf.done()
            if not tsig.secret_file and not tsig.secret_env:
                raise ShiftSettingsInvalid(tf.path, "give secretFile or secretEnv")
            if not tsig.name and not tsig.secret_file:
                raise ShiftSettingsInvalid(tf.at("name"), "required with secretEnv")
        timeout = rf.number("timeout", 5.0, minimum=0.1)
        rf.done()
        settings = ProviderSettings(
            kind, set_ids, rfc2136=Rfc2136Settings(server, port, zone, tsig, timeout)
        )
    elif kind == "route53":
        settings = ProviderSettings(kind, set_ids, route53=_route53(f.sub("route53")))
    else:
        ef = f.sub("externalDns")
        refs = {
            side: tuple(ObjectRef.parse(v, p) for p, v in ef.items(side)) for side in ("old", "new")
        }
        for side, found in refs.items():
            if not found:
                raise ShiftSettingsInvalid(
                    ef.at(side), "list the Services/Ingresses external-dns publishes the names from"
                )
        ext = ExternalDnsSettings(
            old=refs["old"],
            new=refs["new"],
            route53=_route53(ef.sub("route53")),
            sync_timeout=ef.number("syncTimeout", 600.0, minimum=1),
        )
        ef.done()
        settings = ProviderSettings(kind, set_ids, external_dns=ext)
    for other, owner in (
        ("rfc2136", "rfc2136"),
        ("route53", "route53"),
        ("externalDns", "external-dns"),
    ):
        if owner != kind and f.raw(other) is not None:
            raise ShiftSettingsInvalid(f.at(other), f"only read with kind {owner}, not {kind}")
    f.done()
    return settings


@dataclass(frozen=True)
class HttpGate:
    """HTTP(S) probes of each name's new targets (the name as Host header and TLS server name):
    each check sends ``requests`` probes per target; it fails when, over the last ``window``
    seconds, more than ``max_error_rate`` of the probes failed (a connection error, a
    timeout, a status outside ``expect``) or the ``percentile`` latency exceeds
    ``max_latency``."""

    scheme: str = "http"
    port: int | None = None
    path: str = "/"
    expect: tuple[tuple[int, int], ...] = ((200, 399),)
    timeout: float = 5.0
    requests: int = 3
    window: float = 30.0
    max_error_rate: float = 0.0
    percentile: float = 99.0
    max_latency: float = 1.0
    insecure: bool = False

    @property
    def target_port(self) -> int:
        return self.port or (443 if self.scheme == "https" else 80)

    def expected(self, status: int) -> bool:
        return any(lo <= status <= hi for lo, hi in self.expect)


@dataclass(frozen=True)
class CommandGate:
    """A command that must exit 0 (a Prometheus query, a smoke test); exit 75 (EX_TEMPFAIL)
    or a timeout means "could not tell right now" and is tried again."""

    run: tuple[str, ...]
    shell: bool
    timeout: float


@dataclass(frozen=True)
class Gates:
    """Every ``interval`` seconds from the moment a step is written, one check runs every
    gate; ``threshold`` failed checks in a step roll the shift back; a step passes once its
    wait is over and at least ``checks`` checks ran. A temporary gate error (the gate could
    not measure) is tried again at the next interval, ``retries`` times in a row at most,
    then counts as a failed check; a permanent one rolls back at once."""

    http: HttpGate | None = field(default_factory=HttpGate)
    command: CommandGate | None = None
    interval: float = 10.0
    checks: int = 6
    threshold: int = 3
    retries: int = 3


def _expect(f: Fields) -> tuple[tuple[int, int], ...]:
    raw = f.raw("expectStatus", ["200-399"])
    values = [raw] if isinstance(raw, str | int) else raw
    ranges = []
    for i, value in enumerate(values):
        path = f"{f.at('expectStatus')}[{i}]"
        text = str(value)
        lo, _, hi = text.partition("-")
        ranges.append((_integer(lo, path, 100, 599), _integer(hi or lo, path, 100, 599)))
    return tuple(ranges)


def _gates(f: Fields) -> Gates:
    http: HttpGate | None = None
    raw_http = f.raw("http", {})
    if raw_http is not False:
        hf = _fields(raw_http, f.at("http"))
        scheme = hf.choice("scheme", "http", ("http", "https"))
        latency = hf.sub("latency")
        http = HttpGate(
            scheme=scheme,
            port=hf.integer("port", 0, minimum=0, maximum=65535) or None,
            path=hf.string("path", "/") or "/",
            expect=_expect(hf),
            timeout=hf.number("timeout", 5.0, minimum=0.05),
            requests=hf.integer("requests", 3, minimum=1, maximum=100),
            window=hf.number("window", 30.0, minimum=0.05),
            max_error_rate=hf.number("maxErrorRate", 0.0, minimum=0, maximum=1),
            percentile=latency.number("percentile", 99.0, minimum=1, maximum=100),
            max_latency=latency.number("max", 1.0, minimum=0.001),
            insecure=hf.boolean("insecure", False),
        )
        latency.done()
        hf.done()
        if not http.path.startswith("/"):
            raise ShiftSettingsInvalid(hf.at("path"), "must start with /")
    command = None
    raw_command = f.raw("command")
    if raw_command is not None:
        if isinstance(raw_command, str):
            raw_command = {"run": raw_command}
        cf = _fields(raw_command, f.at("command"))
        run = cf.raw("run")
        if isinstance(run, str) and run.strip():
            argv, shell = (run,), True
        elif isinstance(run, list) and run and all(isinstance(a, str) for a in run):
            argv, shell = tuple(run), False
        else:
            raise ShiftSettingsInvalid(cf.at("run"), "a shell command, or a list of arguments")
        command = CommandGate(argv, shell, cf.number("timeout", 60.0, minimum=0.1))
        cf.done()
    gates = Gates(
        http=http,
        command=command,
        interval=f.number("interval", 10.0, minimum=0.05),
        checks=f.integer("checks", 6, minimum=1),
        threshold=f.integer("threshold", 3, minimum=1),
        retries=f.integer("retries", 3, minimum=0),
    )
    f.done()
    if gates.threshold > gates.checks:
        raise ShiftSettingsInvalid(
            f.at("threshold"),
            f"{gates.threshold} failed checks could never be reached in {gates.checks} checks",
        )
    return gates


@dataclass(frozen=True)
class ShiftSettings:
    """Everything a shift needs to know, validated (see the module doc)."""

    names: tuple[NameSettings, ...]
    provider: ProviderSettings
    steps: tuple[Step, ...] = tuple(Step(p) for p in DEFAULT_STEPS)
    ttl: int = 60
    step_wait: float = 120.0
    gates: Gates = field(default_factory=Gates)
    txt_prefix: str = ""
    txt_suffix: str = ""
    endpoint_timeout: float = 300.0

    @property
    def dns_names(self) -> list[str]:
        return [n.name for n in self.names]

    @property
    def step_seconds(self) -> float:
        """How long a step lasts at least: its wait (never under the TTL)."""
        return max(self.step_wait, float(self.ttl))

    def fingerprint(self) -> dict[str, Any]:
        """What makes two runs the same shift: a resumed run must have the same."""
        return {
            "names": [n.to_dict() for n in self.names],
            "provider": {
                "kind": self.provider.kind,
                "zone": self.provider.zone,
                "setIdentifiers": list(self.provider.set_ids),
            },
            "steps": [s.percent for s in self.steps],
        }

    def to_dict(self) -> dict[str, Any]:
        """A summary for reports and the stored state (no secret: only where keys are read)."""
        gates = self.gates
        return {
            **self.fingerprint(),
            "approve": [s.percent for s in self.steps if s.approve],
            "ttl": self.ttl,
            "stepWait": self.step_wait,
            "gates": {
                "http": {
                    "path": gates.http.path,
                    "scheme": gates.http.scheme,
                    "port": gates.http.target_port,
                }
                if gates.http
                else None,
                "command": list(gates.command.run) if gates.command else None,
                "interval": gates.interval,
                "checks": gates.checks,
                "threshold": gates.threshold,
            },
        }


def parse(doc: Mapping[str, Any] | None, *, path: str = ROOT) -> ShiftSettings:
    """The validated settings of ``doc`` (the ``traffic:`` mapping); see the module doc."""
    f = _fields(doc, path)
    provider = _provider(f.sub("provider"))
    names = []
    for item_path, item in f.items("names"):
        if isinstance(item, str):
            item = {"name": item}
        nf = _fields(item, item_path)
        name = _dns_name(nf.required("name", "the DNS name to move"), nf.at("name"))
        names.append(
            NameSettings(
                name, _side(nf.raw("old"), nf.at("old")), _side(nf.raw("new"), nf.at("new"))
            )
        )
        nf.done()
        if provider.kind != "external-dns" and not names[-1].new.given:
            raise ShiftSettingsInvalid(
                nf.at("new"),
                "required: where the name points on the new "
                "cluster (addresses, hostname, or from: service/NS/NAME)",
            )
        if provider.rfc2136 and not name.endswith("." + provider.rfc2136.zone):
            raise ShiftSettingsInvalid(
                nf.at("name"), f"{name} is not in zone {provider.rfc2136.zone}"
            )
    if not names:
        raise ShiftSettingsInvalid(f.at("names"), "required: at least one DNS name")
    seen = [n.name for n in names]
    if len(set(seen)) != len(seen):
        raise ShiftSettingsInvalid(f.at("names"), "a name is listed twice")
    ownership = f.sub("externalDnsRegistry")
    settings = ShiftSettings(
        names=tuple(names),
        provider=provider,
        steps=_steps(f, DEFAULT_STEPS),
        ttl=f.integer("ttl", 60, minimum=1, maximum=86400),
        step_wait=f.number("stepWait", 120.0, minimum=0),
        gates=_gates(f.sub("gates")),
        txt_prefix=ownership.string("txtPrefix", "") or "",
        txt_suffix=ownership.string("txtSuffix", "") or "",
        endpoint_timeout=f.number("endpointTimeout", 300.0, minimum=0),
    )
    ownership.done()
    f.done()
    return settings
