"""The snapshot format on a local store: round trips, damage detection, resume, encryption."""

from __future__ import annotations

import base64
import gzip
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import migrator
from migrator import crypto
from migrator.errors import (
    DecryptionError,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotExists,
    SnapshotIdInvalid,
    SnapshotIncomplete,
    SnapshotNotFound,
)
from migrator.snapshot import SnapshotReader, SnapshotWriter, list_snapshots
from migrator.store import LocalStore

pytestmark = pytest.mark.unit

KEY = bytes(range(32))
CM = ("", "v1", "configmaps", "ConfigMap", True)
SECRETS = ("", "v1", "secrets", "Secret", True)
DEPLOY = ("apps", "v1", "deployments", "Deployment", True)
NS = ("", "v1", "namespaces", "Namespace", False)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "snapshots")


def configmap(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"cm-{i:05d}", "namespace": f"ns-{i % 3}"},
        "data": {"index": str(i), "text": "lorem ipsum " * (i % 7)},
    }


def secret(name: str, payload: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": "prod"},
        "data": {"blob": base64.b64encode(payload).decode()},
    }


def write_resource(writer: SnapshotWriter, spec: tuple, objects: list[dict[str, Any]]) -> None:
    with writer.resource(*spec) as out:
        for obj in objects:
            out.write(obj)


def read_all(
    store: LocalStore, snapshot_id: str, key: bytes | None = None
) -> dict[str, list[dict]]:
    reader = SnapshotReader(store, snapshot_id, key=key)
    return {e["resource"]: list(reader.iter_objects(e)) for e in reader.resources()}


def stored_files(store: LocalStore, snapshot_id: str) -> list[str]:
    return sorted(k for k in store.list(f"{snapshot_id}/"))


def part_path(store: LocalStore, snapshot_id: str, resource: str, index: int = 0) -> Path:
    reader = SnapshotReader(store, snapshot_id)
    entry = next(e for e in reader.resources() if e["resource"] == resource)
    return store.root / snapshot_id / entry["parts"][index]["key"]


def test_round_trip_across_parts_with_layout_and_manifest(store: LocalStore) -> None:
    cms = [configmap(i) for i in range(1234)]
    writer = SnapshotWriter(store, "snap-1", part_max_objects=200, part_max_bytes=40_000)
    write_resource(writer, CM, cms)
    with writer.resource(*DEPLOY) as out:
        out.write(
            {"kind": "Deployment", "metadata": {"name": "web", "namespace": "a"}},
            aside={"status": {"replicas": 3}},
        )
    write_resource(writer, NS, [])
    manifest = writer.commit(parent="snap-0", source={"gitVersion": "v1.21.14"})

    assert manifest["format_version"] == 1 and manifest["tool_version"] == migrator.__version__
    assert manifest["parent"] == "snap-0" and manifest["source"] == {"gitVersion": "v1.21.14"}
    assert manifest["encryption"] is None
    cm_entry = next(e for e in manifest["resources"] if e["resource"] == "configmaps")
    assert cm_entry["objects"] == 1234 and len(cm_entry["parts"]) == 7  # 6 of 200, then 34
    assert all(p["objects"] <= 200 for p in cm_entry["parts"])
    assert cm_entry["parts"][0]["key"] == "resources/core/v1/configmaps/part-00000.jsonl.gz"

    assert read_all(store, "snap-1") == {
        "configmaps": cms,
        "deployments": [{"kind": "Deployment", "metadata": {"name": "web", "namespace": "a"}}],
        "namespaces": [],
    }
    reader = SnapshotReader(store, "snap-1")
    deploy = reader.find("apps", "v1", "deployments")
    assert deploy == next(e for e in manifest["resources"] if e["resource"] == "deployments")
    assert list(reader.iter_aside(deploy)) == [
        {"namespace": "a", "name": "web", "status": {"replicas": 3}}
    ]

    files = stored_files(store, "snap-1")
    assert "snap-1/manifest.json" in files and "snap-1/_snapshot.json" in files
    assert "snap-1/resources/apps/v1/deployments/aside-00000.jsonl.gz" in files
    assert "snap-1/resources/core/v1/namespaces/_done.json" in files
    # Readable with ordinary tools: zcat | jq.
    first = store.root / "snap-1/resources/core/v1/configmaps/part-00000.jsonl.gz"
    lines = gzip.decompress(first.read_bytes()).decode().splitlines()
    assert json.loads(lines[0]) == cms[0]
    done = json.loads((store.root / "snap-1/resources/core/v1/configmaps/_done.json").read_text())
    assert done["objects"] == 1234 and done["parts"] == cm_entry["parts"]
    assert reader.verify().ok


