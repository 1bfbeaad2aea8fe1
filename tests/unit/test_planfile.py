"""The plan file: every wrong setting named by file, line and path; the values it maps to."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrator.errors import PlanInvalid
from migrator.importer import ConflictPolicy
from migrator.migrate.planfile import load, parse

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Four lines: what a test appends starts on line 5.
MINIMAL = """\
name: shop-move
source: {context: old}
target: {context: new}
store: {url: s3://bucket/migrations}
"""

TOP_KEYS = (
    "export, gitops, hooks, import, kubeconfig, name, notifications, preflight, quiesce, "
    "soak, source, store, stuckAfter, target, teardown, traffic, transform, verify, volumes"
)

TRAFFIC = """\
traffic:
  provider:
    kind: rfc2136
    rfc2136: {server: 10.0.0.53, zone: example.com}
  names:
    - {name: shop.example.com, new: [10.1.0.1]}
  steps:
    - 0
    - 50
    - 150
"""

JOB = """\
apiVersion: batch/v1
kind: Job
metadata: {name: backup}
spec: {template: {spec: {restartPolicy: Never, containers: [{name: b, image: busybox}]}}}
"""


def write(folder: Path, text: str, name: str = "plan.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def invalid(folder: Path, text: str) -> PlanInvalid:
    path = write(folder, text)
    with pytest.raises(PlanInvalid) as caught:
        load(path)
    assert caught.value.file == str(path)
    assert caught.value.hint == "fix the plan file; nothing was changed"
    assert caught.value.exit_code == 2
    return caught.value


def message(folder: Path, text: str) -> str:
    """The error's message without the file name in front."""
    error = invalid(folder, text)
    return str(error).removeprefix(f"{folder / 'plan.yaml'}:")


# --- the shape of the file -----------------------------------------------------------------


def test_an_error_carries_file_line_field_and_problem(tmp_path):
    error = invalid(tmp_path, MINIMAL + TRAFFIC)
    assert (error.line, error.field) == (14, "traffic.steps[2]")
    assert error.problem == "must be between 0 and 100 (got 150)"
    assert str(error) == (
        f"{tmp_path / 'plan.yaml'}:14: traffic.steps[2]: must be between 0 and 100 (got 150)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1: the plan is empty: it needs at least name, source, target and store"),
        (
            "# nothing but a comment\n",
            "1: the plan is empty: it needs at least name, source, target and store",
        ),
        (
            "- name: shop\n",
            "1: expected a mapping of settings (name, source, target, store, ...), got a list",
        ),
        (
            "just words\n",
            "1: expected a mapping of settings (name, source, target, store, ...), got a string",
        ),
        (
            MINIMAL + "soak: [10m\n",
            "6: not valid YAML: expected ',' or ']', but got '<stream end>'",
        ),
        (MINIMAL + "store: {url: s3://other}\n", "5: store: given twice (first on line 4)"),
        (
            MINIMAL + "export:\n  workers: 4\n  workers: 5\n",
            "7: export.workers: given twice (first on line 6)",
        ),
        (
            MINIMAL + "---\nname: other\n",
            "5: not valid YAML: expected a single document in the stream, but found another document",
        ),
    ],
)
def test_the_file_as_a_whole(tmp_path, text, expected):
    assert message(tmp_path, text) == expected


def test_aliases_of_aliases_are_refused_before_they_grow(tmp_path):
    levels = ["a0: &a0 [" + ", ".join(["x"] * 10) + "]"]
    for level in range(1, 7):
        levels.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    assert message(tmp_path, "\n".join(levels) + "\n") == " more than 100000 settings: not a plan"


def test_a_plan_that_cannot_be_read(tmp_path):
    with pytest.raises(PlanInvalid) as caught:
        load(tmp_path / "missing.yaml")
    assert (
        str(caught.value) == f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory"
    )
    assert caught.value.line is None
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(PlanInvalid, match="not UTF-8 text"):
        load(tmp_path / "latin1.yaml")


def test_text_without_a_file_is_named_plan(tmp_path):
    with pytest.raises(PlanInvalid) as caught:
        parse(MINIMAL + "gitops: sync\n")
    assert str(caught.value) == "<plan>:5: gitops: 'sync': expected one of leave, import"


