"""Benchmark of the built-in conversions on one core:
`.venv/bin/python scripts/bench/conversions_bench.py`.

A 20,000-object snapshot in memory (90% at served versions, 10% extensions/v1beta1 Deployments
and Ingresses), then each removed kind alone; objects/s, best of three.
"""

from __future__ import annotations

import timeit

from migrator.transform import registry

SERVES = registry.release_serves(33)
TEMPLATE = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {
        "containers": [{"name": "web", "image": "nginx:1.21", "ports": [{"containerPort": 80}]}]
    },
}
DEPLOYMENT = {
    "apiVersion": "extensions/v1beta1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"replicas": 3, "template": TEMPLATE},
}
INGRESS = {
    "apiVersion": "extensions/v1beta1",
    "kind": "Ingress",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "backend": {"serviceName": "web", "servicePort": 80},
        "rules": [
            {
                "host": f"h{i}.example.com",
                "http": {
                    "paths": [
                        {"path": "/", "backend": {"serviceName": "web", "servicePort": "http"}}
                    ]
                },
            }
            for i in range(3)
        ],
    },
}
CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "c", "namespace": "shop"},
    "data": {"k": "v"},
}
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "s"},
    "spec": {"ports": [{"port": 80}]},
}


def rate(objects: list[dict], repeat: int = 3) -> float:
    def run() -> None:
        for obj in objects:
            registry.convert_for(obj, lambda _: True, kind_serves=SERVES)

    return len(objects) / min(timeit.repeat(run, number=1, repeat=repeat))


def main() -> None:
    snapshot = [CONFIGMAP, SERVICE, {**DEPLOYMENT, "apiVersion": "apps/v1"}] * 6000 + [
        DEPLOYMENT,
        INGRESS,
    ] * 1000
    results = {
        "20,000-object snapshot (10% removed versions)": rate(snapshot),
        "extensions/v1beta1 Deployment only": rate([DEPLOYMENT] * 10000),
        "extensions/v1beta1 Ingress (3 hosts) only": rate([INGRESS] * 10000),
    }
    for name, value in results.items():
        print(f"{name}: {value:,.0f} objects/s")


if __name__ == "__main__":
    main()
