"""Cutover benchmark: requests across a whole shift, and how fast a failing new cluster is
rolled back.

On the proving ground's BIND, a name points at the old cluster's endpoint; the old and new
endpoints are HTTP servers on loopback addresses of their own (``--per-side`` each, one
port: ``tests/cutover.py``), and a client resolving the name through BIND on every request,
keeping answers for their TTL, sends ``GET /`` from ``--threads`` threads without pause.
``python -m migrator shift ... -o json`` (the command as a user runs it) then runs twice:

a. cutover: 0 → 10 → 25 → 50 → 100 % with both endpoints healthy: requests sent and
   failed, each step's time (written to the next one written) and the share of requests
   that reached new, against the share the plan gives;
b. rollback: the new endpoint answers 503 from one TTL after the 25 % step is written (the
   clients hold the 25 % answer by then): time from the failure to the gate's verdict, to
   the old records back in BIND, to the last request that reached new; requests failed.

Both runs lower the name's TTL from ``--old-ttl`` to ``--ttl`` and wait it out first.
Run it alone on a running proving ground (``scripts/proving-ground start``).

    .venv/bin/python scripts/bench/cutover_bench.py [--ttl 1] [--step-wait 2] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import dns.query  # noqa: E402
import dns.tsigkeyring  # noqa: E402
import dns.update  # noqa: E402

from tests.cutover import Client, LocalBackend, Result, local_backends, share_new  # noqa: E402

STEPS = [0, 10, 25, 50, 100]


def dns_state() -> dict[str, Any]:
    pg = Path(os.environ.get("MIGRATOR_PG_DIR") or REPO / ".proving-ground")
    return json.loads((pg / "state.json").read_text())["dns"]


def set_a(dns_info: dict[str, Any], name: str, ttl: int, addresses: list[str]) -> None:
    keyring = dns.tsigkeyring.from_text(
        {dns_info["tsig_name"]: (dns_info["tsig_algorithm"], dns_info["tsig_secret"])})
    update = dns.update.UpdateMessage(dns_info["zone"], keyring=keyring,
                                      keyname=dns_info["tsig_name"],
                                      keyalgorithm=dns_info["tsig_algorithm"])
    update.replace(name, ttl, "A", *addresses)
    assert dns.query.tcp(update, dns_info["server"], port=dns_info["port"]).rcode() == 0


def settings(dns_info: dict[str, Any], work: Path, name: str, new: LocalBackend,
             args: argparse.Namespace) -> Path:
    key = work / "tsig.key"
    key.write_text(f'key "{dns_info["tsig_name"].rstrip(".")}" {{ algorithm '
                   f'{dns_info["tsig_algorithm"]}; secret "{dns_info["tsig_secret"]}"; }};\n')
    doc = {"traffic": {
        "provider": {"kind": "rfc2136", "rfc2136": {
            "server": f"{dns_info['server']}:{dns_info['port']}", "zone": dns_info["zone"],
            "tsig": {"secretFile": str(key)}}},
        "names": [{"name": name, "new": list(new.addresses)}],
        "steps": STEPS, "ttl": args.ttl, "stepWait": args.step_wait,
        "gates": {"interval": args.interval, "checks": 3, "threshold": args.threshold,
                  "http": {"port": new.port, "window": 1, "timeout": 1}},
    }}
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_shift(config: Path, store: Path, on_event=None) -> tuple[int, list[dict[str, Any]]]:
    """The command, its events as they come; (exit code, events)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "migrator", "shift", "--id", "bench", "--config", str(config),
         "--store", str(store), "-o", "json"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    events = []
    assert proc.stdout is not None
    for line in proc.stdout:
        event = json.loads(line)
        events.append(event)
        if on_event is not None:
            on_event(event)
    proc.wait()
    return proc.returncode, events


