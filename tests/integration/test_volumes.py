"""The volume mover on the proving ground's MinIO, as a Job would run it: the CLI in a
subprocess, credentials and endpoint from the environment, killed at chosen points."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, S3Target
from tests.volume_trees import MiB, assert_same_tree, change_one_percent, make_rich_tree
from tests.waiting import wait_until

KEY_HEX = "11" * 32


def mover(s3: S3Target, *args: str, key: bool = True, timeout: float = 300
          ) -> subprocess.CompletedProcess[str]:
    """``python -m migrator volumes ARGS --store s3://BUCKET/vol -o json``, headless."""
    return subprocess.run(_command(s3, *args), cwd=REPO, env=_env(s3, key), capture_output=True,
                          text=True, timeout=timeout)


def _command(s3: S3Target, *args: str) -> list[str]:
    return [sys.executable, "-m", "migrator", "volumes", *args, "--store",
            f"s3://{s3.bucket}/vol", "-o", "json"]


def _env(s3: S3Target, key: bool) -> dict[str, str]:
    env = {**os.environ, **s3.env()}
    env.pop("MIGRATOR_ENCRYPT_KEY", None)
    if key:
        env["MIGRATOR_ENCRYPT_KEY"] = KEY_HEX
    return env


def keys(s3: S3Target, prefix: str) -> dict[str, str]:
    """Object key → ETag under ``vol/PREFIX``."""
    client = s3.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=s3.bucket, Prefix=f"vol/{prefix}"):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"]
    return found


def test_round_trip_and_incremental_pass_on_minio(s3: S3Target, tmp_path: Path):
    source, target = tmp_path / "src", tmp_path / "dst"
    make_rich_tree(source, big=24 * MiB)
    first = mover(s3, "backup", str(source), "--name", "shop/db-data")
    assert first.returncode == 0, first.stderr
    full = json.loads(first.stdout)
    assert full["files"] > 200 and full["bytesRead"] > 24 * MiB and full["bytesUploaded"] > 0
    time.sleep(2.1)  # let every file settle (a pass reads "just modified" files again)
    changed = change_one_percent(source, seed=5)
    before = keys(s3, "volumes/packs/")
    second = mover(s3, "backup", str(source), "--name", "shop/db-data", "--processes", "0")
    assert second.returncode == 0, second.stderr
    delta = json.loads(second.stdout)
    new_packs = set(keys(s3, "volumes/packs/")) - set(before)
    assert delta["previous"] == full["pass"]
    assert delta["bytesUploaded"] <= 0.05 * full["bytesUploaded"] + 2 * 4 * MiB
    assert delta["bytesUploaded"] < changed + 2 * 4 * MiB
    assert len(new_packs) == delta["packs"] <= 2
    done = mover(s3, "restore", "shop/db-data", str(target), "--processes", "1")
    assert done.returncode == 0, done.stderr
    assert_same_tree(source, target)
    check = mover(s3, "verify", "shop/db-data", str(target))
    assert check.returncode == 0 and json.loads(check.stdout)["ok"], check.stdout
    # A dry run over the restored copy: it would keep every file and write nothing.
    (target / "stray.txt").write_bytes(b"not in the manifest")
    dry = mover(s3, "restore", "shop/db-data", str(target), "--dry-run", "--delete")
    assert dry.returncode == 0, dry.stderr
    preview = json.loads(dry.stdout)
    assert preview["basePass"] == delta["pass"] and preview["filesToWrite"] == 0
    assert preview["filesUnchanged"] == delta["files"] and preview["toDelete"] == 1
    assert (target / "stray.txt").exists()
    listed = json.loads(mover(s3, "ls", key=False).stdout)["volumes"]
    assert [(v["name"], v["complete"]) for v in listed] == [("shop/db-data", True)] * 2


def test_bucket_holds_nothing_readable_and_a_wrong_key_writes_nothing(s3: S3Target,
                                                                       tmp_path: Path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "customers.csv").write_bytes(b"alice,4111-1111-1111-1111\n" * 1000)
    assert mover(s3, "backup", str(source), "--name", "crm/data").returncode == 0
    client = s3.client()
    for key in keys(s3, ""):
        body = client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        assert b"4111-1111" not in body and b"customers" not in body, key
    env = _env(s3, key=False)
    env["MIGRATOR_ENCRYPT_KEY"] = "22" * 32
    wrong = subprocess.run(_command(s3, "restore", "crm/data", str(tmp_path / "dst")), cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=120)
    assert wrong.returncode != 0
    assert "is not the one the store's volume data was encrypted with" in wrong.stderr
    assert not (tmp_path / "dst").exists()


