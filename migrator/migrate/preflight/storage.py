"""``storage-classes``: every claim in scope will find its storage class in the target, and
a provisioner behind it.

A claim's class is its ``storageClassName`` (or the beta annotation) after the plan's
mapping (``transform.differences.storageClasses``). The class must exist in the target, or
be a StorageClass the export itself carries (renamed by the same mapping). Its provisioner
counts as present in the target when:

- a CSIDriver of that name is registered there (every CSI driver registers one);
- it is ``kubernetes.io/no-provisioner`` (local and static volumes: nothing provisions them);
- it is an in-tree name whose volumes the target hands to a CSI driver (CSI migration, the
  only way in-tree names still work in current releases) and that CSIDriver is there;
- a PersistentVolume in the target says it was provisioned by it
  (``pv.kubernetes.io/provisioned-by``): external provisioners that are not CSI drivers
  (local-path and other hostPath provisioners) register nothing else.

A class whose provisioner is not found is a warn (it may run but be unseen); a missing class
is a fail. With ``volumes.method: ebs`` every bound claim's volume must be an EBS volume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from migrator.migrate.preflight.context import SOURCE, TARGET, Context
from migrator.migrate.preflight.result import FAIL, PASS, WARN, CheckResult, bounded
from migrator.resources.objects import annotations_of, dig, name_of, namespace_of
from migrator.volumes.claims import ebs_volume_id

NO_PROVISIONER = "kubernetes.io/no-provisioner"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
# In-tree provisioners → the CSI driver CSI migration hands their volumes to.
CSI_MIGRATED = {
    "kubernetes.io/aws-ebs": "ebs.csi.aws.com",
    "kubernetes.io/gce-pd": "pd.csi.storage.gke.io",
    "kubernetes.io/azure-disk": "disk.csi.azure.com",
    "kubernetes.io/azure-file": "file.csi.azure.com",
    "kubernetes.io/cinder": "cinder.csi.openstack.org",
    "kubernetes.io/vsphere-volume": "csi.vsphere.vmware.com",
    "kubernetes.io/portworx-volume": "pxd.portworx.com",
}
STORAGE = "storage.k8s.io/v1"


def claim_class(claim: Mapping[str, Any]) -> str | None:
    """The class a claim asks for; None when it names none ("" included: static binding)."""
    name = dig(claim, "spec", "storageClassName")
    if name is None:
        name = annotations_of(claim).get(BETA_CLASS)
    return str(name) if name else None


def provisioner_present(provisioner: str, drivers: set[str], provisioned: set[str]) -> bool:
    """Whether ``provisioner`` runs in a cluster with CSIDrivers ``drivers`` and PVs
    provisioned by ``provisioned`` (see the module doc)."""
    if provisioner == NO_PROVISIONER or provisioner in drivers or provisioner in provisioned:
        return True
    return CSI_MIGRATED.get(provisioner) in drivers


def _classes(ctx: Context, side: str) -> dict[str, str]:
    return {
        name_of(sc): str(sc.get("provisioner") or "")
        for sc in ctx.list_all(side, STORAGE, "storageclasses")
    }


def _exports_classes(ctx: Context) -> bool:
    scope = ctx.scope
    return scope.takes_cluster_scoped and scope.wants_type(
        {"storageclasses", "storageclasses.storage.k8s.io", "storageclass", "sc"}
    )


def check_storage_classes(ctx: Context) -> CheckResult:
    mapping = ctx.plan.transform.differences.storage_classes
    claims = list(ctx.in_scope("v1", "persistentvolumeclaims"))
    if not claims:
        return CheckResult("storage-classes", PASS, "no PersistentVolumeClaim in scope")
    target_classes = _classes(ctx, TARGET)
    imported: dict[str, str] = {}
    if _exports_classes(ctx):
        imported = {mapping.get(n, n): p for n, p in _classes(ctx, SOURCE).items()}
    drivers = {name_of(d) for d in ctx.list_all(TARGET, STORAGE, "csidrivers")}
    provisioned = {
        str(annotations_of(pv).get(PROVISIONED_BY))
        for pv in ctx.list_all(TARGET, "v1", "persistentvolumes")
        if annotations_of(pv).get(PROVISIONED_BY)
    }
    missing: list[str] = []
    lacking: set[str] = set()
    unseen: dict[str, str] = {}
    used: dict[str, int] = {}
    for claim in claims:
        asked = claim_class(claim)
        if asked is None:
            continue
        wanted = mapping.get(asked, asked)
        where = f"PVC {namespace_of(claim)}/{name_of(claim)}"
        via = f" (mapped from {asked})" if wanted != asked else ""
        provisioner = target_classes.get(wanted, imported.get(wanted))
        if provisioner is None:
            missing.append(f"{where}: class {wanted}{via} is not in the target")
            lacking.add(wanted)
            continue
        used[wanted] = used.get(wanted, 0) + 1
        if not provisioner_present(provisioner, drivers, provisioned):
            unseen[wanted] = provisioner
    ebs = _not_ebs(ctx, claims) if ctx.plan.volumes.method == "ebs" else []
    if missing or ebs:
        actions = []
        if missing:
            have = ", ".join(sorted(target_classes)) or "none"
            actions.append(
                f"create {', '.join(sorted(lacking))} in the target, or map each to one it has "
                f"({have}) in transform.differences.storageClasses (OLD: NEW)"
            )
        if ebs:
            actions.append("move these volumes with volumes.method: mover")
        summary = []
        if missing:
            summary.append(f"{len(missing)} claim(s) name a class the target lacks")
        if ebs:
            summary.append(f"{len(ebs)} claim(s) are not on EBS volumes (volumes.method: ebs)")
        return CheckResult(
            "storage-classes", FAIL, "; ".join(summary), "; ".join(actions), bounded(missing + ebs)
        )
    if unseen:
        return CheckResult(
            "storage-classes",
            WARN,
            f"{len(unseen)} class(es) have a provisioner not seen in the target",
            "install the provisioner (its CSI driver) in the target before the import, "
            "or claims there will stay Pending",
            bounded(f"class {c}: provisioner {p}" for c, p in sorted(unseen.items())),
        )
    return CheckResult(
        "storage-classes",
        PASS,
        f"{len(claims)} claim(s): every class is in the target with its provisioner",
        details=bounded(f"class {c}: {n} claim(s)" for c, n in sorted(used.items())),
    )


def _not_ebs(ctx: Context, claims: list[dict[str, Any]]) -> list[str]:
    """Bound claims whose volume is not an EBS volume."""
    volumes = {name_of(pv): pv for pv in ctx.list_all(SOURCE, "v1", "persistentvolumes")}
    found = []
    for claim in claims:
        volume = dig(claim, "spec", "volumeName")
        if volume and ebs_volume_id(volumes.get(str(volume))) is None:
            found.append(
                f"PVC {namespace_of(claim)}/{name_of(claim)}: volume {volume} is not an EBS volume"
            )
    return found