# --- every section ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # name
        (
            MINIMAL.replace("name: shop-move\n", ""),
            "1: name: required: the migration's name (it names the run in the store)",
        ),
        (
            MINIMAL.replace("shop-move", "Shop_Move"),
            "1: name: 'Shop_Move': use lowercase letters, digits and '-' (not first or last), at "
            "most 40 characters: it names the run in the store",
        ),
        (
            MINIMAL.replace("shop-move", "a" * 41),
            f"1: name: '{'a' * 41}': use lowercase letters, digits and '-' (not first or last), at "
            "most 40 characters: it names the run in the store",
        ),
        (MINIMAL.replace("shop-move", "true"), "1: name: expected a string, got true"),
        # unknown keys at the top and inside a section
        (MINIMAL + "nmae: shop\n", f"5: nmae: unknown setting (known here: {TOP_KEYS})"),
        (
            MINIMAL + "export:\n  namespace: [shop]\n",
            "6: export.namespace: unknown setting (known here: clusterScoped, excludeNamespaces, "
            "excludeResources, includeSystemNamespaces, keepClusterIps, keepNodePorts, namespaces, "
            "resources, selector, workers)",
        ),
        # source, target
        (
            MINIMAL.replace("source: {context: old}", "source: old"),
            "2: source: expected a mapping, got a string",
        ),
        (
            MINIMAL.replace("source: {context: old}", "source: {name: old-prod}"),
            "2: source.context: required: the kubeconfig context of the old cluster",
        ),
        (
            MINIMAL.replace("target: {context: new}", "target:\n  contxt: new"),
            "4: target.contxt: unknown setting (known here: context, name)",
        ),
        (
            MINIMAL.replace("{context: new}", "{context: old}"),
            "3: target.context: the same context as source ('old'): a migration needs two clusters",
        ),
        # store
        (
            MINIMAL.replace("store: {url: s3://bucket/migrations}", "store: {}"),
            "4: store.url: required: where snapshots, volume data and the run journal go",
        ),
        (
            MINIMAL.replace("s3://bucket/migrations", "gs://bucket"),
            "4: store.url: 'gs://bucket': use s3://BUCKET/PREFIX, file:///PATH or a directory",
        ),
        (
            MINIMAL.replace("s3://bucket/migrations", "s3://"),
            "4: store.url: 's3://' names no bucket: use s3://BUCKET/PREFIX",
        ),
        (
            MINIMAL.replace(
                "{url: s3://bucket/migrations}", "\n  url: s3://b\n  s3Endpoint: minio:9000"
            ),
            "6: store.s3Endpoint: must be an http:// or https:// URL",
        ),
        (
            MINIMAL.replace("s3://bucket/migrations", "./snapshots") + "volumes: {method: none}\n"
            "store: null\n",
            "6: store: given twice (first on line 4)",
        ),
        # export
        (
            MINIMAL + "export:\n  namespaces: shop\n",
            "6: export.namespaces: expected a list, got a string",
        ),
        (
            MINIMAL + "export:\n  namespaces:\n    - shop\n    - {name: web}\n",
            "8: export.namespaces[1]: expected a non-empty string, got a mapping",
        ),
        (
            MINIMAL + "export: {clusterScoped: maybe}\n",
            "5: export.clusterScoped: expected true, false or null, got a string",
        ),
        (
            MINIMAL + "export:\n  workers: 65\n",
            "6: export.workers: must be between 1 and 64 (got 65)",
        ),
        (
            MINIMAL + "export:\n  keepNodePorts: yes please\n",
            "6: export.keepNodePorts: expected true or false, got a string",
        ),
        # transform
        (
            MINIMAL + "transform:\n  lastApplied: strip\n",
            "6: transform.lastApplied: 'strip': expected one of rewrite, drop, keep",
        ),
        (
            MINIMAL + "transform:\n  differences:\n    storageClasses: {standard: 5}\n",
            "7: transform.differences.storageClasses: must map old names to new names (strings)",
        ),
        (
            MINIMAL + "transform:\n  differences:\n    storageClass: {standard: gp3}\n",
            "7: transform.differences.storageClass: unknown setting (known: storageClasses, zones, "
            "registries, namespaces, ingressClasses, serviceCIDR, podCIDR, clusterIP, moveVolumeData)",
        ),
        (
            MINIMAL + "transform:\n  differences:\n    clusterIP: remap\n",
            "7: transform.differences.clusterIP: remap needs the service CIDRs (serviceCIDR: OLD=NEW)",
        ),
        (
            MINIMAL + "transform:\n  differences: [standard=gp3]\n",
            "6: transform.differences: must be a mapping",
        ),
        # gitops, import, verify
        (MINIMAL + "gitops: sync\n", "5: gitops: 'sync': expected one of leave, import"),
        (
            MINIMAL + "import:\n  conflict: overwrite\n",
            "6: import.conflict: 'overwrite': expected one of skip, update, fail",
        ),
        (
            MINIMAL + "import:\n  workers: 0\n",
            "6: import.workers: must be between 1 and 128 (got 0)",
        ),
        (MINIMAL + "import:\n  qps: -1\n", "6: import.qps: must be at least 0 (got -1)"),
        (
            MINIMAL + "verify:\n  wait: soon\n",
            "6: verify.wait: expected a duration such as 90s, 10m or 1h30m (or seconds), got 'soon'",
        ),
        # volumes
        (
            MINIMAL + "volumes:\n  method: rsync\n",
            "6: volumes.method: 'rsync': expected one of mover, ebs, none",
        ),
        (
            MINIMAL + "volumes: {parallel: 33}\n",
            "5: volumes.parallel: must be between 1 and 32 (got 33)",
        ),
        (
            MINIMAL + "volumes:\n  stagePasses: 11\n",
            "6: volumes.stagePasses: must be between 0 and 10 (got 11)",
        ),
        (
            MINIMAL + "volumes:\n  attempts: 0\n",
            "6: volumes.attempts: must be between 1 and 10 (got 0)",
        ),
        (
            MINIMAL + "volumes:\n  jobTimeout: 10s\n",
            "6: volumes.jobTimeout: must be between 30s and 7d (got 10s)",
        ),
        (
            MINIMAL + "volumes:\n  pullPolicy: Sometimes\n",
            "6: volumes.pullPolicy: 'Sometimes': expected one of IfNotPresent, Always, Never",
        ),
        (
            MINIMAL + "volumes:\n  zones: [us-east-1a]\n",
            "6: volumes.zones[0]: 'us-east-1a': expected OLD=NEW (availability zones)",
        ),
        (
            MINIMAL + "volumes:\n  region: us-east-1\n",
            "6: volumes.region: only read with method ebs, not mover",
        ),
        (
            MINIMAL + "volumes:\n  method: ebs\n  image: mover:1\n",
            "7: volumes.image: only read with method mover, not ebs",
        ),
        (
            MINIMAL.replace("s3://bucket/migrations", "./snapshots"),
            "1: volumes.method: mover (the default) needs an s3:// store: its Jobs in both "
            "clusters carry the volume data through the store, and store.url is a directory; "
            "use an s3:// store, or method ebs or none",
        ),
        (
            MINIMAL.replace("s3://bucket/migrations", "file:///srv/snapshots")
            + "volumes:\n  parallel: 1\n  method: mover\n",
            "7: volumes.method: mover needs an s3:// store: its Jobs in both clusters carry the "
            "volume data through the store, and store.url is a directory; use an s3:// store, or "
            "method ebs or none",
        ),
        # quiesce
        (
            MINIMAL + "quiesce:\n  method: hook\n",
            "5: quiesce.hook: required with method hook: the command run in each pod mounting a "
            "claim",
        ),
        (
            MINIMAL + "quiesce:\n  unhook: fsfreeze -u /data\n",
            "6: quiesce.unhook: only read with method hook, not scale",
        ),
        (MINIMAL + "quiesce:\n  timeout: 0\n", "6: quiesce.timeout: must be at least 1s (got 0s)"),
        # hooks
        (
            MINIMAL + "hooks:\n  preexport:\n    - run: ./drain.sh\n",
            "6: hooks.preexport: unknown setting (known here: postExport, postImport, postShift, "
            "preExport, preImport, preShift)",
        ),
        (
            MINIMAL + "hooks:\n  preExport:\n    - ./drain.sh\n    - {run: ./a.sh, job: b.yaml}\n",
            "8: hooks.preExport[1]: give exactly one of: run (a command here) or job (a Job "
            "manifest file)",
        ),
        (
            MINIMAL + "hooks:\n  postShift:\n    - {timeout: 5m}\n",
            "7: hooks.postShift[0]: give exactly one of: run (a command here) or job (a Job "
            "manifest file)",
        ),
        (
            MINIMAL + "hooks:\n  preImport:\n    - run: ./a.sh\n      cluster: new\n",
            "8: hooks.preImport[0].cluster: only read with job, not run",
        ),
        (
            MINIMAL + "hooks:\n  preImport:\n    - job: hooks/a.yaml\n      cluster: both\n",
            "8: hooks.preImport[0].cluster: 'both': expected one of old, new",
        ),
        (
            MINIMAL + "hooks:\n  preImport:\n    - run: ./a.sh\n      retries: 21\n",
            "8: hooks.preImport[0].retries: must be between 0 and 20 (got 21)",
        ),
        (
            MINIMAL + "hooks:\n  preImport: {run: ./a.sh}\n",
            "6: hooks.preImport: expected a list, got a mapping",
        ),
        # traffic: the shift's own settings, errors at their own lines
        (
            MINIMAL + TRAFFIC.replace("kind: rfc2136", "kind: bind"),
            "7: traffic.provider.kind: 'bind': expected one of rfc2136, route53, external-dns",
        ),
        (
            MINIMAL + TRAFFIC.replace("shop.example.com", "shop.example.org"),
            "10: traffic.names[0].name: shop.example.org. is not in zone example.com.",
        ),
        (
            MINIMAL + TRAFFIC.replace("    - 50\n", "    - 50\n    - 25\n"),
            "14: traffic.steps[2]: 25 % does not move on from the step before (50 %): steps must "
            "increase",
        ),
        (
            MINIMAL + "traffic: {provider: {kind: route53}}\n",
            "5: traffic.provider.route53.hostedZoneId: required: the hosted zone's id (Z...)",
        ),
        # soak, stuckAfter
        (
            MINIMAL + "soak: 10 minutes\n",
            "5: soak: expected a duration such as 90s, 10m or 1h30m (or seconds), got '10 minutes'",
        ),
        (MINIMAL + "stuckAfter: 0\n", "5: stuckAfter: must be at least 1s (got 0s)"),
        # teardown
        (
            MINIMAL + "teardown:\n  hook: {}\n",
            "6: teardown.hook: give exactly one of: run (a command here) or job (a Job manifest "
            "file)",
        ),
        (
            MINIMAL + "teardown:\n  command: eksctl delete cluster\n",
            "6: teardown.command: unknown setting (known here: hook)",
        ),
        # notifications
        (
            MINIMAL + "notifications:\n  - {url: 'https://h.example/x', urlEnv: HOOK}\n",
            "6: notifications[0]: give exactly one of: url, or urlEnv (the variable holding a "
            "secret URL)",
        ),
        (
            MINIMAL + "notifications:\n  - {urlEnv: HOOK}\n  - {urlEnv: HOOK, format: teams}\n",
            "7: notifications[1].format: 'teams': expected one of json, slack",
        ),
        (
            MINIMAL + "notifications:\n  - urlEnv: SLACK-HOOK\n",
            "6: notifications[0].urlEnv: 'SLACK-HOOK' is not an environment variable name",
        ),
        (
            MINIMAL + "notifications: {urlEnv: HOOK}\n",
            "5: notifications: expected a list, got a mapping",
        ),
        # preflight
        (
            MINIMAL + "preflight:\n  skip:\n    - dns\n    - capcity\n",
            "8: preflight.skip[1]: 'capcity': expected one of reachable, permissions, removed-apis, "
            "crd-controllers, storage-classes, capacity, admission-webhooks, certificates, "
            "version-skew, dns, store, gitops",
        ),
        (
            MINIMAL + "preflight:\n  certificateDays: -1\n",
            "6: preflight.certificateDays: must be between 0 and 3650 (got -1)",
        ),
    ],
)
def test_a_wrong_setting_is_named_with_its_line(tmp_path, text, expected):
    write(tmp_path, JOB, "hooks/a.yaml")
    assert message(tmp_path, text) == expected