def test_a_tampered_pack_is_rejected_with_a_clear_error(s3: S3Target, tmp_path: Path):
    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    (source / "a.bin").write_bytes(os.urandom(300_000))
    (source / "b.txt").write_bytes(b"b" * 1000)
    assert mover(s3, "backup", str(source), "--name", "ns/pvc").returncode == 0
    (pack,) = keys(s3, "volumes/packs/")
    client = s3.client()
    blob = bytearray(client.get_object(Bucket=s3.bucket, Key=pack)["Body"].read())
    blob[len(blob) // 2] ^= 0x01
    client.put_object(Bucket=s3.bucket, Key=pack, Body=bytes(blob))
    result = mover(s3, "restore", "ns/pvc", str(target))
    assert result.returncode == 5, result.stderr
    report = json.loads(result.stdout)
    assert {p["what"] for p in report["problems"]} == {"a.bin", "b.txt"}
    assert all("fails authentication" in p["error"] for p in report["problems"])
    assert os.listdir(target) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_backup_killed_at_random_points_resumes_without_uploading_finished_packs(
        s3: S3Target, tmp_path: Path, seed: int):
    rng = random.Random(seed)
    source = tmp_path / "src"
    make_rich_tree(source, seed=seed, big=24 * MiB)
    # ~10 packs of incompressible data in all, so that a kill after at most 3 of them
    # falls while the backup still has ~50 MB to chunk and upload: it cannot finish first.
    for i in range(8):
        (source / f"blob-{i}").write_bytes(rng.randbytes(6 * MiB))
    kills = 0
    for target_packs in sorted(rng.sample(range(1, 4), 2)):
        proc = subprocess.Popen(_command(s3, "backup", str(source), "--name", "ns/pvc",
                                         "--workers", "2", "--uploads", "1"),
                                cwd=REPO, env=_env(s3, True), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            # Kill once this many packs are stored, a random moment later.
            wait_until(f"{target_packs} packs stored",
                       lambda n=target_packs: len(keys(s3, "volumes/packs/")) >= n
                       or proc.poll() is not None, timeout=120, interval=0.02)
            time.sleep(rng.uniform(0, 0.15))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
    assert kills >= 1
    finished = _indexed_packs(s3)
    etags = {k: v for k, v in keys(s3, "volumes/packs/").items()
             if k.rsplit("/", 1)[1].removesuffix(".pack") in finished}
    assert etags, "no pack finished before the kills"
    final = mover(s3, "backup", str(source), "--name", "ns/pvc")
    assert final.returncode == 0, final.stderr
    report = json.loads(final.stdout)
    assert report["chunksNew"] < report["filesRead"] + 80  # not every chunk again
    after = keys(s3, "volumes/packs/")
    assert {k: after[k] for k in etags} == etags  # finished packs untouched
    # No chunk is stored twice: nothing of a finished pack was uploaded again. (A pack may
    # be listed twice, by its own index and a merged one, if a kill fell between the two.)
    packs_of: dict[str, set[str]] = {}
    for record in _index_docs(s3):
        for chunk_id in record.ids:
            packs_of.setdefault(chunk_id, set()).add(record.pack)
    assert all(len(packs) == 1 for packs in packs_of.values())
    target = tmp_path / "dst"
    assert mover(s3, "restore", "ns/pvc", str(target)).returncode == 0
    assert_same_tree(source, target)
    passes = json.loads(mover(s3, "ls", key=False).stdout)["volumes"]
    assert all(p["complete"] for p in passes)  # interrupted passes were superseded


def _index_docs(s3: S3Target) -> list:
    """Every pack's index record (from merged or single documents, decrypted)."""
    import boto3

    from migrator.store.s3 import S3Store
    from migrator.volumes import records
    from migrator.volumes.repository import INDEX, Repository

    session = boto3.session.Session(aws_access_key_id=s3.access_key,
                                    aws_secret_access_key=s3.secret_key, region_name=s3.region)
    store = S3Store(s3.bucket, "vol", endpoint_url=s3.endpoint, session=session)
    repo = Repository.open(store, bytes.fromhex(KEY_HEX))
    docs = []
    for key in store.list(INDEX):
        docs.extend(repo.read_doc(key, records.records))
    return docs


def _indexed_packs(s3: S3Target) -> set[str]:
    return {record.pack for record in _index_docs(s3)}

