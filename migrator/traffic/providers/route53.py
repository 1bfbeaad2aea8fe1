"""Route53 weighted record sets, through boto3.

Each name gets one weighted record set per cluster and type (``SetIdentifier`` old and new,
configurable), pointing at plain values (A, AAAA, CNAME) or at an alias target; a step sets
the new set's ``Weight`` to the step's percentage and the old one's to the rest, so weights
are exact. A name that starts as a plain record becomes weighted in the first batch (the
plain set deleted and both weighted ones created at once: Route53 applies a batch whole).

Every step is one change batch, checked first by :func:`check_batch` against the rules
Route53 enforces (weights 0-255, one TTL across a weighted group, no plain and weighted set
of one name and type, at most 100 weighted sets, never every weight 0, which Route53 treats
as an equal split, a CNAME alone at its name, DELETEs that match exactly what is there):
moto accepts invalid batches and reports them ``INSYNC`` at once, so the rules are ours to
check. Changed sets are DELETEd with their exact old values and CREATEd anew, never UPSERTed:
Route53 refuses the DELETE of values someone changed, and the batch with it. The batch is
then waited on until ``INSYNC``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from migrator.errors import BatchInvalid, DnsAuthError, DnsError, DnsUnreachable
from migrator.kube.wait import READY, WAITING, Readiness, wait_for
from migrator.traffic.providers.base import DEFAULT_TTL, Provider, guard_failed
from migrator.traffic.records import (
    ADDRESS_TYPES,
    TYPES,
    Alias,
    Change,
    Record,
    Records,
    RecordState,
    Route,
    absolute,
    records,
)
from migrator.traffic.settings import ProviderSettings, Route53Settings

MAX_WEIGHT = 255
MAX_WEIGHTED_SETS = 100
_TEMPORARY = {
    "Throttling",
    "ThrottlingException",
    "PriorRequestNotComplete",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
}
_AUTH = {
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ExpiredToken",
}
_BATCH = {"InvalidChangeBatch", "InvalidInput"}


# --- the rules, checked before sending ------------------------------------------------


def check_records(name: str, recs: Records) -> None:
    """Raise :class:`BatchInvalid` if ``recs``, the record sets of ``name`` after a batch,
    break a rule of Route53 (see the module doc)."""
    for r in recs:
        if (r.set_id is None) != (r.weight is None):
            raise BatchInvalid(
                "weighted sets",
                f"{r.describe()}: a weighted set needs both SetIdentifier and "
                "Weight (other routing policies are not shifted)",
            )
        if r.weight is not None and not 0 <= r.weight <= MAX_WEIGHT:
            raise BatchInvalid("weights 0-255", f"{r.describe()}: weight {r.weight}")
        if (r.alias is None) == (r.ttl is None):
            raise BatchInvalid("TTL", f"{r.describe()}: a set has a TTL unless it is an alias")
    types = {r.type for r in recs}
    if "CNAME" in types and len(types) > 1:
        raise BatchInvalid(
            "CNAME alone", f"{name}: a CNAME cannot share its name with {sorted(types - {'CNAME'})}"
        )
    for rtype in sorted(types):
        group = [r for r in recs if r.type == rtype]
        keys = [r.set_id or "" for r in group]
        if len(set(keys)) != len(keys):
            raise BatchInvalid("unique sets", f"{name} {rtype}: two sets with one identifier")
        weighted = [r for r in group if r.weighted]
        if weighted and len(weighted) != len(group):
            raise BatchInvalid(
                "plain or weighted", f"{name} {rtype}: a plain set and weighted sets at once"
            )
        if len(weighted) > MAX_WEIGHTED_SETS:
            raise BatchInvalid(
                "at most 100 weighted sets", f"{name} {rtype}: {len(weighted)} weighted sets"
            )
        ttls = {r.ttl or 0 for r in weighted if r.alias is None}
        if len(ttls) > 1:
            raise BatchInvalid("one TTL per weighted group", f"{name} {rtype}: TTLs {sorted(ttls)}")
        if weighted and all(r.weight == 0 for r in weighted):
            raise BatchInvalid(
                "never every weight 0",
                f"{name} {rtype}: every weight is 0, which Route53 answers as an equal split",
            )


def check_batch(current: Mapping[str, Records], changes: Sequence[Change]) -> None:
    """Raise :class:`BatchInvalid` unless ``changes`` applied to ``current`` (every set of
    the names concerned) make a batch Route53 accepts and a state that keeps its rules."""
    for change in changes:
        now = current.get(change.name, ())
        for r in change.removed:
            if r not in now:
                raise BatchInvalid("DELETE matches", f"{r.describe()} is not there to delete")
        result = [r for r in now if r not in change.removed]
        for r in change.added:
            if any(o.key == r.key for o in result):
                raise BatchInvalid(
                    "CREATE is new",
                    f"{r.describe()}: a set with its name, type and identifier exists",
                )
            result.append(r)
        check_records(change.name, records(result))


# --- records and Route53's shapes ---------------------------------------------------------


def render_weighted(route: Route, percent: int, ttl: int, set_ids: tuple[str, str]) -> Records:
    """The weighted sets giving the new targets ``percent`` % (the old ones the rest); a
    type only one side has is left out while its weight is 0."""
    sets = []
    for set_id, targets, weight in (
        (set_ids[0], route.old, 100 - percent),
        (set_ids[1], route.new, percent),
    ):
        if targets.hostname and targets.alias_zone:
            alias = Alias(targets.alias_zone, targets.hostname)
            sets.append(Record(route.name, "A", None, (), set_id, weight, alias))
        elif targets.hostname:
            sets.append(Record(route.name, "CNAME", ttl, (targets.hostname,), set_id, weight))
        else:
            sets += [
                Record(route.name, rtype, ttl, targets.of_type(rtype), set_id, weight)
                for rtype in ADDRESS_TYPES
                if targets.of_type(rtype)
            ]
    kept = [r for r in sets if any(o.weight for o in sets if o.type == r.type)]
    return records(kept)


def to_aws(record: Record) -> dict[str, Any]:
    """The ``ResourceRecordSet`` of a record."""
    doc: dict[str, Any] = {"Name": record.name, "Type": record.type}
    if record.weighted:
        doc["SetIdentifier"] = record.set_id
        doc["Weight"] = record.weight
    if record.alias:
        doc["AliasTarget"] = {
            "HostedZoneId": record.alias.hosted_zone_id,
            "DNSName": record.alias.dns_name,
            "EvaluateTargetHealth": record.alias.evaluate_target_health,
        }
    else:
        doc["TTL"] = record.ttl
        doc["ResourceRecords"] = [{"Value": v} for v in record.values]
    return doc


def from_aws(doc: Mapping[str, Any]) -> Record:
    """A record from a ``ResourceRecordSet`` (Route53 escapes ``*`` as ``\\052``)."""
    alias = doc.get("AliasTarget")
    return Record(
        name=_unescape(doc["Name"]),
        type=doc["Type"],
        ttl=doc.get("TTL"),
        values=tuple(v["Value"] for v in doc.get("ResourceRecords", ())),
        set_id=doc.get("SetIdentifier"),
        weight=doc.get("Weight"),
        alias=Alias(
            alias["HostedZoneId"],
            absolute(alias["DNSName"]),
            bool(alias.get("EvaluateTargetHealth")),
        )
        if alias
        else None,
    )


def _unescape(name: str) -> str:
    return absolute(re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), name))


def change_batch(changes: Sequence[Change]) -> dict[str, Any]:
    """The ``ChangeBatch`` of ``changes``: exact DELETEs first, then CREATEs."""
    deletes = [
        {"Action": "DELETE", "ResourceRecordSet": to_aws(r)} for c in changes for r in c.removed
    ]
    creates = [
        {"Action": "CREATE", "ResourceRecordSet": to_aws(r)} for c in changes for r in c.added
    ]
    return {"Comment": "migrator shift", "Changes": deletes + creates}


# --- the provider ---------------------------------------------------------------------


class Route53Provider(Provider):
    """One hosted zone's weighted records (module doc). ``route53`` overrides the settings'
    own (external-dns reads its records through this class); ``clock``/``sleep`` are
    injectable for the wait until INSYNC."""

    kind = "route53"

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        route53: Route53Settings | None = None,
        client: Any = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(settings, sleep=sleep)
        config = route53 or settings.route53
        assert config is not None
        self.config = config
        self.clock = clock
        self.zone_id = config.hosted_zone_id
        self.client = client or self._client(config)

    @staticmethod
    def _client(config: Route53Settings) -> Any:
        import boto3  # slow to import: only when Route53 is used
        from botocore.config import Config

        return boto3.client(
            "route53",
            endpoint_url=config.endpoint_url,
            region_name=config.region or "us-east-1",
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )

    def check(self) -> None:
        self._call(lambda: self.client.get_hosted_zone(Id=self.zone_id), "get hosted zone")

    def read(self, names: Sequence[str]) -> RecordState:
        return {name: records(r for r in self._sets(name) if r.type in TYPES) for name in names}

    def txt(self, name: str) -> list[str]:
        return [v.strip('"') for r in self._sets(name, "TXT") if r.type == "TXT" for v in r.values]

    def _sets(self, name: str, start_type: str | None = None) -> list[Record]:
        """Every set of ``name`` (from ``start_type`` on, in Route53's order)."""
        query: dict[str, Any] = {"HostedZoneId": self.zone_id, "StartRecordName": name}
        if start_type:
            query["StartRecordType"] = start_type
        found: list[Record] = []
        while True:
            page = self._call(
                lambda q=query: self.client.list_resource_record_sets(**q),  # type: ignore[misc]
                f"list {name}",
            )
            for doc in page["ResourceRecordSets"]:
                record = from_aws(doc)
                if record.name != name:
                    return found
                found.append(record)
            if not page.get("IsTruncated"):
                return found
            query = {
                "HostedZoneId": self.zone_id,
                "StartRecordName": page["NextRecordName"],
                "StartRecordType": page["NextRecordType"],
            }
            if page.get("NextRecordIdentifier"):
                query["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def render(
        self, route: Route, percent: int, ttl: int | None, original: Records = ()
    ) -> Records:
        return render_weighted(
            route, percent, DEFAULT_TTL if ttl is None else ttl, self.settings.set_ids
        )

    def validate(self, name: str, recs: Records) -> None:
        """Raise :class:`BatchInvalid` if records a shift plans break Route53's rules."""
        check_records(name, recs)

    def operations(self, changes: Sequence[Change]) -> list[Any]:
        todo = [c for c in changes if not c.noop]
        return [change_batch(todo)] if todo else []

    def send(self, changes: Sequence[Change]) -> None:
        current = self.read([c.name for c in changes])
        moved = [c for c in changes if current[c.name] != c.before]
        if moved:
            raise guard_failed(moved, "read again just before the batch")
        check_batch(current, changes)
        try:
            answer = self._call(
                lambda: self.client.change_resource_record_sets(
                    HostedZoneId=self.zone_id, ChangeBatch=change_batch(changes)
                ),
                "change batch",
            )
        except DnsError as exc:
            # A DELETE whose values someone changed meanwhile fails the whole batch.
            if exc.code in _BATCH and self.read([c.name for c in changes]) != current:
                raise guard_failed(changes, str(exc)) from exc
            raise
        self._wait_insync(answer["ChangeInfo"]["Id"])

    def _wait_insync(self, change_id: str) -> None:
        def status() -> str:
            answer = self._call(lambda: self.client.get_change(Id=change_id), "get change")
            return str(answer["ChangeInfo"]["Status"])

        waited = wait_for(
            status,
            lambda s: Readiness(READY) if s == "INSYNC" else Readiness(WAITING, f"status {s}"),
            timeout=self.config.sync_timeout,
            interval=self.config.sync_interval,
            clock=self.clock,
            sleep=self.sleep,
        )
        if not waited.ready:
            raise DnsUnreachable(
                f"Route53 change {change_id} is not INSYNC: {waited.readiness.reason}",
                hint="the same command with --resume picks up once Route53 has applied it",
            )

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
        )

        try:
            return fn()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code, message = str(error.get("Code", "")), str(error.get("Message", ""))
            text = f"Route53 {what} in zone {self.zone_id}: {code}: {message}"
            if code in _TEMPORARY:
                raise DnsUnreachable(text, code=code) from exc
            if code in _AUTH:
                raise DnsAuthError(
                    text,
                    code=code,
                    hint="check the AWS credentials and their IAM permissions on the hosted zone",
                ) from exc
            hint = "check the hosted zone id" if code == "NoSuchHostedZone" else None
            raise DnsError(text, code=code, hint=hint) from exc
        except NoCredentialsError as exc:
            raise DnsAuthError(
                "no AWS credentials found for Route53",
                hint="set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ) from exc
        except (ConnectionError, HTTPClientError) as exc:
            raise DnsUnreachable(f"cannot reach Route53 ({what}): {exc}") from exc
        except BotoCoreError as exc:
            raise DnsError(f"Route53 {what}: {exc}") from exc