def test_a_secret_url_is_never_repeated_in_the_error(tmp_path):
    error = invalid(tmp_path, MINIMAL + "notifications:\n  - url: hooks.example/T0KEN\n")
    assert str(error).endswith(":6: notifications[0].url: must be an http:// or https:// URL")
    assert "T0KEN" not in str(error) and "T0KEN" not in repr(error.args)


# --- files the plan names -------------------------------------------------------------------


def test_files_the_plan_names_must_exist(tmp_path):
    assert message(tmp_path, MINIMAL + "transform:\n  rules: rules.yaml\n") == (
        f"6: transform.rules: no such file: {tmp_path / 'rules.yaml'}"
    )
    assert message(tmp_path, MINIMAL + "hooks:\n  preExport:\n    - job: hooks/backup.yaml\n") == (
        f"7: hooks.preExport[0].job: no such file: {tmp_path / 'hooks/backup.yaml'}"
    )
    assert message(tmp_path, MINIMAL.replace("migrations}", "migrations, keyFile: key.hex}")) == (
        f"4: store.keyFile: no such file: {tmp_path / 'key.hex'}"
    )
    text = MINIMAL + TRAFFIC.replace(
        "zone: example.com}", "zone: example.com, tsig: {secretFile: tsig.key}}"
    ).replace("- 150", "- 100")
    assert message(tmp_path, text) == (
        f"8: traffic.provider.rfc2136.tsig.secretFile: no such file: {tmp_path / 'tsig.key'}"
    )


