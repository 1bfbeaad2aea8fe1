"""HorizontalPodAutoscaler autoscaling/v2beta1 → v2beta2 → v2.

v2beta2 restructured every metric source: the metric is named by a ``metric`` identifier
(name + selector) and the goal by a ``target`` (type + value/averageValue/averageUtilization);
statuses by ``current``. v2beta1 kept ``spec.behavior`` in an annotation. v2beta2 → v2 only
moves the version. The mapping, including which target type is chosen, is the API server's
(``pkg/apis/autoscaling/v2beta1/conversion.go``).
"""

from __future__ import annotations

import json
from typing import Any

from migrator.transform.base import Severity
from migrator.transform.conversions.convert import Rewrite, renamed
from migrator.transform.conversions.rewriter import Rewriter

V2BETA1 = "autoscaling/v2beta1"
V2BETA2 = "autoscaling/v2beta2"
V2 = "autoscaling/v2"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
HPA = "HorizontalPodAutoscaler"


def _some(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def _metric(name: Any, selector: Any) -> dict[str, Any]:
    return _some(name=name, selector=selector)


def _resource_spec(src: dict[str, Any]) -> dict[str, Any]:
    utilization = src.get("targetAverageUtilization")
    target = _some(
        type="AverageValue" if utilization is None else "Utilization",
        averageUtilization=utilization,
        averageValue=src.get("targetAverageValue"),
    )
    return _some(name=src.get("name"), container=src.get("container"), target=target)


def _pods_spec(src: dict[str, Any]) -> dict[str, Any]:
    return {
        "metric": _metric(src.get("metricName"), src.get("selector")),
        "target": _some(type="AverageValue", averageValue=src.get("targetAverageValue")),
    }


def _object_spec(src: dict[str, Any]) -> dict[str, Any]:
    average = src.get("averageValue")
    return {
        "describedObject": src.get("target"),
        "metric": _metric(src.get("metricName"), src.get("selector")),
        "target": _some(
            type="Value" if average is None else "AverageValue",
            value=src.get("targetValue"),
            averageValue=average,
        ),
    }


def _external_spec(src: dict[str, Any]) -> dict[str, Any]:
    value = src.get("targetValue")
    return {
        "metric": _metric(src.get("metricName"), src.get("metricSelector")),
        "target": _some(
            type="AverageValue" if value is None else "Value",
            value=value,
            averageValue=src.get("targetAverageValue"),
        ),
    }


def _resource_status(src: dict[str, Any]) -> dict[str, Any]:
    return _some(
        name=src.get("name"),
        container=src.get("container"),
        current=_some(
            averageValue=src.get("currentAverageValue"),
            averageUtilization=src.get("currentAverageUtilization"),
        ),
    )


def _pods_status(src: dict[str, Any]) -> dict[str, Any]:
    return {
        "metric": _metric(src.get("metricName"), src.get("selector")),
        "current": _some(averageValue=src.get("currentAverageValue")),
    }


def _object_status(src: dict[str, Any]) -> dict[str, Any]:
    return {
        "describedObject": src.get("target"),
        "metric": _metric(src.get("metricName"), src.get("selector")),
        "current": _some(value=src.get("currentValue"), averageValue=src.get("averageValue")),
    }


def _external_status(src: dict[str, Any]) -> dict[str, Any]:
    return {
        "metric": _metric(src.get("metricName"), src.get("metricSelector")),
        "current": _some(
            value=src.get("currentValue"), averageValue=src.get("currentAverageValue")
        ),
    }


# metric source type → (its key in the metric, spec converter, status converter)
SOURCES = {
    "Resource": ("resource", _resource_spec, _resource_status),
    "ContainerResource": ("containerResource", _resource_spec, _resource_status),
    "Pods": ("pods", _pods_spec, _pods_status),
    "Object": ("object", _object_spec, _object_status),
    "External": ("external", _external_spec, _external_status),
}


def _metrics(rw: Rewriter, path: tuple[str, ...], status: bool) -> None:
    for item_path, metric in rw.each(path):
        source = SOURCES.get(metric.get("type", "")) if isinstance(metric, dict) else None
        if source is None or not isinstance(metric.get(source[0]), dict):
            rw.record(
                item_path, "keep", "unknown metric source type; left as it is", Severity.REVIEW
            )
            continue
        key, spec, current = source
        new = dict(metric)
        new[key] = (current if status else spec)(metric[key])
        rw.set(
            item_path,
            new,
            f"{metric['type']} metric in the v2beta2 layout (metric identifier, "
            f"{'current' if status else 'target'})",
            action="convert",
        )


def json_keys(value: Any) -> Any:
    """The annotation holds the internal Go struct, marshalled without json tags (``ScaleDown``):
    the field names in the API's lower camel case."""
    if isinstance(value, dict):
        return {key[:1].lower() + key[1:]: json_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_keys(item) for item in value]
    return value


def v2beta1_edit(rw: Rewriter) -> None:
    """Metrics, current metrics and the behavior annotation."""
    _metrics(rw, ("spec", "metrics"), status=False)
    _metrics(rw, ("status", "currentMetrics"), status=True)
    annotation = ("metadata", "annotations", BEHAVIOR_ANNOTATION)
    raw = rw.get(annotation)
    if raw is None:
        return
    try:
        behavior = json_keys(json.loads(raw))
    except ValueError:
        rw.record(
            annotation,
            "keep",
            "the behavior annotation is not JSON; left as it is",
            Severity.REVIEW,
        )
        return
    rw.pop(annotation)
    rw.put(("spec", "behavior"), behavior)
    rw.record(
        annotation,
        "move",
        "v2beta1 kept spec.behavior in an annotation (now /spec/behavior)",
        before=None,
        after=behavior,
    )
    if not rw.get(("metadata", "annotations")):
        rw.pop(("metadata", "annotations"))


CONVERSIONS = (
    Rewrite((V2BETA1, HPA), (V2BETA2, HPA), (v2beta1_edit,)),
    *renamed(V2BETA2, V2, (HPA,)),
)
