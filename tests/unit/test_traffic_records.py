"""The providers' pure parts: Route53's batch rules and weights, RFC2136's round-robin
shares, TSIG key files, and external-dns's registry."""
from __future__ import annotations

import pytest

from migrator.errors import BatchInvalid, ConfigError
from migrator.traffic.providers.externaldns import (
    OBJECT,
    Ownership,
    dns_shows,
    find_owners,
    parse_registry,
    registry_names,
)
from migrator.traffic.providers.rfc2136 import load_tsig, render_round_robin, round_robin_counts
from migrator.traffic.providers.route53 import (
    change_batch,
    check_batch,
    check_records,
    from_aws,
    render_weighted,
    to_aws,
)
from migrator.traffic.records import Alias, Change, Record, Route, Targets, records
from migrator.traffic.settings import Tsig

pytestmark = pytest.mark.unit

NAME = "app.example.test."
IDS = ("old", "new")


def weighted(set_id: str, weight: int, ttl: int | None = 60, values=("10.0.0.1",), rtype="A"):
    return Record(NAME, rtype, ttl, tuple(values), set_id, weight)


# --- Route53: the rules moto does not check -----------------------------------------------


@pytest.mark.parametrize(("recs", "rule"), [
    ([weighted("old", 256), weighted("new", 0)], "weights 0-255"),
    ([weighted("old", -1), weighted("new", 1)], "weights 0-255"),
    ([weighted("old", 50, ttl=60), weighted("new", 50, ttl=30)], "one TTL per weighted group"),
    ([Record(NAME, "A", 60, ("10.0.0.9",)), weighted("new", 10)], "plain or weighted"),
    ([weighted(f"s{i}", 1) for i in range(101)], "at most 100 weighted sets"),
    ([weighted("old", 0), weighted("new", 0)], "never every weight 0"),
    ([weighted("old", 50), weighted("new", 50, values=("lb.example.net.",), rtype="CNAME")],
     "CNAME alone"),
    ([weighted("old", 50), weighted("old", 50, values=("10.0.0.2",))], "unique sets"),
    ([Record(NAME, "A", 60, ("10.0.0.1",), "old", None)], "weighted sets"),
    ([Record(NAME, "A", None, ("10.0.0.1",))], "TTL"),
])
def test_route53_rules(recs, rule):
    with pytest.raises(BatchInvalid) as caught:
        check_records(NAME, records(recs))
    assert caught.value.rule == rule


def test_route53_accepts_what_it_accepts():
    check_records(NAME, records([weighted(f"s{i}", i % 3) for i in range(100)]))
    check_records(NAME, records([weighted("old", 0), weighted("new", 255)]))
    alias = Record(NAME, "A", None, (), "new", 10, Alias("Z35", "lb.example.net."))
    check_records(NAME, records([weighted("old", 90), alias]))  # an alias has no TTL to match
    check_records(NAME, records([Record(NAME, "A", 60, ("10.0.0.1",)),
                                 weighted("x", 1, rtype="AAAA", values=("::1",))]))


def test_route53_batch_deletes_exactly_and_creates_anew():
    plain = Record(NAME, "A", 60, ("10.0.0.1",))
    going = records([weighted("old", 100), weighted("new", 0, values=("10.0.0.2",))])
    check_batch({NAME: (plain,)}, [Change(NAME, (plain,), going)])  # plain → weighted at once
    moved = Record(NAME, "A", 60, ("10.0.0.7",))
    with pytest.raises(BatchInvalid) as caught:
        check_batch({NAME: (moved,)}, [Change(NAME, (plain,), going)])
    assert caught.value.rule == "DELETE matches"
    with pytest.raises(BatchInvalid) as caught:
        check_batch({NAME: (plain,)}, [Change(NAME, (), (plain,))])
    assert caught.value.rule == "CREATE is new"
    with pytest.raises(BatchInvalid) as caught:  # the result is checked too
        check_batch({NAME: (plain,)}, [Change(NAME, (), (weighted("new", 5),))])
    assert caught.value.rule == "plain or weighted"