def test_secret_binary_data_survives_byte_exact(store: LocalStore) -> None:
    payload = bytes(range(256)) * 4 + os.urandom(4096)
    writer = SnapshotWriter(store, "s")
    write_resource(writer, SECRETS, [secret("bin", payload)])
    writer.commit()
    [back] = read_all(store, "s")["secrets"]
    assert base64.b64decode(back["data"]["blob"]) == payload


@pytest.fixture
def committed(store: LocalStore) -> str:
    writer = SnapshotWriter(store, "snap", part_max_objects=50)
    write_resource(writer, CM, [configmap(i) for i in range(120)])
    write_resource(writer, SECRETS, [secret("a", b"x")])
    writer.commit()
    return "snap"


def test_tampered_byte_is_detected_on_read_and_by_verify(store: LocalStore, committed: str) -> None:
    path = part_path(store, committed, "configmaps", 1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    reader = SnapshotReader(store, committed)
    entry = reader.find("", "v1", "configmaps")
    with pytest.raises(SnapshotCorrupt, match="part-00001.*sha256") as info:
        list(reader.iter_objects(entry))
    assert info.value.part == "resources/core/v1/configmaps/part-00001.jsonl.gz"
    report = reader.verify()
    assert not report.ok
    assert [(p.key, p.problem) for p in report.problems] == [
        ("resources/core/v1/configmaps/part-00001.jsonl.gz", "sha256 mismatch")
    ]


def test_truncated_part(store: LocalStore, committed: str) -> None:
    path = part_path(store, committed, "configmaps", 2)
    path.write_bytes(path.read_bytes()[:-10])
    reader = SnapshotReader(store, committed)
    with pytest.raises(SnapshotCorrupt, match="part-00002.*truncated"):
        list(reader.iter_objects(reader.find("", "v1", "configmaps")))
    [problem] = reader.verify().problems
    assert problem.key.endswith("part-00002.jsonl.gz") and "size" in problem.problem


def test_missing_part(store: LocalStore, committed: str) -> None:
    part_path(store, committed, "secrets").unlink()
    reader = SnapshotReader(store, committed)
    with pytest.raises(SnapshotCorrupt, match="secrets/part-00000.jsonl.gz is missing"):
        list(reader.iter_objects(reader.find("", "v1", "secrets")))
    assert [p.problem for p in reader.verify().problems] == ["missing"]


def test_missing_manifest_is_incomplete_and_nothing_is_not_found(
    store: LocalStore, committed: str
) -> None:
    (store.root / committed / "manifest.json").unlink()
    with pytest.raises(SnapshotIncomplete) as info:
        SnapshotReader(store, committed)
    assert "re-run export with the same id" in (info.value.hint or "")
    with pytest.raises(SnapshotNotFound):
        SnapshotReader(store, "other")


def test_existing_snapshot_is_not_replaced_unless_asked(store: LocalStore, committed: str) -> None:
    with pytest.raises(SnapshotExists):
        SnapshotWriter(store, committed)
    writer = SnapshotWriter(store, committed, overwrite=True)
    write_resource(writer, NS, [{"metadata": {"name": "only"}}])
    writer.commit()
    assert read_all(store, committed) == {"namespaces": [{"metadata": {"name": "only"}}]}


def interrupted_run(store: LocalStore, key: bytes | None = None) -> list[dict]:
    """A run that finished configmaps, was killed halfway through secrets, and never committed."""
    cms = [configmap(i) for i in range(30)]
    writer = SnapshotWriter(store, "run", key=key, part_max_objects=10)
    write_resource(writer, CM, cms)
    half = writer.resource(*SECRETS)
    for i in range(25):  # two parts uploaded, a third in the spool: then the process dies
        half.write(secret(f"s{i}", b"v"))
    return cms


def test_resume_keeps_done_resources_and_redoes_the_unfinished(store: LocalStore) -> None:
    cms = interrupted_run(store)
    assert store.exists("run/resources/core/v1/secrets/part-00001.jsonl.gz")
    kept_part = store.root / "run/resources/core/v1/configmaps/part-00000.jsonl.gz"
    kept_mtime = kept_part.stat().st_mtime_ns

    writer = SnapshotWriter(store, "run", part_max_objects=10)
    assert [e["resource"] for e in writer.completed_resources()] == ["configmaps"]
    assert not any("secrets" in k for k in store.list("run/"))  # unfinished folder removed
    secrets = [secret(f"s{i}", b"v") for i in range(12)]
    write_resource(writer, SECRETS, secrets)
    manifest = writer.commit()

    assert kept_part.stat().st_mtime_ns == kept_mtime
    assert [e["resource"] for e in manifest["resources"]] == ["configmaps", "secrets"]
    assert read_all(store, "run") == {"configmaps": cms, "secrets": secrets}


def test_resume_redoes_a_done_resource_whose_part_is_damaged(store: LocalStore) -> None:
    interrupted_run(store)
    part = store.root / "run/resources/core/v1/configmaps/part-00001.jsonl.gz"
    part.write_bytes(part.read_bytes()[:-1])
    writer = SnapshotWriter(store, "run")
    assert writer.completed_resources() == []
    assert list(store.list("run/resources/")) == []


def test_resume_false_and_failed_resource_writer(store: LocalStore) -> None:
    interrupted_run(store)
    writer = SnapshotWriter(store, "run", resume=False)
    assert writer.completed_resources() == []
    assert stored_files(store, "run") == ["run/_snapshot.json"]
    with pytest.raises(RuntimeError), writer.resource(*CM) as out:
        out.write(configmap(1))
        raise RuntimeError("listing failed")
    assert not store.exists("run/resources/core/v1/configmaps/_done.json")
    assert SnapshotWriter(store, "run").completed_resources() == []


def test_resume_refuses_another_key(store: LocalStore) -> None:
    interrupted_run(store, key=KEY)
    with pytest.raises(SnapshotError, match=f"key id {crypto.key_id(KEY)}.*unencrypted"):
        SnapshotWriter(store, "run")
    with pytest.raises(SnapshotError, match="refusing to mix"):
        SnapshotWriter(store, "run", key=crypto.generate_key())
    assert [e["resource"] for e in SnapshotWriter(store, "run", key=KEY).completed_resources()] == [
        "configmaps"
    ]



def test_resume_refuses_other_settings_and_names_them(store: LocalStore) -> None:
    """Objects of a resumed snapshot are all exported one way: a filter or a kept field
    changed midway would leave finished resources that disagree with the rest."""
    settings = {"labelSelector": "app=a", "keepClusterIPs": False}
    writer = SnapshotWriter(store, "run", settings=settings)
    write_resource(writer, CM, [configmap(1)])
    with pytest.raises(SnapshotError, match=r"other settings \(keepClusterIPs\)") as info:
        SnapshotWriter(store, "run", settings={**settings, "keepClusterIPs": True})
    assert "start it over" in (info.value.hint or "")
    assert store.exists("run/resources/core/v1/configmaps/_done.json")  # nothing lost
    resumed = SnapshotWriter(store, "run", settings=dict(settings))
    assert [e["resource"] for e in resumed.completed_resources()] == ["configmaps"]

def test_commit_refuses_open_resources_and_reserved_fields(store: LocalStore) -> None:
    writer = SnapshotWriter(store, "c")
    with pytest.raises(ValueError, match="resources"):
        writer.commit(resources=[])
    out = writer.resource(*CM)
    with pytest.raises(SnapshotIncomplete, match="configmaps"):
        writer.commit()
    with pytest.raises(SnapshotError, match="already being written"):
        writer.resource(*CM)
    out.close()
    writer.commit()
    with pytest.raises(SnapshotError, match="committed"):
        writer.resource(*NS)


def test_resources_written_from_threads(store: LocalStore) -> None:
    writer = SnapshotWriter(store, "t", part_max_objects=7)
    specs = [("", "v1", f"res{i}", "Thing", True) for i in range(6)]
    expected = {
        spec[2]: [{"metadata": {"name": f"{spec[2]}-{j}"}} for j in range(40)] for spec in specs
    }
    threads = [
        threading.Thread(target=write_resource, args=(writer, spec, expected[spec[2]]))
        for spec in specs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.commit()
    assert read_all(store, "t") == expected


DISTINCTIVE = "hunter2-correct-horse-battery-staple"


@pytest.fixture
def encrypted(store: LocalStore) -> str:
    writer = SnapshotWriter(store, "enc", key=KEY, part_max_objects=5)
    secrets = [
        {
            "kind": "Secret",
            "metadata": {"name": f"s{i}", "namespace": "n"},
            "stringData": {"password": DISTINCTIVE},
        }
        for i in range(12)
    ]
    write_resource(writer, SECRETS, secrets)
    write_resource(writer, CM, [configmap(i) for i in range(8)])
    manifest = writer.commit()
    assert manifest["encryption"] == {"algorithm": "AES-256-GCM", "key_id": crypto.key_id(KEY)}
    return "enc"


def test_encrypted_parts_hide_the_plaintext(store: LocalStore, encrypted: str) -> None:
    files = stored_files(store, encrypted)
    parts = [k for k in files if "/part-" in k]
    assert parts and all(k.endswith(".jsonl.gz.enc") for k in parts)
    for key in files:
        raw = store.get_bytes(key)
        assert DISTINCTIVE.encode() not in raw
        if key.endswith(".enc"):
            assert raw.startswith(crypto.MAGIC)
    objects = read_all(store, encrypted, key=KEY)
    assert [s["stringData"]["password"] for s in objects["secrets"]] == [DISTINCTIVE] * 12
    assert SnapshotReader(store, encrypted).verify().ok  # verify needs no key


def test_encrypted_without_key_or_with_wrong_key(store: LocalStore, encrypted: str) -> None:
    reader = SnapshotReader(store, encrypted)  # the manifest itself needs no key
    assert reader.encrypted and reader.key_id == crypto.key_id(KEY)
    with pytest.raises(DecryptionError, match=f"encrypted \\(key id {crypto.key_id(KEY)}\\)"):
        reader.iter_objects(reader.resources()[0])
    wrong = crypto.generate_key()
    with pytest.raises(DecryptionError) as info:
        SnapshotReader(store, encrypted, key=wrong)
    assert crypto.key_id(KEY) in str(info.value) and crypto.key_id(wrong) in str(info.value)


def test_swapped_encrypted_parts_are_detected(store: LocalStore, encrypted: str) -> None:
    manifest_path = store.root / encrypted / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    secrets, cms = (
        next(e for e in manifest["resources"] if e["resource"] == r)
        for r in ("secrets", "configmaps")
    )
    a, b = secrets["parts"][0], cms["parts"][0]
    path_a, path_b = store.root / encrypted / a["key"], store.root / encrypted / b["key"]
    blob_a, blob_b = path_a.read_bytes(), path_b.read_bytes()
    path_a.write_bytes(blob_b)
    path_b.write_bytes(blob_a)

    reader = SnapshotReader(store, encrypted, key=KEY)
    with pytest.raises(SnapshotCorrupt, match="secrets/part-00000"):
        list(reader.iter_objects(reader.find("", "v1", "secrets")))
    # Even with the checksums in the manifest rewritten to match, the part's own
    # authentication (bound to its key) refuses it.
    for part, other in ((a, b), (b, a)):
        part["sha256"], part["bytes"] = other["sha256"], other["bytes"]
    manifest_path.write_text(json.dumps(manifest))
    reader = SnapshotReader(store, encrypted, key=KEY)
    with pytest.raises(SnapshotCorrupt, match="fails authentication"):
        list(reader.iter_objects(reader.find("", "v1", "secrets")))


def test_list_snapshots(store: LocalStore, committed: str, encrypted: str) -> None:
    interrupted_run(store)
    (store.root / "not-a-snapshot").mkdir()
    listed = {s["id"]: s for s in list_snapshots(store)}
    assert sorted(listed) == ["enc", "run", "snap"]
    assert listed["snap"]["complete"] and listed["snap"]["objects"] == 121
    assert listed["enc"]["encrypted"] and not listed["snap"]["encrypted"]
    assert listed["run"] == {
        "id": "run",
        "created_at": listed["run"]["created_at"],
        "complete": False,
        "objects": None,
        "encrypted": False,
        "parent": None,
    }


@pytest.mark.parametrize("bad", ["", "a/b", "..", "../x", ".hidden", "x" * 200])
def test_bad_snapshot_ids(store: LocalStore, bad: str) -> None:
    with pytest.raises(SnapshotIdInvalid, match="invalid snapshot id") as info:
        SnapshotWriter(store, bad)
    assert info.value.exit_code == 2  # the user's input, said as such: no traceback
    with pytest.raises(SnapshotIdInvalid):
        SnapshotReader(store, bad)
    assert not store.root.exists()  # nothing written, not even the store's folder


def test_pages_compressed_elsewhere_and_single_objects_read_back_in_order(
    store: LocalStore,
) -> None:
    """A part may hold members made by the export's page workers and lines added one by one;
    readers (and zcat) see one stream. A part closes at its bound but never splits a page."""
    from migrator.snapshot.parts import gzip_member

    def member(objs: list[dict[str, Any]]) -> tuple[bytes, int, int]:
        data = b"".join(json.dumps(o, separators=(",", ":")).encode() + b"\n" for o in objs)
        return gzip_member(data), len(objs), len(data)

    cms = [configmap(i) for i in range(14)]
    writer = SnapshotWriter(store, "pages", part_max_objects=5)
    with writer.resource(*CM) as resource:
        resource.write(cms[0])
        resource.write_members(member(cms[1:7]))  # 7 objects: past the bound, one part
        resource.write_members(member([]))
        resource.write_members(member(cms[7:9]),
                               member([{"namespace": "a", "name": "cm-7", "status": {"x": 1}}]))
        for obj in cms[9:]:
            resource.write(obj)
    manifest = writer.commit()
    [entry] = manifest["resources"]
    assert [p["objects"] for p in entry["parts"]] == [7, 5, 2]
    assert read_all(store, "pages") == {"configmaps": cms}
    first = store.root / "pages" / entry["parts"][0]["key"]
    assert gzip.decompress(first.read_bytes()).count(b"\n") == 7
    assert SnapshotReader(store, "pages").verify().ok
