"""RFC2136 dynamic updates, signed with TSIG, for BIND, PowerDNS, Knot and friends.

**Weights.** Plain DNS has no weights: a name's A (or AAAA) record set is a round-robin set,
and each resolver hands the addresses out in turn (or at random), so the share of answers
that lead to the new cluster is the share of new addresses in the set. A set holds each
address at most once, so the shares a shift can reach are those of ``j`` new addresses
among ``i + j``, for ``i`` up to the old cluster's addresses and ``j`` up to the new one's
(:func:`round_robin_counts` takes the nearest to the step, a tie going to the smaller share).
With one address on each side the only shares are 0, 50 and 100 %; with three on each side
(a load balancer in three zones) they are 0, 25, 33, 40, 50, 60, 67, 75 and 100 %. The
report and the dry run show the share each step really gets. A CNAME holds one target: it
moves in one go, at the first step above 50 %. A family only one side has (AAAA on the old
cluster alone, say) stays until 100 % (old) or comes at 100 % (new).

**Guards.** Every update carries prerequisites: each record set the shift touches must hold
exactly the values read before (or be absent), so a change someone made in between fails the
update (NXRRSET/YXRRSET) instead of being overwritten. Prerequisites ignore TTLs; the shift
also compares what it reads before each step.

**Keys.** The TSIG key is read from a file (BIND's ``key "name" { algorithm ...; secret
"..."; };`` or the base64 secret alone) or an environment variable; it never appears in a
message. :meth:`Rfc2136Provider.check` sends an update made only of a prerequisite (the
zone's SOA exists), which tests the key and the server's update policy and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring
import dns.update

from migrator.errors import ConfigError, DnsAuthError, DnsError, DnsUnreachable
from migrator.traffic.providers.base import DEFAULT_TTL, Provider, guard_failed
from migrator.traffic.records import (
    ADDRESS_TYPES,
    TYPES,
    Change,
    Record,
    Records,
    RecordState,
    Route,
    Targets,
    records,
)
from migrator.traffic.settings import ProviderSettings, Rfc2136Settings, Tsig

_KEY_CLAUSE = re.compile(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', re.S)
_GUARD_CODES = {dns.rcode.NXRRSET, dns.rcode.YXRRSET, dns.rcode.NXDOMAIN, dns.rcode.YXDOMAIN}


def round_robin_counts(n_old: int, n_new: int, percent: int) -> tuple[int, int]:
    """How many old and new addresses (``i``, ``j``) put the share of new answers nearest
    ``percent``: ``j / (i + j)``, never an empty set; ties go to the smaller share, then to
    the bigger set (more addresses carry more load)."""
    if n_old + n_new == 0:
        raise ValueError("no address on either side")
    if percent <= 0 and n_old:
        return n_old, 0
    if percent >= 100 and n_new:
        return 0, n_new
    candidates = [(i, j) for i in range(n_old + 1) for j in range(n_new + 1) if i + j]
    return min(
        candidates,
        key=lambda c: (abs(c[1] / (c[0] + c[1]) - percent / 100), c[1] / (c[0] + c[1]), -sum(c)),
    )


def render_round_robin(route: Route, percent: int, ttl: int) -> Records:
    """The record sets that give the new targets ``percent`` % as nearly as the addresses
    allow (see the module doc)."""
    old, new = route.old, route.new
    if old.hostname or new.hostname:
        chosen = new if percent > 50 else old
        if chosen.hostname:
            return (Record(route.name, "CNAME", ttl, (chosen.hostname,)),)
        return _address_sets(route.name, chosen, ttl)
    sets = []
    for rtype in ADDRESS_TYPES:
        olds, news = old.of_type(rtype), new.of_type(rtype)
        if olds and news:
            i, j = round_robin_counts(len(olds), len(news), percent)
            values = olds[:i] + news[:j]
        elif olds:
            values = olds if percent < 100 else ()
        else:
            values = news if percent >= 100 else ()
        if values:
            sets.append(Record(route.name, rtype, ttl, values))
    return records(sets)


def _address_sets(name: str, targets: Targets, ttl: int) -> Records:
    return records(
        Record(name, rtype, ttl, targets.of_type(rtype))
        for rtype in ADDRESS_TYPES
        if targets.of_type(rtype)
    )


def load_tsig(tsig: Tsig) -> tuple[Any, dns.name.Name, str]:
    """(keyring, key name, algorithm) from the key file or environment variable named."""
    name, algorithm = tsig.name, tsig.algorithm
    if tsig.secret_file:
        try:
            text = Path(tsig.secret_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read the TSIG key file {tsig.secret_file}: {exc.strerror}"
            ) from None
        clause = _KEY_CLAUSE.search(text)
        if clause:
            name = name or clause.group(1)
            body = clause.group(2)
            found = re.search(r"algorithm\s+([\w.-]+)\s*;", body)
            algorithm = found.group(1) if found else algorithm
            found = re.search(r'secret\s+"([^"]+)"\s*;', body)
            secret = found.group(1) if found else ""
        else:
            secret = text.strip()
        where = f"key file {tsig.secret_file}"
    else:
        assert tsig.secret_env
        secret = os.environ.get(tsig.secret_env, "").strip()
        where = f"${tsig.secret_env}"
        if not secret:
            raise ConfigError(f"{where} is not set: it should hold the TSIG key's secret")
    if not name:
        raise ConfigError(f"the TSIG key's name is not in {where}: give tsig.name")
    try:
        base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"the TSIG secret in {where} is not base64") from None
    keyname = dns.name.from_text(name)
    return dns.tsigkeyring.from_text({name: (algorithm, secret)}), keyname, algorithm


class Rfc2136Provider(Provider):
    """Records on a primary DNS server, changed with signed dynamic updates (module doc)."""

    kind = "rfc2136"

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(settings, **({"sleep": sleep} if sleep else {}))
        assert settings.rfc2136 is not None
        self.config: Rfc2136Settings = settings.rfc2136
        self._key: tuple[Any, dns.name.Name, str] | None = (
            load_tsig(self.config.tsig) if self.config.tsig else None
        )

    @property
    def where(self) -> str:
        return f"{self.config.server}:{self.config.port}"

    def check(self) -> None:
        update = self._update()
        update.present(self.config.zone, "SOA")
        self._send(update, [])

    def read(self, names: Sequence[str]) -> RecordState:
        return {name: self._read(name) for name in names}

    def _read(self, name: str) -> Records:
        found = []
        for rtype in TYPES:
            rrset = self._query(name, rtype)
            if rrset is not None:
                values = tuple(r.to_text() for r in rrset)
                found.append(Record(name, rtype, rrset.ttl, values))
        return records(found)

    def txt(self, name: str) -> list[str]:
        rrset = self._query(name, "TXT")
        if rrset is None:
            return []
        return [b"".join(r.strings).decode("utf-8", "replace") for r in rrset]

    def _query(self, name: str, rtype: str) -> Any:
        query = dns.message.make_query(name, rtype)
        response = self._call(
            lambda: dns.query.tcp(
                query, self.config.server, port=self.config.port, timeout=self.config.timeout
            )
        )
        if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise DnsError(
                f"{self.where} answered {dns.rcode.to_text(response.rcode())} "
                f"to a query for {name} {rtype}"
            )
        owner = dns.name.from_text(name)
        for rrset in response.answer:
            if rrset.name == owner and rrset.rdtype == dns.rdatatype.from_text(rtype):
                return rrset
        return None

    def render(
        self, route: Route, percent: int, ttl: int | None, original: Records = ()
    ) -> Records:
        return render_round_robin(route, percent, DEFAULT_TTL if ttl is None else ttl)

    def send(self, changes: Sequence[Change]) -> None:
        self._send(self._batch(changes), changes)

    def operations(self, changes: Sequence[Change]) -> list[Any]:
        """The update's prerequisite and update sections, as ``nsupdate`` would show them."""
        todo = [c for c in changes if not c.noop]
        if not todo:
            return []
        text = self._batch(todo, signed=False).to_text().splitlines()
        return ["\n".join(text[text.index(";PREREQ") : text.index(";ADDITIONAL")])]

    def _batch(self, changes: Sequence[Change], *, signed: bool = True) -> dns.update.UpdateMessage:
        """One update: for every name, a prerequisite per type (these exact values, or
        absent), then the removals, then the new sets."""
        update = self._update() if signed else dns.update.UpdateMessage(self.config.zone)
        adds: list[Record] = []
        for change in changes:
            before = {r.type: r for r in change.before}
            after = {r.type: r for r in change.after}
            for rtype in TYPES:
                if rtype in before:
                    update.present(
                        change.name, dns.rdataset.from_text("IN", rtype, 0, *before[rtype].values)
                    )
                else:
                    update.absent(change.name, rtype)
            for rtype in before:
                if rtype not in after or before[rtype] != after[rtype]:
                    update.delete(change.name, rtype)
            adds += [r for t, r in after.items() if before.get(t) != r]
        for record in adds:
            update.add(record.name, record.ttl or 0, record.type, *record.values)
        return update

    def _update(self) -> dns.update.UpdateMessage:
        if self._key is None:
            return dns.update.UpdateMessage(self.config.zone)
        keyring, keyname, algorithm = self._key
        return dns.update.UpdateMessage(
            self.config.zone, keyring=keyring, keyname=keyname, keyalgorithm=algorithm
        )

    def _send(self, update: dns.update.UpdateMessage, changes: Sequence[Change]) -> None:
        response = self._call(
            lambda: dns.query.tcp(
                update, self.config.server, port=self.config.port, timeout=self.config.timeout
            )
        )
        rcode = response.rcode()
        if rcode == dns.rcode.NOERROR:
            return
        text = dns.rcode.to_text(rcode)
        if rcode in _GUARD_CODES and changes:
            raise guard_failed(changes, f"the server's prerequisites failed: {text}")
        if rcode in (dns.rcode.NOTAUTH, dns.rcode.REFUSED):
            raise DnsAuthError(
                f"{self.where} refused the update of zone {self.config.zone} ({text})",
                hint="check that the server is the zone's primary and that its update policy "
                "(allow-update / update-policy) lets this TSIG key update the zone",
            )
        if rcode == dns.rcode.SERVFAIL:
            raise DnsUnreachable(
                f"{self.where} failed the update of zone {self.config.zone} (SERVFAIL)"
            )
        raise DnsError(f"{self.where} answered {text} to the update of zone {self.config.zone}")

    def _call(self, fn: Callable[[], dns.message.Message]) -> dns.message.Message:
        key = self._key[1].to_text() if self._key else ""
        try:
            return fn()
        except dns.tsig.PeerBadKey as exc:
            raise DnsAuthError(
                f"{self.where} does not know the TSIG key {key!r} (BADKEY)",
                hint="check the key's name and algorithm against the server's configuration",
            ) from exc
        except dns.tsig.PeerBadSignature as exc:
            raise DnsAuthError(
                f"{self.where} refused the signature made with TSIG key {key!r} (BADSIG): "
                "its secret is not the server's",
                hint="check the key's secret (the key file or environment variable)",
            ) from exc
        except (dns.tsig.PeerBadTime, dns.tsig.PeerBadTruncation, dns.tsig.PeerError) as exc:
            raise DnsAuthError(
                f"{self.where} refused TSIG key {key!r}: {exc}",
                hint="check this machine's clock and the key",
            ) from exc
        except dns.exception.Timeout as exc:
            raise DnsUnreachable(
                f"DNS server {self.where} did not answer in {self.config.timeout:g}s"
            ) from exc
        except OSError as exc:
            raise DnsUnreachable(
                f"cannot reach DNS server {self.where}: {exc.strerror or exc}"
            ) from exc
        except dns.exception.DNSException as exc:
            raise DnsError(f"DNS server {self.where}: {exc}") from exc
