"""Volume mover benchmark: migrator vs tar → S3 vs Kopia, side by side, on loopback MinIO.

Two trees, made once under ``--work`` (deterministic, kept between runs):

- ``mixed``: ``--mixed-gib`` GiB of mixed files: incompressible media-like blobs of 1-64
  MiB, compressible log-like text, medium files of 64 KiB-1 MiB, a few thousand small files,
  two sparse disk images;
- ``small``: ``--small-files`` files of 0-4 KiB (random and text) in directories of 1,000.

For each tree and method, on a fresh bucket of a MinIO of the bench's own (built by the
proving ground's scripts, on a fresh ext4 of its own, nothing else running; or the running
proving ground's with ``--store-server proving-ground``; each bucket is removed
afterwards): a full backup, a 1 % change of the tree (after the full backup's writeback is
flushed), an incremental backup, and a restore into an empty directory. Wall time of
each command, peak memory (proportional set sizes of the command and its children, sampled
every 250 ms: pages a forked worker shares with its parent count once).

- ``tar``: ``tar --sparse -cf - TREE`` streamed into the bucket with boto3's managed
  upload (multipart, 10 threads), and back with boto3's managed download into
  ``tar -xpf -`` (as root: owners kept), timed as it returns and again once its target's
  file system is flushed (``sync -f``: the syncfs a migrator restore ends with unless
  ``--no-sync``). tar has no incremental pass: the column shows a second full upload.
- ``kopia``: Kopia (the engine inside Velero's data mover), built from its Go module at a
  pinned version into the proving ground's cache, with its default policy (BUZHASH 4 MiB
  splitter, BLAKE2B-256-128, AES256-GCM-HMAC-SHA256, no compression), repository on the
  same MinIO; ``kopia snapshot create`` twice and ``kopia snapshot restore``.
- ``migrator``: ``python -m migrator volumes backup|restore`` with a key (AES-256-GCM),
  credentials from the environment, as a Job runs it; ``volumes verify`` after the
  restore (not timed) proves the copy; the restore is timed as it runs by default (the
  target's file system flushed at the end) and again with ``--no-sync`` (as tar and Kopia,
  which leave the flushing to the kernel); and, as a migration does, the incremental pass
  restored over a target that holds the full pass (restored untimed with ``--pass``),
  ``--no-sync``, verified after (not timed).

Each method copies its tree to, and restores it on, a fresh journaled ext4 (a loop-mounted
image, as a volume is its own file system), so no method inherits the state another left
behind (see :func:`fresh_filesystem`); without root and a loop device it falls back to the
host's file system and says so.

The 1 % change: 4 KiB pages overwritten in place in a few large files, appends to log
files, and whole small and medium files rewritten, ~1 % of the tree's bytes in all.

With ``--repeat N`` every method runs N times, each round in a rotated order (no method
always first or last), and every figure is the median of its N runs (low-high shown).

    .venv/bin/python scripts/bench/volumes_bench.py [--trees mixed,small] [--mixed-gib 2]
        [--small-files 200000] [--methods tar,kopia,migrator] [--repeat N]
        [--store-server own|proving-ground] [--work DIR] [--json]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

import boto3  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402

MiB = 1024 * 1024
KOPIA_MODULE, KOPIA_VERSION = "github.com/kopia/kopia", "v0.21.1"
KEY_HEX = "5a" * 32
# Kopia restores many small files slowly (2.6 min for 20,000 here): past this, the run is
# stopped and its restore reported as "more than" this.
KOPIA_RESTORE_TIMEOUT = 600.0
CHANGE = 0.01


# -- trees -----------------------------------------------------------------------------

def _text_pool(rng: random.Random) -> bytes:
    """4 MiB of log-like lines: the source of compressible files."""
    verbs = [b"GET", b"POST", b"PUT", b"DELETE"]
    paths = [b"/api/v1/orders", b"/static/app.js", b"/login", b"/cart/items", b"/healthz"]
    lines = []
    size = 0
    while size < 4 * MiB:
        line = b"2026-11-29T%02d:%02d:%02d.%06dZ %s %s %d %dms user=%08x\n" % (
            rng.randrange(24), rng.randrange(60), rng.randrange(60), rng.randrange(10**6),
            rng.choice(verbs), rng.choice(paths), rng.choice((200, 200, 200, 404, 500)),
            rng.randrange(2000), rng.randrange(2**32))
        lines.append(line)
        size += len(line)
    return b"".join(lines)


def _text(rng: random.Random, pool: bytes, size: int) -> bytes:
    out = bytearray()
    while len(out) < size:
        start = rng.randrange(len(pool) - 16384)
        out += pool[start:start + rng.randrange(1024, 16384)]
    return bytes(out[:size])


def make_mixed(root: Path, gib: float) -> None:
    rng = random.Random(2026)
    pool = _text_pool(rng)
    budget = int(gib * 1024 * MiB)
    shares = {"media": 0.45, "logs": 0.30, "medium": 0.15, "small": 0.05, "sparse": 0.05}
    for sub in shares:
        (root / sub).mkdir(parents=True)
    made = 0
    while made < budget * shares["media"]:
        size = rng.randrange(1 * MiB, 64 * MiB)
        (root / "media" / f"clip-{made:012d}.bin").write_bytes(rng.randbytes(size))
        made += size
    done = 0
    while done < budget * shares["logs"]:
        size = rng.randrange(4 * MiB, 48 * MiB)
        (root / "logs" / f"app-{done:012d}.log").write_bytes(_text(rng, pool, size))
        done += size
    made += done
    done = 0
    while done < budget * shares["medium"]:
        size = rng.randrange(64 * 1024, MiB)
        data = rng.randbytes(size) if rng.random() < 0.5 else _text(rng, pool, size)
        d = root / "medium" / f"d{done % 40:02d}"
        d.mkdir(exist_ok=True)
        (d / f"doc-{done:012d}").write_bytes(data)
        done += size
    made += done
    done = 0
    index = 0
    while done < budget * shares["small"]:
        size = rng.randrange(0, 32 * 1024)
        d = root / "small" / f"d{index // 1000:03d}"
        d.mkdir(exist_ok=True)
        data = rng.randbytes(size) if index % 2 else _text(rng, pool, size) if size else b""
        (d / f"f{index:06d}").write_bytes(data)
        done += size
        index += 1
    made += done
    for i in range(2):  # disk images: 20x their data in holes
        with open(root / "sparse" / f"disk-{i}.img", "wb") as out:
            data = int(budget * shares["sparse"] / 2)
            out.truncate(data * 20)
            for offset in range(0, data * 20, 8 * MiB * 10):
                out.seek(offset)
                out.write(rng.randbytes(8 * MiB))


def make_small(root: Path, count: int) -> None:
    rng = random.Random(200_000)
    pool = _text_pool(rng)
    for index in range(count):
        d = root / f"d{index // 1000:04d}"
        if index % 1000 == 0:
            d.mkdir(parents=True)
        size = rng.randrange(0, 4096)
        data = rng.randbytes(size) if index % 2 else _text(rng, pool, size) if size else b""
        (d / f"f{index:06d}").write_bytes(data)


def tree_bytes(root: Path) -> tuple[int, int]:
    files = size = 0
    for top, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(top, name))
            files += 1
            size += st.st_blocks * 512 if st.st_size > st.st_blocks * 512 else st.st_size
    return files, size


def change_tree(root: Path, seed: int) -> int:
    """Change ~1 % of the tree's bytes; returns the bytes changed."""
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file() and "sparse" not in p.parts)
    total = sum(p.stat().st_size for p in files)
    goal = int(total * CHANGE)
    changed = 0
    big = [p for p in files if p.stat().st_size > 8 * MiB]
    for path in rng.sample(big, min(4, len(big))):  # database pages
        with open(path, "r+b") as out:
            for _ in range(4):
                out.seek(rng.randrange(0, path.stat().st_size - 4096))
                out.write(rng.randbytes(4096))
                changed += 4096
    logs = [p for p in files if p.suffix == ".log"]
    for path in rng.sample(logs, min(5, len(logs))):  # appends
        with open(path, "ab") as out:
            out.write(rng.randbytes(256 * 1024))
            changed += 256 * 1024
    others = [p for p in files if p.stat().st_size <= MiB]
    rng.shuffle(others)
    for path in others:  # whole files rewritten
        if changed >= goal:
            break
        size = path.stat().st_size
        path.write_bytes(rng.randbytes(size))
        changed += size
    return changed