def test_route53_batch_order_and_shapes():
    plain = Record(NAME, "A", 60, ("10.0.0.1",))
    after = render_weighted(Route(NAME, Targets(("10.0.0.1",)), Targets(("10.0.0.2",))), 10, 5, IDS)
    batch = change_batch([Change(NAME, (plain,), after)])
    assert [c["Action"] for c in batch["Changes"]] == ["DELETE", "CREATE", "CREATE"]
    assert batch["Changes"][0]["ResourceRecordSet"] == {
        "Name": NAME, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "10.0.0.1"}]}
    for record in after:
        assert from_aws(to_aws(record)) == record
    assert from_aws({"Name": "\\052.example.test.", "Type": "A", "TTL": 5,
                     "ResourceRecords": [{"Value": "10.0.0.1"}]}).name == "*.example.test."


def test_route53_weights_are_the_step():
    route = Route(NAME, Targets(("10.0.0.1",)), Targets(hostname="lb.example.net", alias_zone="Z35"))
    for percent in (0, 10, 25, 50, 100):
        recs = render_weighted(route, percent, 5, IDS)
        by_id = {r.set_id: r for r in recs}
        assert by_id["old"].weight == 100 - percent and by_id["old"].ttl == 5
        assert by_id["new"].weight == percent and by_id["new"].alias == Alias("Z35", "lb.example.net.")
        check_records(NAME, recs)


def test_route53_leaves_out_a_family_whose_weights_are_all_zero():
    route = Route(NAME, Targets(("10.0.0.1",)), Targets(("10.0.0.2", "2001:db8::2")))
    assert {r.type for r in render_weighted(route, 0, 5, IDS)} == {"A"}
    assert {(r.type, r.set_id) for r in render_weighted(route, 10, 5, IDS)} == {
        ("A", "old"), ("A", "new"), ("AAAA", "new")}


# --- RFC2136: weights as shares of a round-robin set --------------------------------------


@pytest.mark.parametrize(("n_old", "n_new", "percent", "expected"), [
    (1, 1, 0, (1, 0)), (1, 1, 10, (1, 0)), (1, 1, 25, (1, 0)), (1, 1, 26, (1, 1)),
    (1, 1, 50, (1, 1)), (1, 1, 75, (1, 1)), (1, 1, 76, (0, 1)), (1, 1, 100, (0, 1)),
    (3, 3, 10, (3, 0)), (3, 3, 25, (3, 1)), (3, 3, 33, (2, 1)), (3, 3, 50, (3, 3)),
    (3, 3, 60, (2, 3)), (3, 3, 100, (0, 3)), (4, 4, 20, (4, 1)), (5, 5, 10, (5, 1)),
])
def test_round_robin_shares(n_old, n_new, percent, expected):
    assert round_robin_counts(n_old, n_new, percent) == expected


def test_round_robin_records_and_cname_cutover():
    old = Targets(("10.0.0.1", "10.0.0.3", "2001:db8::1"))
    new = Targets(("10.0.1.1", "10.0.1.3"))
    at = {p: render_round_robin(Route(NAME, old, new), p, 5) for p in (0, 50, 100)}
    assert at[0] == records([Record(NAME, "A", 5, ("10.0.0.1", "10.0.0.3")),
                             Record(NAME, "AAAA", 5, ("2001:db8::1",))])
    assert at[50] == records([Record(NAME, "A", 5, ("10.0.0.1", "10.0.0.3", "10.0.1.1", "10.0.1.3")),
                              Record(NAME, "AAAA", 5, ("2001:db8::1",))])
    assert at[100] == records([Record(NAME, "A", 5, ("10.0.1.1", "10.0.1.3"))])
    cname = Route(NAME, Targets(hostname="old-lb.example.net"), Targets(("10.0.1.1",)))
    assert render_round_robin(cname, 50, 5) == (Record(NAME, "CNAME", 5, ("old-lb.example.net.",)),)
    assert render_round_robin(cname, 51, 5) == (Record(NAME, "A", 5, ("10.0.1.1",)),)


