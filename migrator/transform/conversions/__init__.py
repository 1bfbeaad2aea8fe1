"""Built-in conversions for every group/version Kubernetes removed from 1.16 to 1.32.

One module per API group; each exposes ``CONVERSIONS``, the conversions it declares (source
and target (apiVersion, kind)). ``ALL`` gathers them for ``migrator.transform.registry``.
"""

from __future__ import annotations

from migrator.transform.conversions import (
    admissionregistration,
    apiextensions,
    apiregistration,
    apps,
    autoscaling,
    batch,
    certificates,
    coordination,
    discovery,
    events,
    flowcontrol,
    networking,
    node,
    policy,
    rbac,
    scheduling,
    storage,
)

MODULES = (
    apps,
    networking,
    apiextensions,
    admissionregistration,
    autoscaling,
    policy,
    batch,
    rbac,
    storage,
    scheduling,
    coordination,
    discovery,
    events,
    node,
    certificates,
    apiregistration,
    flowcontrol,
)
ALL = tuple(conversion for module in MODULES for conversion in module.CONVERSIONS)