def test_a_rules_file_that_does_not_validate(tmp_path):
    write(
        tmp_path, "rules:\n  - name: x\n    match: {kind: Pod}\n    explode: true\n", "rules.yaml"
    )
    error = invalid(tmp_path, MINIMAL + "transform:\n  validate: false\n  rules: rules.yaml\n")
    assert (error.line, error.field) == (7, "transform.rules")
    assert error.problem.startswith(f"{tmp_path / 'rules.yaml'}: rule 1 (x): ")


def test_a_hook_job_file_must_hold_a_job(tmp_path):
    write(tmp_path, "apiVersion: v1\nkind: Pod\n", "pod.yaml")
    assert message(tmp_path, MINIMAL + "hooks:\n  postImport:\n    - job: pod.yaml\n") == (
        f"7: hooks.postImport[0].job: {tmp_path / 'pod.yaml'}: expected a Job manifest, "
        "got kind Pod"
    )


# --- values ---------------------------------------------------------------------------------


def test_a_minimal_plan_takes_every_default(tmp_path):
    plan = load(write(tmp_path, MINIMAL))
    assert plan.name == "shop-move" and plan.file == tmp_path / "plan.yaml"
    assert (plan.source.context, plan.source.name) == ("old", "old")
    assert (plan.target.context, plan.target.name) == ("new", "new")
    assert (plan.store.url, plan.store.s3_endpoint, plan.store.key_file) == (
        "s3://bucket/migrations",
        None,
        None,
    )
    assert plan.kubeconfig is None
    assert plan.export.include_namespaces == () and plan.export.workers == 6
    assert plan.export.cluster_scoped is None and plan.export.label_selector is None
    assert plan.transform.rules_file is None and plan.transform.validate is True
    assert plan.transform.last_applied == "rewrite"
    assert plan.transform.differences.storage_classes == {}
    assert plan.gitops == "leave"
    assert plan.imports.conflict is ConflictPolicy.SKIP and plan.imports.workers == 8
    assert plan.verify.wait == 300
    assert (plan.volumes.method, plan.volumes.parallel, plan.volumes.stage_passes) == (
        "mover",
        2,
        1,
    )
    assert (plan.volumes.job_timeout, plan.volumes.start_timeout, plan.volumes.attempts) == (
        3600,
        300,
        3,
    )
    assert plan.quiesce.method == "scale" and plan.quiesce.timeout == 300
    assert plan.hooks.at("preExport") == () and plan.hooks.points == {}
    assert plan.traffic is None
    assert (plan.soak, plan.stuck_after) == (600, 600)
    assert plan.teardown.hook is None and plan.notifications == ()
    assert plan.preflight.certificate_days == 14 and plan.preflight.skip == ()
    assert plan.raw == {
        "name": "shop-move",
        "source": {"context": "old"},
        "target": {"context": "new"},
        "store": {"url": "s3://bucket/migrations"},
    }
    assert plan.fingerprint() == {"name": "shop-move", "plan": plan.raw}