def test_tsig_keys_from_a_bind_key_file_a_bare_secret_or_the_environment(tmp_path, monkeypatch):
    secret = "dGhpcyBpcyBhIHRzaWcgc2VjcmV0IGZvciB0ZXN0cw=="
    clause = tmp_path / "clause.key"
    clause.write_text(f'key "ddns-key" {{\n  algorithm hmac-sha512;\n  secret "{secret}";\n}};\n')
    _keyring, name, algorithm = load_tsig(Tsig(secret_file=str(clause)))
    assert (name.to_text(), algorithm) == ("ddns-key.", "hmac-sha512")
    bare = tmp_path / "bare.key"
    bare.write_text(secret + "\n")
    assert load_tsig(Tsig(name="k", secret_file=str(bare)))[1].to_text() == "k."
    monkeypatch.setenv("TSIG_SECRET", secret)
    assert load_tsig(Tsig(name="k", secret_env="TSIG_SECRET"))[2] == "hmac-sha256"
    monkeypatch.setenv("TSIG_SECRET", "not base64 %%%")
    with pytest.raises(ConfigError) as caught:
        load_tsig(Tsig(name="k", secret_env="TSIG_SECRET"))
    assert "%%%" not in str(caught.value) and "not base64" in str(caught.value)
    monkeypatch.delenv("TSIG_SECRET")
    with pytest.raises(ConfigError, match=r"\$TSIG_SECRET is not set"):
        load_tsig(Tsig(name="k", secret_env="TSIG_SECRET"))


# --- external-dns's registry ---------------------------------------------------------------


def test_registry_names_in_every_format():
    names = registry_names("app.example.test")
    assert ("legacy", "app.example.test.") in names
    assert ("type-prefixed", "a-app.example.test.") in names
    assert ("type-prefixed", "cname-app.example.test.") in names
    assert ("metadata", "a._metadata.app.example.test.") in names
    affixed = registry_names("app.example.test", prefix="edns-%{record_type}-")
    assert ("legacy", "edns--app.example.test.") in affixed
    assert ("type-prefixed", "edns-aaaa-app.example.test.") in affixed
    assert ("legacy", "app-txt.example.test.") in registry_names("app.example.test", suffix="-txt")


class TxtOnly:
    """Stands for a provider: only TXT records."""

    def __init__(self, txt: dict[str, list[str]]) -> None:
        self.records = txt

    def txt(self, name: str) -> list[str]:
        return self.records.get(name, [])


def test_ownership_from_txt_records_in_both_formats():
    value = '"heritage=external-dns,external-dns/owner=prod,external-dns/resource=service/shop/web"'
    assert parse_registry(value) == {"heritage": "external-dns", "external-dns/owner": "prod",
                                     "external-dns/resource": "service/shop/web"}
    assert parse_registry('"v=spf1 -all"') is None
    provider = TxtOnly({
        "a.example.test.": [value, "v=spf1 -all"],          # legacy: at the name
        "cname-b.example.test.": [value.replace("prod", "staging")],  # <type>-<name>
        "c.example.test.": ["some other text"],
    })
    owners = find_owners(provider, ["a.example.test.", "b.example.test.", "c.example.test."])  # type: ignore[arg-type]
    assert owners == [
        Ownership("a.example.test.", "a.example.test.", "legacy", "prod", "service/shop/web"),
        Ownership("b.example.test.", "cname-b.example.test.", "type-prefixed", "staging",
                  "service/shop/web"),
    ]


def test_external_dns_records_show_the_annotations():
    def obj(side, set_id, weight, ttl=None):
        return Record(NAME, OBJECT, ttl, (f"{side} service/shop/web",), set_id, weight)

    annotated = (obj("old", "old", 90, 5), obj("new", "new", 10, 5))
    dns = (weighted("old", 90, ttl=5), weighted("new", 10, ttl=5, values=("10.0.0.2",)))
    assert dns_shows(dns, annotated)
    assert not dns_shows(dns, (obj("old", "old", 75, 5), obj("new", "new", 25, 5)))
    assert not dns_shows(dns[:1], annotated)
    assert not dns_shows((*dns, Record(NAME, "A", 5, ("10.0.0.1",))), annotated)
    plain = (Record(NAME, "A", 60, ("10.0.0.1",)),)
    assert dns_shows(plain, (obj("old", None, None), obj("new", None, None)))
    assert not dns_shows(dns, (obj("old", None, None),))
