"""Command line of the proving ground: build | start | stop | describe | env."""
from __future__ import annotations

import argparse
import json
import shlex
import sys

from . import config, ground, nodes


def _describe_text(state: dict) -> str:
    lines = [f"proving ground started {state['started_at']}  (state: {config.state_file()})",
             f"  kubeconfig  {state['kubeconfig']}  (contexts: {', '.join(state['clusters'])})"]
    for name, info in state["clusters"].items():
        lines.append(f"  {name:<5} Kubernetes v{info['version']:<9} {info['server']}  "
                     f"services {info['service_cidr']}  pods {info['pod_cidr']}")
    s3, dns = state["s3"], state["dns"]
    lines.append(f"  s3    MinIO {s3['endpoint']}  bucket {s3['bucket']}  access key {s3['access_key']}")
    lines.append(f"  dns   BIND {dns['server']}:{dns['port']}  zone {dns['zone']}  "
                 f"TSIG key {dns['tsig_name']} ({dns['tsig_algorithm']})")
    lines.append(f"  k8s.io/api fixtures  {state['fixtures']['k8s_api_testdata']}")
    lines += nodes.describe_lines(state)
    for proc in state["processes"]:
        lines.append(f"  {'up  ' if proc['alive'] else 'DOWN'} {proc['name']:<28} pid {proc['pid']:<8} {proc['log']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="proving-ground", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build every server from Go modules (cached by version)")
    sub.add_parser("start", help="build what is missing, then start a fresh proving ground")
    sub.add_parser("stop", help="stop every process of the proving ground")
    desc = sub.add_parser("describe", help="where everything listens and whether it is up")
    desc.add_argument("--json", action="store_true")
    sub.add_parser("env", help="shell exports for the running proving ground (eval them)")
    args = parser.parse_args(argv)

    if args.command == "build":
        ground.build_all()
    elif args.command == "start":
        ground.start()
        print(_describe_text(ground.describe()))
    elif args.command == "stop":
        ground.stop()
    elif args.command == "describe":
        state = ground.describe()
        print(json.dumps(state, indent=2) if args.json else _describe_text(state))
        if not all(p["alive"] for p in state["processes"]):
            return 1
    elif args.command == "env":
        state = ground.describe()
        s3 = state["s3"]
        exports = {"KUBECONFIG": state["kubeconfig"], "AWS_ACCESS_KEY_ID": s3["access_key"],
                   "AWS_SECRET_ACCESS_KEY": s3["secret_key"], "AWS_DEFAULT_REGION": s3["region"],
                   "AWS_ENDPOINT_URL_S3": s3["endpoint"]}
        for name, info in state["clusters"].items():
            exports[f"KUBECTL_{name.upper()}"] = info["kubectl"]
        # What a plan file names with ${...} (examples/scenarios, scripts/demo).
        dns_info = state["dns"]
        exports |= {"PG_KUBECONFIG": state["kubeconfig"], "PG_S3_ENDPOINT": s3["endpoint"],
                    "PG_DNS_SERVER": f"{dns_info['server']}:{dns_info['port']}",
                    "PG_DNS_ZONE": dns_info["zone"],
                    "PG_TSIG_KEY_FILE": dns_info.get("tsig_key_file", ""),
                    "PG_MOVER_IMAGE": state.get("images", {}).get("mover", ""),
                    "PG_BUSYBOX_IMAGE": state.get("images", {}).get("busybox", "")}
        nodes = state.get("real_nodes") or {}
        if "old" in nodes:
            exports["PG_PODS_S3_ENDPOINT"] = nodes["old"]["s3_endpoint_from_pods"]
        for key, value in exports.items():
            print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