FULL = """\
name: shop-move
kubeconfig: kube/config
source: {context: old, name: old-prod}
target: {context: new}
store: {url: s3://bucket/migrations, s3Endpoint: "http://127.0.0.1:9000", keyFile: key.hex}
export:
  namespaces: [shop]
  excludeNamespaces: [scratch]
  resources: [deployments, configmaps]
  excludeResources: [events]
  clusterScoped: false
  includeSystemNamespaces: true
  selector: app=shop
  keepNodePorts: true
  keepClusterIps: true
  workers: 3
transform:
  differences:
    storageClasses: {standard: gp3}
    clusterIP: remap
    serviceCIDR: 10.0.0.0/24=10.96.0.0/24
  rules: rules.yaml
  validate: false
  lastApplied: drop
  podSecurityLabels: true
gitops: import
import: {conflict: update, workers: 4, qps: 2.5, restoreStatus: true}
verify: {wait: 90s}
volumes:
  method: mover
  parallel: 4
  stagePasses: 0
  image: registry.example/mover:1
  pullPolicy: Always
  podsS3Endpoint: http://minio.storage:9000
  attempts: 5
  jobTimeout: 1h
  startTimeout: 2m
quiesce: {method: hook, hook: "fsfreeze -f /data", unhook: "fsfreeze -u /data", timeout: 1m}
hooks:
  preExport:
    - {run: ./drain-queue.sh, retries: 2, timeout: 5m}
    - {job: hooks/backup-db.yaml, cluster: new}
  postShift:
    - echo done
traffic:
  provider: {kind: route53, route53: {hostedZoneId: /hostedzone/Z123}}
  names: [{name: shop.example.com, new: {hostname: lb.example.net}}]
  steps: [0, 100]
  stepWait: 30
soak: 1h30m
stuckAfter: 15m
teardown: {hook: {run: eksctl delete cluster --name old-prod, timeout: 1h}}
notifications:
  - {url: "https://hooks.example.com/x", format: slack}
  - {urlEnv: SLACK_WEBHOOK}
preflight: {certificateDays: 30, skip: [capacity, dns]}
"""