def one_run(dns_info: dict[str, Any], work: Path, args: argparse.Namespace, *,
            fail_at: int | None) -> dict[str, Any]:
    name = f"bench-{uuid.uuid4().hex[:6]}.{dns_info['zone']}"
    with local_backends(args.per_side, base=50) as (old, new):
        set_a(dns_info, name, args.old_ttl, old.addresses)
        config = settings(dns_info, work, name, new, args)
        client = Client(name, dns_info["server"], dns_info["port"], old.port, threads=args.threads)
        client.start()
        time.sleep(0.5)
        broke: list[float] = []

        def fail_now() -> None:
            new.fail()
            broke.append(time.time())

        def on_event(event: dict[str, Any]) -> None:
            if fail_at is not None and event["event"] == "written" and event["percent"] == fail_at:
                threading.Timer(args.ttl + 0.2, fail_now).start()

        started = time.time()
        code, events = run_shift(config, work / f"store-{name}", on_event)
        ended = time.time()
        time.sleep(args.ttl + 0.5)
        results = client.stop()
    report = events[-1]["report"]
    summary: dict[str, Any] = {
        "exit": code, "outcome": report["outcome"], "seconds": round(ended - started, 2),
        "requests": len(results), "failed": sum(not r.ok for r in results),
        "dnsLookups": client.lookups,
    }
    if fail_at is None:
        summary["steps"] = steps(events, results, name, args.ttl)
    else:
        summary.update(rollback(report, broke[0] if broke else None, results, new))
    return summary


def steps(events: list[dict[str, Any]], results: list[Result], name: str, ttl: float
          ) -> list[dict[str, Any]]:
    written = [e for e in events if e["event"] == "written"]
    rows = []
    for this, following in zip(written, written[1:] + [None], strict=True):
        end = following["time"] if following else this["time"] + ttl + 0.5
        seen = share_new(results, this["time"] + ttl + 0.1, end)
        rows.append({"step": this["step"], "seconds": round(end - this["time"], 2),
                     "plannedShare": round(this["shares"][name], 3),
                     "observedShare": None if seen is None else round(seen, 3),
                     "requests": sum(this["time"] <= r.at < end for r in results)})
    return rows


def rollback(report: dict[str, Any], broke: float | None, results: list[Result],
             new: LocalBackend) -> dict[str, Any]:
    back = report["rollback"] or {}
    failed = [r for r in results if not r.ok]
    last_new = max((r.at for r in results if r.address in new.addresses), default=None)

    def after(t: float | None) -> float | None:
        return None if t is None or broke is None else round(t - broke, 3)

    return {
        "reason": report["reason"],
        "gateFailedAfter": after(back.get("gateFailedAt")),
        "recordsRestoredAfter": after(back.get("restoredAt")),
        "lastRequestOnNewAfter": after(last_new),
        "failuresFrom": after(min((r.done for r in failed), default=None)),
        "failuresUntil": after(max((r.done for r in failed), default=None)),
    }


def markdown(result: dict[str, Any]) -> str:
    cut, back, knobs = result["cutover"], result["rollback"], result["settings"]
    lines = [
        f"settings: {knobs}",
        "",
        "| step | seconds | planned share on new | observed share | requests |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in cut["steps"]:
        observed = "-" if row["observedShare"] is None else f"{row['observedShare']:.0%}"
        lines.append(f"| {row['step']} | {row['seconds']:.1f} | {row['plannedShare']:.0%} | "
                     f"{observed} | {row['requests']:,} |")
    lines += [
        "",
        f"cutover: {cut['requests']:,} requests, {cut['failed']} failed, {cut['seconds']:.1f} s "
        f"({cut['outcome']})",
        f"rollback: {back['requests']:,} requests, {back['failed']} failed; after the new "
        f"endpoint broke: gate failed {back['gateFailedAfter']} s, records restored "
        f"{back['recordsRestoredAfter']} s, last request on new {back['lastRequestOnNewAfter']} s; "
        f"failures from {back['failuresFrom']} s to {back['failuresUntil']} s ({back['outcome']})",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttl", type=int, default=1, help="TTL during the shift (seconds)")
    parser.add_argument("--old-ttl", type=int, default=2, help="the name's TTL before it")
    parser.add_argument("--step-wait", type=float, default=2.0)
    parser.add_argument("--interval", type=float, default=0.25, help="between gate checks")
    parser.add_argument("--threshold", type=int, default=2, help="failed checks to roll back")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--per-side", type=int, default=3, help="addresses per cluster")
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    args = parser.parse_args()
    dns_info = dns_state()
    with tempfile.TemporaryDirectory(prefix="cutover-bench-") as tmp:
        work = Path(tmp)
        result = {
            "settings": {k: getattr(args, k) for k in
                         ("ttl", "old_ttl", "step_wait", "interval", "threshold", "threads",
                          "per_side")},
            "load": os.getloadavg(),
            "cutover": one_run(dns_info, work, args, fail_at=None),
            "rollback": one_run(dns_info, work, args, fail_at=25),
        }
    print(json.dumps(result, indent=None if args.json else 2))
    if not args.json:
        print()
        print(markdown(result))


if __name__ == "__main__":
    main()