# -- running ---------------------------------------------------------------------------

def tree_pss(pid: int) -> int:
    """Bytes of memory process ``pid`` and its descendants use now, as proportional set
    sizes: pages a forked worker shares with its parent count once, not once per process."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            with open(f"/proc/{current}/task/{current}/children") as children:
                todo += [int(child) for child in children.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def run(cmd: list[str], env: dict[str, str] | None = None, stdin: Any = None,
        stdout: Any = subprocess.PIPE, timeout: float | None = None) -> dict[str, Any]:
    """Run a command; wall time (to the moment it ends), peak memory of it and its children
    (sampled beside it), its output."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE,
                            cwd=REPO)
    peak = [0]
    ended = threading.Event()

    def sample() -> None:
        # Reading smaps_rollup holds the process's memory map lock while it walks its page
        # tables: sampled every 20 ms it stalled the mover's (large, frequent) allocations.
        while True:
            peak[0] = max(peak[0], tree_pss(proc.pid))
            if ended.wait(0.25):
                return

    # Sampled in a thread, not between polls: a command is timed as it ends, not at the
    # next sample (polling every 250 ms added 0-250 ms to every command it timed).
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = proc.communicate(timeout=timeout)
        seconds = time.monotonic() - started
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return {"seconds": None, "peak_mb": peak[0] / MiB, "stdout": "", "timed_out": timeout}
    finally:
        ended.set()
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({proc.returncode}): "
                           f"{err.decode(errors='replace')[-2000:]}")
    return {"seconds": seconds, "peak_mb": peak[0] / MiB,
            "stdout": out.decode(errors="replace") if out else ""}