def test_a_full_plan_maps_into_the_stages_own_settings(tmp_path):
    write(tmp_path, "rules: []\n", "rules.yaml")
    write(tmp_path, JOB, "hooks/backup-db.yaml")
    write(tmp_path, "00" * 32, "key.hex")
    plan = load(write(tmp_path, FULL))
    assert plan.kubeconfig == tmp_path / "kube/config"
    assert plan.source.name == "old-prod" and plan.target.name == "new"
    assert plan.store.s3_endpoint == "http://127.0.0.1:9000"
    assert plan.store.key_file == tmp_path / "key.hex"
    e = plan.export
    assert e.include_namespaces == ("shop",) and e.exclude_namespaces == ("scratch",)
    assert e.include_resources == ("deployments", "configmaps")
    assert e.exclude_resources == ("events",)
    assert e.cluster_scoped is False and e.include_system_namespaces is True
    assert e.label_selector == "app=shop" and e.keep_node_ports and e.keep_cluster_ips
    assert e.workers == 3
    t = plan.transform
    assert t.differences.storage_classes == {"standard": "gp3"}
    assert t.differences.cluster_ip == "remap" and len(t.differences.service_cidrs) == 1
    assert t.rules_file == tmp_path / "rules.yaml"
    assert (t.validate, t.last_applied, t.pod_security_labels) == (False, "drop", True)
    assert plan.gitops == "import"
    assert plan.imports.conflict is ConflictPolicy.UPDATE
    assert (plan.imports.workers, plan.imports.qps, plan.imports.restore_status) == (4, 2.5, True)
    assert plan.verify.wait == 90
    v = plan.volumes
    assert (v.parallel, v.stage_passes, v.attempts) == (4, 0, 5)
    assert (v.image, v.pull_policy) == ("registry.example/mover:1", "Always")
    assert v.pods_s3_endpoint == "http://minio.storage:9000"
    assert v.job_timeout == 3600 and isinstance(v.job_timeout, int) and v.start_timeout == 120
    assert (plan.quiesce.method, plan.quiesce.hook, plan.quiesce.unhook) == (
        "hook",
        "fsfreeze -f /data",
        "fsfreeze -u /data",
    )
    assert plan.quiesce.timeout == 60
    drain, backup = plan.hooks.at("preExport")
    assert (drain.where, drain.run, drain.retries, drain.timeout) == (
        "hooks.preExport[0]",
        "./drain-queue.sh",
        2,
        300,
    )
    assert (backup.where, backup.job, backup.cluster, backup.run) == (
        "hooks.preExport[1]",
        tmp_path / "hooks/backup-db.yaml",
        "new",
        None,
    )
    assert [h.run for h in plan.hooks.at("postShift")] == ["echo done"]
    assert plan.hooks.at("preImport") == ()
    assert plan.traffic is not None
    assert plan.traffic.provider.route53.hosted_zone_id == "Z123"
    assert plan.traffic.dns_names == ["shop.example.com."]
    assert [s.percent for s in plan.traffic.steps] == [0, 100] and plan.traffic.step_wait == 30
    assert (plan.soak, plan.stuck_after) == (5400, 900)
    assert plan.teardown.hook is not None and plan.teardown.hook.where == "teardown.hook"
    assert plan.teardown.hook.timeout == 3600
    assert [(n.url, n.url_env, n.format) for n in plan.notifications] == [
        ("https://hooks.example.com/x", None, "slack"),
        (None, "SLACK_WEBHOOK", "json"),
    ]
    assert plan.preflight.certificate_days == 30 and plan.preflight.skip == ("capacity", "dns")
    assert plan.raw["volumes"]["jobTimeout"] == "1h"


