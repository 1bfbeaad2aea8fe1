"""Volume trees for the mover's tests: one with every kind of entry a volume holds, an
independent comparison of two trees (lstat fields, bytes, holes, hard links) that does not
use the mover's own code, and a count of the bytes the mover's chunkers hand FastCDC."""
from __future__ import annotations

import errno
import os
import random
import stat
from pathlib import Path

MiB = 1024 * 1024
NON_UTF8 = b"caf\xe9-\xff\xfe"  # a Latin-1 name: not valid UTF-8


def make_rich_tree(root: Path, seed: int = 1, big: int = 6 * MiB) -> None:
    """Large and small files, sparse files, binary data, unicode and non-UTF-8 names,
    symlinks (in, dangling), hard links, empty dirs, odd modes and owners, a fifo."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "data" / "empty" / "deeper").mkdir(parents=True)
    (root / "data" / "big.bin").write_bytes(rng.randbytes(big))
    (root / "data" / "log.txt").write_bytes(b"".join(
        b"%08d GET /index.html 200 %d\n" % (i, rng.randrange(10**6)) for i in range(60_000)))
    small = root / "data" / "small"
    small.mkdir()
    for i in range(200):
        (small / f"f{i:03d}").write_bytes(rng.randbytes(rng.randrange(0, 3000)))
    (small / "same-a").write_bytes(b"dup" * 1000)  # one chunk shared by two files
    (small / "same-b").write_bytes(b"dup" * 1000)
    (root / "empty-file").write_bytes(b"")
    with open(root / "sparse.img", "wb") as out:  # holes at start, middle and end
        out.truncate(40 * MiB)
        out.seek(8 * MiB)
        out.write(rng.randbytes(300_000))
        out.seek(20 * MiB)
        out.write(b"z" * 2 * MiB)
    with open(root / "all-hole", "wb") as out:
        out.truncate(5 * MiB)
    (root / "ünïcødé ✓ name.txt").write_text("unicode", encoding="utf-8")
    odd = os.fsencode(root) + b"/" + NON_UTF8
    os.mkdir(odd)
    with open(odd + b"/\x80raw", "wb") as out:
        out.write(b"bytes name")
    os.symlink("data/log.txt", root / "link-in")
    os.symlink("no/such/target", root / "link-dangling")
    os.symlink("../log.txt", root / "data" / "small" / "link-up")
    os.link(root / "data" / "log.txt", root / "hard-1")
    os.link(root / "data" / "log.txt", root / "data" / "empty" / "hard-2")
    os.link(small / "f010", small / "f010-hard")  # a small file's: read by a scanner
    os.chmod(small / "f001", 0o4751)
    os.chmod(small / "f002", 0o600)
    os.chown(small / "f003", 1234, 5678)
    os.chown(small / "f006", 1234, 5678)  # an owner to give, and a set-gid bit to keep
    os.chmod(small / "f006", 0o2750)
    os.chmod(small / "f007", 0o000)  # written all the same
    os.chown(root / "link-in", 4321, 8765, follow_symlinks=False)
    os.mkdir(root / "locked")
    (root / "locked" / "inside").write_bytes(b"read-only dir")
    os.chmod(root / "locked", 0o555)
    os.chmod(root / "data" / "empty", 0o1777)
    os.mkfifo(root / "fifo")
    os.utime(small / "f004", ns=(10**9, 1_234_567_891))
    os.utime(root / "link-in", ns=(2 * 10**9, 2_222_222_222), follow_symlinks=False)


def data_extents(path: bytes, size: int) -> list[tuple[int, int]]:
    fd = os.open(path, os.O_RDONLY)
    try:
        out, offset = [], 0
        while offset < size:
            try:
                start = os.lseek(fd, offset, os.SEEK_DATA)
            except OSError as err:
                if err.errno == errno.ENXIO:
                    break
                raise
            end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
            out.append((start, end - start))
            offset = end
        return out
    finally:
        os.close(fd)


def describe(root: Path, *, times: bool = True) -> dict[bytes, tuple]:
    """Every path under ``root`` (relative bytes) with what must survive a copy; hard links
    show as the sorted group of paths sharing an inode."""
    base = os.fsencode(root)
    found: dict[bytes, tuple] = {}
    inodes: dict[int, list[bytes]] = {}
    for top, dirs, files in os.walk(base):
        for name in dirs + files:
            full = os.path.join(top, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            kind = stat.S_IFMT(st.st_mode)
            info: list = [kind, st.st_uid, st.st_gid]
            if kind != stat.S_IFLNK:
                info.append(stat.S_IMODE(st.st_mode))
            if times and kind != stat.S_IFDIR:
                info.append(st.st_mtime_ns)
            if kind == stat.S_IFLNK:
                info.append(os.readlink(full))
            elif kind == stat.S_IFREG:
                with open(full, "rb") as stream:
                    info += [st.st_size, stream.read(), tuple(data_extents(full, st.st_size))]
                inodes.setdefault(st.st_ino, []).append(rel)
            found[rel] = tuple(info)
    for group in inodes.values():
        for rel in group:
            found[rel] += (tuple(sorted(group)),)
    return found


def assert_same_tree(source: Path, copy: Path) -> None:
    """``copy`` holds exactly ``source``: paths, types, owners, modes, mtimes, targets,
    bytes, holes and hard-link groups."""
    want, got = describe(source), describe(copy)
    assert sorted(got) == sorted(want)
    differing = [p for p in want if want[p] != got[p]]
    assert differing == [], f"differ: {differing[:5]}"
    top_src, top_copy = os.lstat(source), os.lstat(copy)
    assert (top_src.st_mode, top_src.st_uid, top_src.st_gid) == (
        top_copy.st_mode, top_copy.st_uid, top_copy.st_gid)


def change_one_percent(root: Path, seed: int) -> int:
    """Overwrite ~1 % of the rich tree's bytes in place (part of the big file, a few small
    files); returns how many bytes were changed."""
    rng = random.Random(seed)
    big = root / "data" / "big.bin"
    size = big.stat().st_size
    changed = size // 100
    with open(big, "r+b") as out:
        out.seek(rng.randrange(0, size - changed))
        out.write(rng.randbytes(changed))
    for i in rng.sample(range(5, 200), 2):
        path = root / "data" / "small" / f"f{i:03d}"
        path.write_bytes(rng.randbytes(1000))
        changed += 1000
    return changed


class CutBytes:
    """Counts the bytes every chunker of this process hands FastCDC while the test runs
    (``count``; set it to 0 to count afresh)."""

    def __init__(self, monkeypatch) -> None:
        from migrator.volumes.files import Chunker

        self.count = 0
        real = Chunker._cdc
        counter = self

        class Counting:
            def __init__(self, cdc) -> None:
                self.cdc = cdc

            def cut_buf(self, buf):
                counter.count += len(buf)
                return self.cdc.cut_buf(buf)

        monkeypatch.setattr(Chunker, "_cdc", lambda chunker: Counting(real(chunker)))