class Bucket:
    def __init__(self, s3: dict[str, str]) -> None:
        self.info = s3
        self.name = f"bench-{uuid.uuid4().hex[:8]}"
        self.client = boto3.client("s3", endpoint_url=s3["endpoint"],
                                   aws_access_key_id=s3["access_key"],
                                   aws_secret_access_key=s3["secret_key"],
                                   region_name=s3["region"])
        self.client.create_bucket(Bucket=self.name)

    def env(self) -> dict[str, str]:
        return {**os.environ, "AWS_ACCESS_KEY_ID": self.info["access_key"],
                "AWS_SECRET_ACCESS_KEY": self.info["secret_key"],
                "AWS_DEFAULT_REGION": self.info["region"],
                "AWS_ENDPOINT_URL_S3": self.info["endpoint"]}

    def stored(self) -> int:
        total = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            total += sum(item["Size"] for item in page.get("Contents", []))
        return total

    def remove(self) -> None:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                self.client.delete_objects(Bucket=self.name, Delete={"Objects": keys})
        self.client.delete_bucket(Bucket=self.name)


def bench_tar(tree: Path, bucket: Bucket, work: Path, change: Any) -> dict[str, Any]:
    config = TransferConfig()  # boto3's defaults: 8 MiB parts, 10 threads

    def upload(key: str) -> dict[str, Any]:
        started = time.monotonic()
        tar = subprocess.Popen(["tar", "--sparse", "-cf", "-", "-C", str(tree), "."],
                               stdout=subprocess.PIPE)
        assert tar.stdout is not None
        bucket.client.upload_fileobj(tar.stdout, bucket.name, key, Config=config)
        if tar.wait() != 0:
            raise RuntimeError("tar -c failed")
        head = bucket.client.head_object(Bucket=bucket.name, Key=key)
        return {"seconds": time.monotonic() - started, "bytes": head["ContentLength"]}

    full = upload("full.tar")
    change()
    second = upload("second.tar")
    target = work / "restore-tar"
    target.mkdir()
    started = time.monotonic()
    tar = subprocess.Popen(["tar", "-xpf", "-", "-C", str(target)], stdin=subprocess.PIPE)
    assert tar.stdin is not None
    bucket.client.download_fileobj(bucket.name, "second.tar", tar.stdin, Config=config)
    tar.stdin.close()
    if tar.wait() != 0:
        raise RuntimeError("tar -x failed")
    restore = time.monotonic() - started
    # migrator's restore returns once its data is on the disk (unless --no-sync): the same
    # for tar is its restore, then its target's file system flushed (syncfs, as migrator).
    subprocess.run(["sync", "-f", str(target)], check=True)
    restore_synced = time.monotonic() - started
    shutil.rmtree(target)
    return {"full_s": full["seconds"], "full_uploaded": full["bytes"],
            "incr_s": second["seconds"], "incr_uploaded": second["bytes"],
            "restore_s": restore, "restore_synced_s": restore_synced, "peak_mb": None}