def test_relative_paths_are_relative_to_the_plans_folder(tmp_path, monkeypatch):
    folder = tmp_path / "plans"
    write(folder, "rules: []\n", "rules.yaml")
    write(folder, "secret\n", "tsig.key")
    monkeypatch.chdir(tmp_path)
    text = MINIMAL.replace("s3://bucket/migrations", "snapshots") + (
        "volumes: {method: none}\ntransform: {rules: rules.yaml}\nkubeconfig: ~/.kube/config\n"
        + TRAFFIC.replace(
            "zone: example.com}", "zone: example.com, tsig: {secretFile: tsig.key, name: k}}"
        ).replace("- 150", "- 100")
    )
    plan = load(write(folder, text).relative_to(tmp_path))
    assert plan.file == Path("plans/plan.yaml")
    assert plan.store.url == str(folder / "snapshots")
    assert plan.transform.rules_file == folder / "rules.yaml"
    assert plan.traffic.provider.rfc2136.tsig.secret_file == str(folder / "tsig.key")
    assert plan.kubeconfig == Path.home() / ".kube/config"


def test_the_examples_load():
    full = load(EXAMPLES / "plan.yaml")
    assert full.name == "shop-move" and full.traffic is not None
    assert full.transform.rules_file == EXAMPLES / "rules.yaml"
    assert [h.job for h in full.hooks.at("preExport") if h.job] == [
        EXAMPLES / "hooks/backup-db.yaml"
    ]
    assert full.teardown.hook is not None and full.notifications
    assert set(full.raw) == {key.strip() for key in TOP_KEYS.split(",")}, "every section shown"
    minimal = load(EXAMPLES / "plan-minimal.yaml")
    assert set(minimal.raw) == {"name", "source", "target", "store"}
    assert minimal.traffic is None


def test_environment_variables_are_expanded_and_kept_out_of_the_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("PLAN_BUCKET", "bucket-a")
    monkeypatch.setenv("PLAN_CONTEXT", "blue")
    text = MINIMAL.replace(
        "{url: s3://bucket/migrations}", "{url: 's3://${PLAN_BUCKET}/migrations'}"
    ).replace("{context: old}", "{context: '${PLAN_CONTEXT}', name: 'cost $$5'}")
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    plan = load(path)
    assert plan.store.url == "s3://bucket-a/migrations"
    assert (plan.source.context, plan.source.name) == ("blue", "cost $5")
    monkeypatch.setenv("PLAN_BUCKET", "bucket-b")
    other = load(path)
    assert other.store.url == "s3://bucket-b/migrations"
    assert other.fingerprint() == plan.fingerprint()  # the plan as written is the same plan


def test_an_unset_environment_variable_is_named_with_its_line(tmp_path, monkeypatch):
    monkeypatch.delenv("PLAN_NOT_SET", raising=False)
    path = tmp_path / "plan.yaml"
    path.write_text(MINIMAL.replace("{context: new}", "{context: '${PLAN_NOT_SET}'}"))
    with pytest.raises(PlanInvalid) as caught:
        load(path)
    assert str(caught.value) == (
        f"{path}:3: target.context: the environment variable PLAN_NOT_SET is not set"
    )