def kopia_binary() -> Path:
    from proving_ground import build

    path = build._build_go_main("kopia", KOPIA_MODULE, KOPIA_VERSION, [KOPIA_MODULE])
    return path / "kopia"


def bench_kopia(tree: Path, bucket: Bucket, work: Path, change: Any) -> dict[str, Any]:
    kopia = str(kopia_binary())
    home = work / "kopia-home"
    home.mkdir()
    env = {**bucket.env(), "KOPIA_PASSWORD": "bench-password", "KOPIA_CHECK_FOR_UPDATES": "false",
           "HOME": str(home)}
    common = ["--config-file", str(home / "repo.config")]
    endpoint = bucket.info["endpoint"].removeprefix("http://")
    run([kopia, "repository", "create", "s3", "--bucket", bucket.name, "--endpoint", endpoint,
         "--disable-tls", "--access-key", bucket.info["access_key"], "--secret-access-key",
         bucket.info["secret_key"], "--cache-directory", str(home / "cache"), *common], env=env)
    full = run([kopia, "snapshot", "create", str(tree), "--json", *common], env=env)
    stored = bucket.stored()
    change()
    incr = run([kopia, "snapshot", "create", str(tree), "--json", *common], env=env)
    snapshot = json.loads(incr["stdout"])["id"]
    target = work / "restore-kopia"
    restore = run([kopia, "snapshot", "restore", snapshot, str(target), *common], env=env,
                  timeout=KOPIA_RESTORE_TIMEOUT)
    shutil.rmtree(target)
    shutil.rmtree(home)
    return {"full_s": full["seconds"], "full_uploaded": stored,
            "incr_s": incr["seconds"], "incr_uploaded": bucket.stored() - stored,
            "restore_s": restore["seconds"],
            "peak_mb": max(full["peak_mb"], incr["peak_mb"], restore["peak_mb"]),
            "full_peak_mb": full["peak_mb"]}


def bench_migrator(tree: Path, bucket: Bucket, work: Path, change: Any, name: str
                   ) -> dict[str, Any]:
    env = {**bucket.env(), "MIGRATOR_ENCRYPT_KEY": KEY_HEX}
    store = ["--store", f"s3://{bucket.name}/vol", "-o", "json"]
    mover = [sys.executable, "-m", "migrator", "volumes"]
    full = run([*mover, "backup", str(tree), "--name", name, *store], env=env)
    change()
    incr = run([*mover, "backup", str(tree), "--name", name, *store], env=env)
    target = work / "restore-migrator"
    restore = run([*mover, "restore", name, str(target), *store], env=env)
    verify = run([*mover, "verify", name, str(target), *store], env=env)
    shutil.rmtree(target)
    # Removing 200,000 files leaves minutes of metadata to write back: flushed here, not
    # inside the next timed run (it made the --no-sync restore look slower than the synced).
    os.sync()
    nosync = run([*mover, "restore", name, str(target), "--no-sync", *store], env=env)
    shutil.rmtree(target)
    os.sync()
    # A migration restores into the same claim again and again: the target holds the full
    # pass (restored untimed), and the incremental pass is restored over it.
    f, i = json.loads(full["stdout"]), json.loads(incr["stdout"])
    run([*mover, "restore", name, str(target), "--pass", f["pass"], "--no-sync", *store],
        env=env)
    os.sync()
    again = run([*mover, "restore", name, str(target), "--no-sync", *store], env=env)
    again_verify = run([*mover, "verify", name, str(target), *store], env=env)
    shutil.rmtree(target)
    os.sync()
    a = json.loads(again["stdout"])
    return {"full_s": full["seconds"], "full_uploaded": f["bytesUploaded"],
            "incr_s": incr["seconds"], "incr_uploaded": i["bytesUploaded"],
            "incr_read": i["bytesRead"], "restore_s": restore["seconds"],
            "restore_nosync_s": nosync["seconds"],
            "restore_again_s": again["seconds"], "restore_again_written": a["bytesWritten"],
            "restore_again_downloaded": a["bytesDownloaded"],
            "restore_again_unchanged": a["filesUnchanged"],
            "verified": json.loads(verify["stdout"])["ok"]
            and json.loads(again_verify["stdout"])["ok"],
            "peak_mb": max(full["peak_mb"], incr["peak_mb"], restore["peak_mb"]),
            "full_peak_mb": full["peak_mb"], "restore_peak_mb": restore["peak_mb"],
            "files": f["files"], "bytes": f["bytesTotal"]}


def fresh_filesystem(where: Path, size: int) -> str:
    """Mount a new journaled ext4 (a loop-mounted image beside ``where``) at ``where``, so
    every method copies and restores its tree on an equal file system, as a volume's.
    Without it, a method runs on whatever the host's file system has become: on an ext4
    without a journal (some VM images), the inodes of a tree removed in the last minutes
    are skipped one by one on every create (ext4's recently_deleted), and the method that
    restores after another's tree was removed took 2-4x as long."""
    image = where.with_suffix(".img")
    image.unlink(missing_ok=True)
    with image.open("wb") as handle:
        handle.truncate(size)
    made = subprocess.run(["mkfs.ext4", "-q", "-F", "-i", "4096", str(image)], capture_output=True)
    mounted = made.returncode == 0 and subprocess.run(
        ["mount", "-o", "loop", str(image), str(where)], capture_output=True).returncode == 0
    if not mounted:
        image.unlink(missing_ok=True)
        print("[bench] cannot mount a fresh ext4 (needs root and a loop device): the trees "
              "are copied and restored on the host's file system", file=sys.stderr)
        return "the host's"
    return "a fresh ext4 with a journal, loop-mounted, for each method"


def release_filesystem(where: Path) -> None:
    """Unmount what :func:`fresh_filesystem` mounted (if it did) and remove its image."""
    if os.path.ismount(where):
        subprocess.run(["umount", str(where)], check=True)
    where.with_suffix(".img").unlink(missing_ok=True)


@contextmanager
def object_store(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    """The MinIO every method stores into: by default one of the bench's own, started from
    the proving ground's build cache on a fresh ext4 of its own, so that nothing else runs
    beside the methods (the proving ground's clusters cost ~5-10 % of a core even idle)
    and MinIO writes to a journaled file system; ``--store-server proving-ground`` uses the
    running proving ground's."""
    if args.store_server == "proving-ground":
        yield json.loads((REPO / ".proving-ground" / "state.json").read_text())["s3"]
        return
    from proving_ground import build, ground

    place = args.work / "minio"
    place.mkdir(parents=True, exist_ok=True)
    fresh_filesystem(place, 24 * 1024 * MiB)
    launcher = ground.Launcher(place)
    try:
        yield ground._start_minio(launcher, build.build_minio())
    finally:
        for process in launcher.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process["pid"], signal.SIGTERM)
        for process in launcher.processes:
            for _ in range(100):
                try:
                    os.kill(process["pid"], 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        release_filesystem(place)
        shutil.rmtree(place, ignore_errors=True)


def one_run(method: str, tree_name: str, pristine: Path, size: int, work: Path,
            s3: dict[str, str]) -> tuple[dict[str, Any], str]:
    """One method's full pass, 1 % change, incremental pass and restore, on a fresh copy
    of the tree on a fresh file system and a fresh bucket."""
    scratch = work / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    filesystem = fresh_filesystem(scratch, size * 4 + 8 * 1024 * MiB)
    tree = scratch / "tree"
    subprocess.run(["cp", "-a", "--sparse=always", str(pristine / "tree"), str(tree)],
                   check=True)
    time.sleep(2.5)  # every file older than the mover's "just modified" window
    subprocess.run(["tar", "-cf", "/dev/null", "-C", str(tree), "."], check=True)
    os.sync()  # the copy's writeback is not part of any method's time
    changed: list[int] = []

    def change(tree: Path = tree, changed: list[int] = changed) -> None:
        # What the full pass left to write back (the store's copy: 1.6-2.3 GB of the mixed
        # tree) is flushed first, untimed, as between restores: it is the full pass's, not
        # the incremental pass's (it made the mover's 0.6 s incremental take 0.75-0.9 s).
        os.sync()
        changed.append(change_tree(tree, seed=7))

    bucket = Bucket(s3)
    try:
        load = os.getloadavg()[0]
        if method == "tar":
            result = bench_tar(tree, bucket, scratch, change)
        elif method == "kopia":
            result = bench_kopia(tree, bucket, scratch, change)
        else:
            result = bench_migrator(tree, bucket, scratch, change, f"bench/{tree_name}")
    finally:
        bucket.remove()
        release_filesystem(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    result["changed_bytes"] = changed[0] if changed else None
    result["load"] = load
    return result, filesystem


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the runs (a figure missing from a run, a timed-out
    restore, stays missing; a flag holds only if it held in every run), and the runs."""
    merged: dict[str, Any] = {}
    for key, first in runs[0].items():
        values = [r.get(key) for r in runs]
        if isinstance(first, bool):
            merged[key] = all(values)
        elif all(isinstance(v, (int, float)) for v in values):
            merged[key] = statistics.median(values)
        else:
            merged[key] = None
    if len(runs) > 1:
        merged["runs"] = runs
    return merged


def spread(r: dict[str, Any], key: str) -> str:
    """`` (LOW-HIGH)`` of a figure over the runs, when there were several."""
    values = [run[key] for run in r.get("runs", []) if run.get(key) is not None]
    return f" ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trees", default="mixed,small")
    parser.add_argument("--mixed-gib", type=float, default=2.0)
    parser.add_argument("--small-files", type=int, default=200_000)
    parser.add_argument("--methods", default="tar,kopia,migrator")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of every method, each round in a rotated order; the "
                        "figures are the medians")
    parser.add_argument("--store-server", choices=["own", "proving-ground"], default="own")
    parser.add_argument("--work", type=Path, default=Path("/tmp/migrator-volumes-bench"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "migrator")],
                   check=True, stdout=subprocess.DEVNULL)
    methods = args.methods.split(",")
    results: dict[str, Any] = {"load_at_start": os.getloadavg(), "trees": {},
                               "repeat": args.repeat, "store_server": args.store_server}
    with object_store(args) as s3:
        for tree_name in args.trees.split(","):
            label = (f"mixed-{args.mixed_gib:g}GiB" if tree_name == "mixed"
                     else f"small-{args.small_files}")
            pristine = args.work / label
            if not (pristine / ".done").exists():
                shutil.rmtree(pristine, ignore_errors=True)
                (pristine / "tree").mkdir(parents=True)
                started = time.monotonic()
                if tree_name == "mixed":
                    make_mixed(pristine / "tree", args.mixed_gib)
                else:
                    make_small(pristine / "tree", args.small_files)
                (pristine / ".done").write_text(f"{time.monotonic() - started:.0f}s\n")
            files, size = tree_bytes(pristine / "tree")
            runs: dict[str, list[dict[str, Any]]] = {method: [] for method in methods}
            for round_number in range(args.repeat):
                shift = round_number % len(methods)
                for method in methods[shift:] + methods[:shift]:
                    result, results["filesystem"] = one_run(method, tree_name, pristine, size,
                                                            args.work, s3)
                    runs[method].append(result)
                    print(f"[bench] {label} {method} (round {round_number + 1}): "
                          f"{json.dumps(result)}", file=sys.stderr, flush=True)
            results["trees"][label] = {"files": files, "bytes": size, "methods": {
                method: median_of(method_runs) for method, method_runs in runs.items()}}
    results["load_at_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(render(results))


def render(results: dict[str, Any]) -> str:
    lines = [f"load at start {results['load_at_start']}, at end {results['load_at_end']}; "
             f"medians of {results['repeat']} run(s) per method (low-high)"]
    header = ("tree", "method", "full backup", "MB/s", "uploaded", "incremental", "incr. bytes",
              "restore", "peak MB")
    lines.append(" | ".join(header))
    for label, row in results["trees"].items():
        mb = row["bytes"] / 1e6
        for method, r in row["methods"].items():
            peak = "-" if r.get("peak_mb") is None else f"{r['peak_mb']:.0f}"
            restore = (f"> {KOPIA_RESTORE_TIMEOUT:.0f} s" if r["restore_s"] is None
                       else f"{r['restore_s']:.1f} s")
            lines.append(" | ".join([
                f"{label} ({row['files']:,} files, {mb:,.0f} MB)", method,
                f"{r['full_s']:.1f} s{spread(r, 'full_s')}", f"{mb / r['full_s']:.0f}",
                f"{r['full_uploaded'] / 1e6:,.0f} MB",
                f"{r['incr_s']:.1f} s{spread(r, 'incr_s')}",
                f"{r['incr_uploaded'] / 1e6:,.1f} MB", restore + spread(r, "restore_s"), peak]))
        m = row["methods"].get("migrator")
        if m:
            notes = [f"incremental {100 * m['incr_s'] / m['full_s']:.1f} % of the full pass's "
                     f"time, {100 * m['incr_uploaded'] / m['full_uploaded']:.2f} % of its bytes"]
            for other in ("tar", "kopia"):
                o = row["methods"].get(other)
                if o:
                    other_restore = o["restore_s"] or KOPIA_RESTORE_TIMEOUT
                    more = ">" if o["restore_s"] is None else ""
                    synced = (f", flushed both {o['restore_synced_s'] / m['restore_s']:.2f}x "
                              f"({o['restore_synced_s']:.1f} s{spread(o, 'restore_synced_s')} "
                              "with syncfs)" if o.get("restore_synced_s") else "")
                    notes.append(f"vs {other}: backup {o['full_s'] / m['full_s']:.2f}x, "
                                 f"restore {more}{other_restore / m['restore_s']:.2f}x "
                                 f"({more}{other_restore / m['restore_nosync_s']:.2f}x "
                                 f"with --no-sync{synced})")
            notes.append(
                f"restore of the incremental pass over the full one {m['restore_again_s']:.1f} s"
                f"{spread(m, 'restore_again_s')} --no-sync ("
                f"{m['restore_again_unchanged']:,.0f} files unchanged, "
                f"{m['restore_again_written'] / 1e6:,.1f} MB written, "
                f"{m['restore_again_downloaded'] / 1e6:,.1f} MB downloaded)")
            tar = row["methods"].get("tar")
            if tar:
                notes.append(f"vs tar's restore {tar['restore_s'] / m['restore_again_s']:.1f}x")
            lines.append(f"  {label}: " + "; ".join(notes) + f"; verified {m['verified']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
