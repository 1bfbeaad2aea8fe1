"""The volume mover against a local store: round trips, incremental passes, live changes,
unsafe manifests, tampering, keys."""
from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import zstandard

from migrator import jsoncodec, volumes
from migrator.errors import (
    ConfigError,
    DecryptionError,
    StoreUnreachable,
    UnsafeEntry,
    VolumeNotFound,
)
from migrator.store import LocalStore
from migrator.volumes import backup as backup_module
from migrator.volumes import files as files_module
from migrator.volumes import restore as restore_module
from migrator.volumes import restored
from migrator.volumes import scan as scan_module
from migrator.volumes import writers as writers_module
from migrator.volumes.entries import get_path, put_path
from migrator.volumes.files import Chunker
from migrator.volumes.manifest import HEAD, list_passes, new_pass_id, pass_prefix, read_entries
from migrator.volumes.report import BackupReport
from migrator.volumes.repository import INDEX, PACKS, Repository
from tests.volume_trees import (
    CutBytes,
    MiB,
    assert_same_tree,
    change_one_percent,
    describe,
    make_rich_tree,
)

KEY = bytes(range(32))


@pytest.fixture
def settled():
    """Makes a tree's files count as settled (not "just modified", which a pass reads again
    next time): the tests' trees are made a moment before their passes. Their times are
    moved a minute back, which every worker process sees, as it would on a real volume."""

    def settle(root: Path) -> None:
        then = time.time() - 60
        for path in [root, *root.rglob("*")]:
            os.utime(path, (then, then), follow_symlinks=False)

    return settle


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    store.check(create=True)
    return store


def backup(store, source: Path, name: str = "ns/data", key: bytes | None = None, **kw):
    return volumes.apply_backup(volumes.plan_backup(store, source, name, key=key), **kw)


def restore(store, target: Path, name: str = "ns/data", key: bytes | None = None, **kw):
    plan = volumes.plan_restore(store, name, target, key=key,
                                allow_outside_symlinks=kw.pop("allow", False))
    return volumes.apply_restore(plan, **kw)


def settled_backup(store, tmp_path: Path, settle) -> tuple[Path, Path, BackupReport]:
    """A rich tree under ``src``, settled and backed up; ``dst`` for its restore."""
    source = tmp_path / "src"
    make_rich_tree(source)
    settle(source)
    return source, tmp_path / "dst", backup(store, source)


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "writer-processes"])
@pytest.mark.parametrize("key", [None, KEY], ids=["plain", "encrypted"])
def test_round_trip_keeps_bytes_holes_links_and_metadata(
        store, tmp_path: Path, key, processes):
    source, target = tmp_path / "src", tmp_path / "dst"
    make_rich_tree(source)
    report = backup(store, source, key=key)
    assert not report.partial and report.warnings.count == 0
    assert report.hardlinks == 3 and report.specials == 1 and report.symlinks == 3
    # a file of 200 small files: far fewer objects than files
    assert report.packs == len(list(store.list(PACKS)))
    assert report.packs < 10
    done = restore(store, target, key=key, processes=processes)
    assert not done.partial, done.to_dict()["problems"]
    assert done.files == report.files
    assert_same_tree(source, target)
    assert os.stat(target / "sparse.img").st_blocks * 512 < 3 * MiB  # holes stayed holes
    assert volumes.verify_volume(store, "ns/data", target, key=key).differences.count == 0


def test_chunks_shared_between_files_and_volumes_are_stored_once(store, tmp_path: Path):
    source = tmp_path / "src"
    make_rich_tree(source)
    first = backup(store, source, "ns/one")
    second = backup(store, source, "other/two")
    assert first.chunks_new > 0
    assert second.chunks_new == 0 and second.bytes_uploaded == 0  # same data, other volume
    repo = Repository.open(store, None)
    index = repo.load_index()
    assert len(index) == first.chunks_new
    # same-a and same-b hold the same bytes: one chunk, stored once
    (info,) = list_passes(store, "ns/one")
    refs = {e["p"]: e["c"] for e in read_entries(repo, info) if e.get("p", "").endswith("same-a")
            or e.get("p", "").endswith("same-b")}
    assert len(refs) == 2 and refs["data/small/same-a"] == refs["data/small/same-b"]


def chunk_ids(chunker: Chunker, path: Path) -> list[bytes]:
    """The ids of ``path``'s chunks, cut as a pass cuts them."""
    ids: list[bytes] = []
    with open(path, "rb") as source:
        chunker.cut(source.fileno(), 0, os.fstat(source.fileno()).st_size,
                    lambda data, chunk_id: ids.append(chunk_id))
    return ids


def test_incremental_pass_reads_changed_files_and_uploads_only_new_chunks(
        store, tmp_path: Path, settled):
    source = tmp_path / "src"
    make_rich_tree(source, big=20 * MiB)
    settled(source)
    full = backup(store, source)
    quiet = backup(store, source)  # nothing changed: nothing read, nothing sent
    assert quiet.files_read == 0 and quiet.bytes_uploaded == 0 and quiet.files_reused > 200
    big = source / "data" / "big.bin"
    chunker = Chunker(Repository.open(store, None).codec)
    before = chunk_ids(chunker, big)
    changed = change_one_percent(source, seed=3)
    after = chunk_ids(chunker, big)
    delta = backup(store, source)
    assert delta.files_read == 3  # the big file and two small ones
    # The two small files, and the big file's chunks that its changed 200 KiB (1 %) touch:
    # where they start and end, and where a cut point moved. The boundaries move with the
    # store's secret (it seeds the chunker), so the count is taken with the store's chunker.
    big_new = len(set(after) - set(before))
    assert 1 <= big_new <= 6, (big_new, len(after))  # 1-4 in 300 secrets tried
    assert delta.chunks_new == 2 + big_new
    assert delta.bytes_uploaded <= 0.2 * full.bytes_uploaded
    assert delta.bytes_uploaded < changed + 2 * 4 * MiB
    target = tmp_path / "dst"
    restore(store, target)
    assert_same_tree(source, target)


def test_a_complete_pass_leaves_its_packs_indexed_in_one_merged_document(
        store, tmp_path: Path, settled):
    """Each pack gets an index document of its own as it is stored (what a resumed pass
    finds); a complete pass leaves them merged into one, written beside its head."""
    source = tmp_path / "src"
    make_rich_tree(source, big=20 * MiB)
    settled(source)
    first = backup(store, source)
    assert first.packs >= 2
    assert list(store.list(INDEX)) == [f"{INDEX}{first.pass_id}-00000.idx"]
    assert len(Repository.open(store, None).load_index()) == first.chunks_new
    (source / "data" / "new.bin").write_bytes(os.urandom(3 * MiB))
    second = backup(store, source)
    assert second.packs == 1
    assert sorted(store.list(INDEX)) == sorted(
        f"{INDEX}{report.pass_id}-00000.idx" for report in (first, second))
    assert len(Repository.open(store, None).load_index()) == first.chunks_new + second.chunks_new


def test_a_changed_large_file_is_cut_again_only_near_its_change(
        store, tmp_path: Path, settled, monkeypatch):
    """A pass checks a changed file's previous chunks by their ids and runs FastCDC only
    where they differ; so does verify. (Which chunks, and that they are FastCDC's own:
    tests/unit/test_volume_cuts.py.)"""
    source = tmp_path / "src"
    make_rich_tree(source, big=24 * MiB)
    settled(source)
    backup(store, source)
    cut_bytes = CutBytes(monkeypatch)
    big = source / "data" / "big.bin"
    with open(big, "r+b") as out:  # a page rewritten in place, as a database does
        out.seek(11 * MiB)
        out.write(os.urandom(4096))
    delta = backup(store, source, processes=0)
    assert delta.files_read == 1 and delta.bytes_read == 24 * MiB
    assert 0 < cut_bytes.count <= 3 * 2 * MiB, cut_bytes.count  # a few chunks, not 24 MiB
    assert 1 <= delta.chunks_new <= 3
    cut_bytes.count = 0
    target = tmp_path / "dst"
    restore(store, target)
    assert volumes.verify_volume(store, "ns/data", source).differences.count == 0
    assert cut_bytes.count == 0  # every file's chunks checked by their ids alone
    assert_same_tree(source, target)


def test_file_growing_or_vanishing_during_a_pass_is_a_warning_the_next_pass_catches(
        store, tmp_path: Path, monkeypatch):
    source = tmp_path / "src"
    make_rich_tree(source)
    growing = source / "data" / "big.bin"
    vanishing = source / "data" / "small" / "f010"
    real_open = files_module.open_for_reading
    real_cut = Chunker.cut

    def open_for_reading(path, dir_fd=None):  # how every read opens its file
        where = os.fsencode(os.readlink(f"/proc/self/fd/{dir_fd}")) + b"/" if dir_fd else b""
        if where + path == os.fsencode(vanishing):
            os.unlink(vanishing)  # gone between its lstat and the read
        return real_open(path, dir_fd)

    def cut(self, fd, offset, length, each, known=None):
        got = real_cut(self, fd, offset, length, each, known)
        if os.fstat(fd).st_ino == os.stat(growing).st_ino:
            with open(growing, "ab") as out:  # grows while it is read
                out.write(b"appended while read\n")
        return got

    monkeypatch.setattr(files_module, "open_for_reading", open_for_reading)
    monkeypatch.setattr(Chunker, "cut", cut)
    report = backup(store, source, processes=0)  # the patches live in this process
    monkeypatch.undo()
    assert not report.partial
    warned = {w.what: w.error for w in report.warnings.items}
    assert "data/small/f010" in warned and "vanished" in warned["data/small/f010"]
    assert "changed while it was read" in warned["data/big.bin"]
    # The next (quiet) pass reads the grown file again and is exact.
    again = backup(store, source)
    assert again.warnings.count == 0
    target = tmp_path / "dst"
    restore(store, target)
    assert_same_tree(source, target)


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "writer-processes"])
def test_restore_into_a_non_empty_target_keeps_or_deletes_extras(
        store, tmp_path: Path, processes):
    source, target = tmp_path / "src", tmp_path / "dst"
    make_rich_tree(source)
    backup(store, source)
    target.mkdir()
    (target / "extra.txt").write_text("not in the manifest")
    (target / "data").mkdir()
    (target / "data" / "log.txt").write_text("old content, replaced")
    (target / "link-in").mkdir()  # a full directory where the manifest has a symlink
    (target / "link-in" / "x").write_text("x")
    (target / "data" / "small" / "f005").mkdir(parents=True)  # empty, where a file goes
    before = describe(target)
    plan = volumes.plan_restore(store, "ns/data", target)
    listed, deleting = volumes.preview_restore(plan), volumes.preview_restore(plan, delete=True)
    assert describe(target) == before  # a preview changes nothing
    assert listed["extra"] >= 2 and listed["toDelete"] == 0
    assert deleting["extra"] == 0 and deleting["toDelete"] >= 2
    assert listed["filesToWrite"] == listed["files"] and listed["basePass"] is None
    kept = restore(store, target, processes=processes)
    assert kept.extra.count == listed["extra"]
    assert (target / "extra.txt").exists()
    assert (target / "data" / "small" / "f005").is_file()
    assert {k.what for k in kept.extra.items} >= {"extra.txt", "link-in/x"}
    assert kept.partial  # the symlink could not replace a full directory
    preview = volumes.preview_restore(volumes.plan_restore(store, "ns/data", target),
                                      delete=True)
    done = restore(store, target, delete=True, processes=processes)
    assert not done.partial and done.deleted >= 2 and done.deleted == preview["toDelete"]
    assert_same_tree(source, target)


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "writer-processes"])
def test_a_restore_over_an_earlier_one_writes_only_what_changed(
        store, tmp_path: Path, settled, processes, monkeypatch):
    source, target = tmp_path / "src", tmp_path / "dst"
    # How many copies the survey finds kept from their lines' bytes, without decoding them.
    told = [0]
    as_restored = restore_module._as_restored

    def counted(line: bytes, st: os.stat_result) -> bool:
        kept = as_restored(line, st)
        told[0] += kept
        return kept

    monkeypatch.setattr(restore_module, "_as_restored", counted)
    make_rich_tree(source)
    settled(source)
    first = backup(store, source, key=KEY)
    full = restore(store, target, key=KEY, processes=processes)
    assert full.base_pass is None and full.files_unchanged == 0
    assert restored.read(os.fsencode(target)).complete == first.pass_id
    small = source / "data" / "small"
    inode = {name: os.stat(target / "data" / "small" / name).st_ino
             for name in ("f000", "f002", "f003", "f004")}
    big_inode = os.stat(target / "data" / "big.bin").st_ino
    change_one_percent(source, seed=3)  # the big file and two of f005-f199
    os.chmod(small / "f002", 0o640)  # metadata only: kept, mode brought up to date
    os.utime(small / "f003", ns=(5 * 10**9, 5 * 10**9))  # mtime only: kept, mtime moved
    copy = target / "data" / "small" / "f004"  # touched in the target since: written again
    copy.write_bytes(bytes(len(copy.read_bytes())))
    second = backup(store, source, key=KEY)
    before = describe(target)
    preview = volumes.preview_restore(volumes.plan_restore(store, "ns/data", target, key=KEY))
    assert describe(target) == before  # f002's mode and f003's mtime not brought up to date
    assert preview["basePass"] == first.pass_id and preview["filesToWrite"] == 4
    told[0] = 0
    again = restore(store, target, key=KEY, processes=processes)
    assert not again.partial, again.to_dict()["problems"]
    assert again.files_unchanged == preview["filesUnchanged"]
    assert again.bytes_written == preview["bytesToWrite"]
    assert again.base_pass == first.pass_id
    assert again.files == second.files == full.files
    written = again.files - again.files_unchanged
    assert written == 4  # big.bin, two small files, f004
    # Decoded: f002 and f003, whose metadata is brought up to date; the others by bytes.
    assert told[0] == again.files_unchanged - 2
    assert again.bytes_written + again.bytes_unchanged == second.bytes_total
    assert 0 < again.bytes_written < 0.2 * second.bytes_total  # the big file is 6 of ~55 MB
    assert_same_tree(source, target)
    assert volumes.verify_volume(store, "ns/data", target, key=KEY).differences.count == 0
    now = {name: os.stat(target / "data" / "small" / name).st_ino for name in inode}
    assert now["f000"] == inode["f000"] and now["f002"] == inode["f002"]
    assert now["f003"] == inode["f003"] and now["f004"] != inode["f004"]
    assert os.stat(target / "data" / "big.bin").st_ino != big_inode
    assert restored.read(os.fsencode(target)).complete == second.pass_id
    # Once more, nothing changed: nothing downloaded, nothing written.
    told[0] = 0
    idle = restore(store, target, key=KEY, processes=processes)
    assert idle.base_pass == second.pass_id and told[0] == idle.files_unchanged
    assert idle.bytes_downloaded == 0 and idle.bytes_written == 0
    assert idle.files_unchanged == idle.files and idle.packs == 0
    assert_same_tree(source, target)


def test_files_are_linked_through_proc_where_the_kernel_refuses_linkat_by_descriptor(
        store, tmp_path: Path, monkeypatch, settled):
    source, target, _first = settled_backup(store, tmp_path, settled)
    restore(store, target)  # a new tree, staged: nothing linked
    change_one_percent(source, seed=5)  # written over the earlier restore: linked
    backup(store, source)
    calls = []

    def refused(*args):
        calls.append(args)
        ctypes.set_errno(errno.ENOENT)  # what a kernel before 6.10 says without the capability
        return -1

    monkeypatch.setattr(writers_module, "call", lambda _name, *args: refused(*args))
    monkeypatch.setattr(writers_module, "_FLINK", True)
    report = restore(store, target, processes=0)
    assert not report.partial and len(calls) == 1  # asked once, then through /proc
    assert_same_tree(source, target)


def _dir_times(root: Path) -> dict[str, int]:
    return {str(path.relative_to(root)): path.lstat().st_mtime_ns
            for path in [root, *root.rglob("*")] if path.is_dir() and not path.is_symlink()}


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "writer-processes"])
def test_a_new_tree_is_staged_aside_and_moved_in_whole(
        store, tmp_path: Path, settled, monkeypatch, processes):
    source, target, _first = settled_backup(store, tmp_path, settled)
    target.mkdir()
    (target / "data").mkdir(0o700)  # in the manifest, holding what it does not
    (target / "data" / "extra.txt").write_bytes(b"kept")
    (target / "locked").mkdir()  # in the manifest, empty (as lost+found on a new volume)
    move_in = restore_module._Restorer._move_in
    seen = []

    def watched(self, stage, into, rel):
        if not rel:  # only the staged tree and what was there: no file of it under its name
            seen.append((sorted(os.listdir(target)), self.staged))
        move_in(self, stage, into, rel)

    monkeypatch.setattr(restore_module._Restorer, "_move_in", watched)
    report = restore(store, target, processes=processes)
    assert not report.partial and report.extra.count == 1
    stage = [name for name in seen[0][0] if name.startswith(".mgr-")]
    assert seen[0][1] and len(stage) == 1 and set(seen[0][0]) == {"data", "locked", *stage}
    assert _dir_times(target) == _dir_times(source)  # the moves and merges moved no time
    (target / "data" / "extra.txt").unlink()
    assert_same_tree(source, target)


def test_an_entry_that_cannot_be_moved_in_fails_alone_and_leaves_nothing_staged(
        store, tmp_path: Path, settled, monkeypatch):
    source, target, _first = settled_backup(store, tmp_path, settled)
    move = restore_module._move

    def failing(source_path: bytes, final: bytes) -> None:
        if final.endswith(b"/sparse.img"):
            raise OSError(errno.EIO, "Input/output error")
        move(source_path, final)

    monkeypatch.setattr(restore_module, "_move", failing)
    report = restore(store, target)
    assert [(p.what, p.error) for p in report.failures.items] == [
        ("sparse.img", "cannot restore: Input/output error")]
    assert report.partial and not (target / "sparse.img").exists()
    assert not [name for name in os.listdir(target) if name.startswith(".mgr-")]
    (source / "sparse.img").unlink()
    assert_same_tree(source, target)


def test_a_staged_restore_killed_before_its_move_leaves_its_tree_aside_for_the_next(
        store, tmp_path: Path, settled, monkeypatch):
    source, target, first = settled_backup(store, tmp_path, settled)

    def killed(*args):
        raise KeyboardInterrupt  # as a kill between the writing and the move

    with monkeypatch.context() as patched:
        patched.setattr(restore_module._Restorer, "_move_in", killed)
        with pytest.raises(KeyboardInterrupt):
            restore(store, target)
    (left,) = os.listdir(target)  # the staged tree only: not one file under its name
    assert left.startswith(".mgr-") and (target / left / "data" / "big.bin").exists()
    assert restored.read(os.fsencode(target)).writing == first.pass_id
    preview = volumes.preview_restore(volumes.plan_restore(store, "ns/data", target))
    assert preview["extra"] == 0 and preview["filesToWrite"] == preview["files"]
    done = restore(store, target)
    assert not done.partial and done.extra.count == 0
    assert_same_tree(source, target)  # and the staged tree left behind is gone
    assert restored.read(os.fsencode(target)).complete == first.pass_id


def test_a_staged_tree_with_read_only_directories_moves_in_for_a_user_who_is_not_root(
        settled):
    """A directory moved to another parent is written to (its ".." entry): one its owner
    may not write to (mode 555) is moved all the same by a restore that is not root's."""
    work = Path(tempfile.mkdtemp(prefix="migrator-nonroot-", dir="/tmp"))
    try:
        source, target = work / "src", work / "dst"
        (source / "top" / "inner").mkdir(parents=True)
        (source / "top" / "inner" / "file").write_bytes(b"read-only directories")
        os.chmod(source / "top" / "inner", 0o555)
        os.chmod(source / "top", 0o555)
        settled(source)
        store = LocalStore(work / "store")
        store.check(create=True)
        backup(store, source)
        restore(store, work / "as-root")  # every module the restore needs, imported
        (target / "top").mkdir(parents=True)  # merged into: entries moved out of a 555
        (target / "top" / "extra").write_bytes(b"not in the manifest")
        for path in [work, *work.rglob("*")]:
            os.chown(path, 65534, 65534, follow_symlinks=False)
        os.chmod(work, 0o755)
        child = os.fork()
        if child == 0:  # not root from here on: the restore's own process and threads
            code = 1
            try:
                os.setgroups([])
                os.setresgid(65534, 65534, 65534)
                os.setresuid(65534, 65534, 65534)
                report = restore(store, target, processes=0)
                code = 0 if not report.partial and report.extra.count == 1 else 2
            finally:
                os._exit(code)
        assert os.waitpid(child, 0)[1] == 0
        assert (target / "top" / "inner" / "file").read_bytes() == b"read-only directories"
        assert os.stat(target / "top").st_mode & 0o777 == 0o555
        assert sorted(os.listdir(target / "top")) == ["extra", "inner"]
        assert os.listdir(target) == ["top"]
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(work)], check=True)
        shutil.rmtree(work)


def test_a_target_with_another_file_system_mounted_in_it_is_written_in_place(
        store, tmp_path: Path, settled):
    source, target, _first = settled_backup(store, tmp_path, settled)
    (target / "data").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(target / "data")],
                   check=True)
    try:
        report = restore(store, target)  # not staged: a rename cannot move into the mount
        # Only the hard link from outside the mount to a file in it cannot be made.
        assert [(p.what, p.error) for p in report.failures.items] == [
            ("hard-1", "cannot restore: Invalid cross-device link")]
        assert os.stat(target / "data" / "log.txt").st_dev == os.stat(target / "data").st_dev
        assert os.stat(target / "data").st_dev != os.stat(target).st_dev
        assert_same_tree(source / "data", target / "data")
    finally:
        subprocess.run(["umount", str(target / "data")], check=True)


def test_a_flushed_restore_flushes_each_window_in_the_background_and_once_at_the_end(
        store, tmp_path: Path, monkeypatch):
    source = tmp_path / "src"
    make_rich_tree(source)
    backup(store, source)
    monkeypatch.setattr(restore_module, "WINDOW_ENTRIES", 20)  # a dozen windows
    made, flushed = [], []
    real = restore_module.BackgroundFlush

    def watched(path):
        made.append(real(path))
        return made[-1]

    monkeypatch.setattr(restore_module, "BackgroundFlush", watched)
    monkeypatch.setattr(restore_module, "flush", flushed.append)
    report = restore(store, tmp_path / "dst")
    assert not report.partial and flushed == [os.fsencode(tmp_path / "dst")]
    assert len(made) == 1 and made[0].flushes >= 2  # while it wrote
    assert_same_tree(source, tmp_path / "dst")
    restore(store, tmp_path / "unflushed", sync=False)
    assert len(made) == 1 and len(flushed) == 1  # --no-sync: no flush at all


def test_a_restore_trusts_the_earlier_one_only_for_the_same_volume_store_and_pass():
    record = restored.Record("ns/data", "tag", "pass-1")
    assert record.base_for("ns/data", "tag", "pass-2") == "pass-1"
    assert record.base_for("ns/other", "tag", "pass-2") is None
    assert record.base_for("ns/data", "other-store", "pass-2") is None
    unfinished = restored.Record("ns/data", "tag", "pass-1", writing="pass-2")
    assert unfinished.base_for("ns/data", "tag", "pass-2") == "pass-1"  # the same pass again
    assert unfinished.base_for("ns/data", "tag", "pass-3") is None  # any file may be either


def test_an_unfinished_restore_keeps_its_record_and_a_restore_of_another_pass_writes_all(
        store, tmp_path: Path, settled):
    source, target, first = settled_backup(store, tmp_path, settled)
    restore(store, target)
    (source / "data" / "small" / "new-file").write_bytes(b"new")
    second = backup(store, source)
    blocker = target / "data" / "small" / "new-file"
    blocker.mkdir()
    (blocker / "x").write_bytes(b"a full directory where the new file goes")
    partial = restore(store, target)
    assert partial.partial and partial.base_pass == first.pass_id
    record = restored.read(os.fsencode(target))
    assert (record.complete, record.writing) == (first.pass_id, second.pass_id)
    # The same pass again builds on the earlier complete one, and finishes.
    done = restore(store, target, delete=True)
    assert not done.partial and done.base_pass == first.pass_id and done.files_unchanged > 200
    assert_same_tree(source, target)
    # A record naming another pass as half written: nothing in the target is trusted.
    restored.write(os.fsencode(target), restored.Record(
        record.name, record.store, second.pass_id, writing="20250101T000000.000000Z-abcdef"))
    everything = restore(store, target)
    assert everything.base_pass is None and everything.files_unchanged == 0
    assert_same_tree(source, target)


def test_a_target_that_cannot_keep_the_record_gets_everything_written(
        store, tmp_path: Path, settled, monkeypatch):
    source, target, _first = settled_backup(store, tmp_path, settled)
    assert restore(store, target).files_unchanged == 0
    assert restored.read(os.fsencode(target)) is not None

    def refuse(*args, **kwargs):
        raise OSError(errno.ENOTSUP, "Operation not supported")

    monkeypatch.setattr(restored.os, "setxattr", refuse)  # e.g. no user xattrs there
    again = restore(store, target)
    assert not again.partial and again.base_pass is None and again.files_unchanged == 0
    assert_same_tree(source, target)


def _write_manifest(store: LocalStore, name: str, entries: list[dict],
                    cuts: list[int] | None = None) -> None:
    """A complete pass holding ``entries`` (as a hostile store could), in parts that start
    at the indexes ``cuts`` (one part without)."""
    prefix = pass_prefix(name, "20250101T000000.000000Z-abcdef")
    bounds = [0, *(cuts or []), len(entries)]
    parts = []
    for number, (begin, end) in enumerate(zip(bounds, bounds[1:])):
        lines = entries[begin:end]
        body = zstandard.compress(b"".join(jsoncodec.dumps(e) + b"\n" for e in lines))
        key = f"{prefix}part-{number:05d}.jsonl.zst"
        store.put_bytes(key, body)
        parts.append({"key": key, "entries": len(lines),
                      "sha256": hashlib.sha256(body).hexdigest()})
    store.put_bytes(prefix + "manifest.json", jsoncodec.dumps(
        {"entries": len(entries), "parts": parts}))


def _dir(path: bytes) -> dict:
    entry = {"t": "d", "m": 0o755, "u": 0, "g": 0, "mt": 0, "at": 0}
    put_path(entry, "p", path)
    return entry


def _symlink(path: bytes, target: bytes) -> dict:
    entry = {**_dir(path), "t": "l"}
    put_path(entry, "l", target)
    return entry


def _file(path: bytes) -> dict:
    return {**_dir(path), "t": "f", "m": 0o644, "s": 0, "c": []}


UNSAFE = [
    ([_dir(b""), _dir(b"a"), _file(b"a/../../escaped")], "'..' component"),
    ([_dir(b""), _file(b"/etc/escaped")], "absolute path"),
    ([_dir(b""), _symlink(b"out", b"sub"), _file(b"out/escaped")], "through a symlink"),
    ([_dir(b""), _symlink(b"out", b"/tmp"), _file(b"out/escaped")], "points out"),
    ([_dir(b""), _file(b"out"), _file(b"out/escaped")], "its parent is a symlink, a file"),
    ([_dir(b""), _symlink(b"out", b"../../.."), _file(b"x")], "points out of the volume"),
    ([_dir(b""), _file(b"b"), _file(b"a")], "out of order"),
    ([_file(b"first")], "root directory"),
]


@pytest.mark.parametrize("entries, words", UNSAFE)
def test_unsafe_manifests_are_refused_before_anything_is_written(
        store, tmp_path: Path, entries, words):
    Repository.open(store, None, create=True)
    _write_manifest(store, "evil", entries)
    target = tmp_path / "deep" / "er" / "dst"
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(UnsafeEntry, match=words):
        restore(store, target, name="evil")
    assert not target.exists()
    assert sorted(os.listdir(tmp_path)) == before


@pytest.fixture
def checked_in_processes(monkeypatch):
    """Every manifest checked by worker processes, a part each, however small."""
    monkeypatch.setattr(restore_module, "_CHECK_IN_PROCESSES", 0)


@pytest.mark.parametrize("entries, words", [
    *UNSAFE,
    ([_dir(b""), _dir(b"a"), _file(b"a/f"), _file(b"a/g/h")], "not inside a directory"),
    ([_dir(b""), _dir(b"b"), _dir(b"a")], "out of order"),
    ([_dir(b""), _dir(b"a"), _file(b"a/x"), _dir(b"b"), _file(b"a/y")], "out of order"),
])
@pytest.mark.parametrize("processes", [0, 2], ids=["here", "worker-processes"])
def test_a_manifest_in_many_parts_is_checked_as_one(
        store, tmp_path: Path, checked_in_processes, entries, words, processes):
    """Each entry in a part of its own: whatever decides across parts (the order, the
    directory chain) is checked across them, in worker processes too."""
    Repository.open(store, None, create=True)
    _write_manifest(store, "evil", entries, cuts=list(range(1, len(entries))))
    target = tmp_path / "dst"
    with pytest.raises(UnsafeEntry, match=words):
        volumes.plan_restore(store, "evil", target, processes=processes)
    assert not target.exists()


@pytest.mark.parametrize("processes", [0, 2], ids=["here", "worker-processes"])
def test_directories_that_span_parts_restore(
        store, tmp_path: Path, checked_in_processes, processes):
    entries = [_dir(b""), _dir(b"a"), _dir(b"a/b"), _file(b"a/b/f1"), _dir(b"a/b/g"),
               _file(b"a/b/g/x"), _file(b"a/c"), _dir(b"z"), _file(b"z/1"), _file(b"zz")]
    Repository.open(store, None, create=True)
    for cuts in ([], [3], [1, 4, 6, 9], list(range(1, len(entries)))):
        _write_manifest(store, "ok", entries, cuts=cuts)
        plan = volumes.plan_restore(store, "ok", tmp_path / "dst", processes=processes)
        assert (plan.entries, plan.files) == (10, 5)
    report = volumes.apply_restore(plan, processes=0)
    assert not report.partial and report.files == 5
    assert (tmp_path / "dst" / "a" / "b" / "g" / "x").is_file()


def test_outside_symlinks_restore_as_they_are_when_allowed(store, tmp_path: Path):
    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    os.symlink("/var/lib/postgresql/tablespace", source / "pg_tblspc")
    backup(store, source)
    with pytest.raises(UnsafeEntry, match="points out of the volume") as refused:
        restore(store, target)
    assert "--allow-outside-symlinks" in (refused.value.hint or "")
    restore(store, target, allow=True)
    assert os.readlink(target / "pg_tblspc") == "/var/lib/postgresql/tablespace"


@pytest.mark.parametrize("processes", [0, 2], ids=["threads", "writer-processes"])
def test_a_tampered_pack_fails_its_files_with_a_clear_error(
        store, tmp_path: Path, processes):
    source, target = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    (source / "a").write_bytes(os.urandom(100_000))
    backup(store, source)
    (pack,) = [k for k in store.list(PACKS)]
    blob = bytearray(store.get_bytes(pack))
    blob[10] ^= 0xFF
    store.put_bytes(pack, bytes(blob))
    report = restore(store, target, processes=processes)
    assert report.partial
    (problem,) = report.problems()
    assert problem.what == "a" and "does not match its id" in problem.error
    assert os.listdir(target) == []  # no file, no temporary file


def test_encrypted_store_refuses_a_wrong_or_missing_key(store, tmp_path: Path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a").write_bytes(b"secret data")
    backup(store, source, key=KEY)
    wrong = bytes(32)
    with pytest.raises(DecryptionError, match="not the one"):
        restore(store, tmp_path / "dst", key=wrong)
    with pytest.raises(DecryptionError, match="no key was given"):
        restore(store, tmp_path / "dst")
    assert not (tmp_path / "dst").exists()
    # Nothing readable in the store: no path, no content.
    for key in store.list(""):
        assert b"secret data" not in store.get_bytes(key)
    plain = LocalStore(tmp_path / "plain")
    plain.check(create=True)
    backup(plain, source)
    with pytest.raises(ConfigError, match="not encrypted"):
        backup(plain, source, key=KEY)


def test_a_killed_pass_leaves_no_complete_pass_and_the_next_one_resumes(
        store, tmp_path: Path, monkeypatch, settled):
    source = tmp_path / "src"
    make_rich_tree(source, big=3 * MiB)
    settled(source)
    real_open = files_module.open_for_reading
    calls = []

    def dying_open(path, dir_fd=None):  # how every read opens its file
        calls.append(path)
        if len(calls) >= 180 and any(store.list("volumes/manifests/")):
            raise KeyboardInterrupt  # the process dies here, some checkpoints written
        return real_open(path, dir_fd)

    monkeypatch.setattr(files_module, "open_for_reading", dying_open)
    monkeypatch.setattr("migrator.volumes.manifest.PART_ENTRIES", 20)  # frequent checkpoints
    monkeypatch.setattr("migrator.volumes.packs.PACK_TARGET", 64 * 1024)  # and packs
    monkeypatch.setattr(backup_module, "BATCH_ENTRIES", 16)
    # Entries wait for no large file's read beyond one: checkpoints come as the small files
    # are read, however slow the reader thread is on a busy machine.
    monkeypatch.setattr(backup_module, "_AHEAD", 0)
    with pytest.raises(KeyboardInterrupt):
        backup(store, source, workers=1, processes=0)
    monkeypatch.setattr(files_module, "open_for_reading", real_open)
    (interrupted,) = list_passes(store, "ns/data")
    assert not interrupted.complete
    with pytest.raises(VolumeNotFound):
        restore(store, tmp_path / "dst")
    # What the killed pass finished: the files of its checkpointed manifest parts whose
    # chunks are all in packs it stored and indexed (a part can be written before the pack
    # of its last files is). How many depends on how its threads were scheduled.
    repo = Repository.open(store, None)
    index = repo.load_index()
    finished = {
        get_path(e, "p")
        for e in read_entries(repo, interrupted)
        if e["t"] == "f" and all(bytes.fromhex(ref[0]) in index for ref in e["c"])
    }
    assert len(finished) >= 20
    packs_before = set(store.list(PACKS))
    resumed = backup(store, source)
    assert resumed.resumed_from == interrupted.pass_id
    # Files the killed pass finished are not read again (the source did not change).
    assert resumed.files_reused >= len(finished)
    assert resumed.files_read <= resumed.files - len(finished)
    assert packs_before <= set(store.list(PACKS))  # finished packs kept, not redone
    assert [p.complete for p in list_passes(store, "ns/data")] == [True]
    restore(store, tmp_path / "dst")
    assert_same_tree(source, tmp_path / "dst")


def test_interrupted_passes_a_killed_pass_did_not_remove_go_with_the_next_pass(
        store, tmp_path: Path, monkeypatch, settled):
    source = tmp_path / "src"
    make_rich_tree(source, big=MiB)
    settled(source)
    first = backup(store, source)
    # An interrupted pass after it: the first one's parts, without a head.
    left = new_pass_id(first.pass_id)
    for key in store.list(pass_prefix("ns/data", first.pass_id)):
        if not key.endswith("/" + HEAD):
            name = key[len(pass_prefix("ns/data", first.pass_id)):]
            store.put_bytes(pass_prefix("ns/data", left) + name, store.get_bytes(key))
    assert [p.complete for p in list_passes(store, "ns/data")] == [True, False]

    def killed(*args):
        raise KeyboardInterrupt  # killed after its head, before removing what it superseded

    with monkeypatch.context() as patched:
        patched.setattr(backup_module, "delete_pass", killed)
        with pytest.raises(KeyboardInterrupt):
            backup(store, source)
    passes = list_passes(store, "ns/data")
    assert [(p.pass_id == left, p.complete) for p in passes] == [
        (False, True), (True, False), (False, True)]
    third = backup(store, source)
    assert [p.pass_id for p in list_passes(store, "ns/data")] == [
        first.pass_id, passes[2].pass_id, third.pass_id]
    restore(store, tmp_path / "dst")
    assert_same_tree(source, tmp_path / "dst")


class CountingStore(LocalStore):
    """A local store that counts the reads of each key."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    def get_bytes(self, key: str, *, checked: bool = False) -> bytes:
        self.reads.append(key)
        return super().get_bytes(key, checked=checked)


class PartGate(LocalStore):
    """A local store that holds the storing of a pass's manifest parts: the first until
    ``go_on`` is set, and one of them (by number) fails."""

    def __init__(self, root: Path, fail: int | None = None) -> None:
        super().__init__(root)
        self.go_on = threading.Event()
        self.fail = fail
        self.stored: list[str] = []

    def put_bytes(self, key: str, data: bytes | bytearray, *, checked: bool = False) -> None:
        if "/part-" in key:
            number = int(key.rsplit("/part-", 1)[1][:5])
            if number == 0:
                assert self.go_on.wait(30), "the pass stopped while its first part was stored"
            if number == self.fail:
                raise StoreUnreachable(f"{key}: connection reset (injected)")
            self.stored.append(key)
        super().put_bytes(key, data, checked=checked)


def test_a_pass_goes_on_while_a_manifest_part_is_stored(tmp_path: Path, monkeypatch, settled):
    """A part is stored in the background: the pass reads on meanwhile (it waited for each
    part's compression and upload before). The parts are stored one at a time, in order."""
    source = tmp_path / "src"
    for number in range(400):  # small files only: entries reach the manifest as read
        path = source / f"d{number // 100}" / f"f{number:03d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(number * 7))
    settled(source)
    store = PartGate(tmp_path / "store")
    store.check(create=True)
    real_open = files_module.open_for_reading
    reads = []

    def open_for_reading(path, dir_fd=None):  # how every read opens its file
        reads.append(path)
        # Past the first part's 50 entries and the two batches of 4 read ahead; the second
        # part waits for the first to be stored.
        if len(reads) == 80:
            store.go_on.set()
        return real_open(path, dir_fd)

    monkeypatch.setattr(files_module, "open_for_reading", open_for_reading)
    monkeypatch.setattr("migrator.volumes.manifest.PART_ENTRIES", 50)
    monkeypatch.setattr(backup_module, "BATCH_ENTRIES", 4)
    report = backup(store, source, processes=0)
    assert len(reads) == 400
    (info,) = list_passes(store, "ns/data")
    assert info.complete and info.head is not None
    parts = [part["key"] for part in info.head["parts"]]
    assert len(parts) > 5 and store.stored == parts and parts == sorted(parts)
    assert info.head["entries"] == report.files + report.dirs == 405
    restore(store, tmp_path / "dst")
    assert_same_tree(source, tmp_path / "dst")


def test_a_part_that_cannot_be_stored_fails_the_pass_and_the_next_one_completes(
        tmp_path: Path, monkeypatch, settled):
    source = tmp_path / "src"
    make_rich_tree(source, big=MiB)
    settled(source)
    store = PartGate(tmp_path / "store", fail=2)
    store.check(create=True)
    store.go_on.set()
    monkeypatch.setattr("migrator.volumes.manifest.PART_ENTRIES", 20)
    with pytest.raises(StoreUnreachable, match="part-00002"):
        backup(store, source, processes=0)
    (interrupted,) = list_passes(store, "ns/data")
    assert not interrupted.complete
    store.fail = None
    resumed = backup(store, source)
    assert resumed.resumed_from == interrupted.pass_id
    restore(store, tmp_path / "dst")
    assert_same_tree(source, tmp_path / "dst")


def test_a_pass_reads_as_many_pass_heads_after_many_passes_as_after_one(tmp_path: Path, settled):
    """Delta passes run as often as wanted: finding the pass to build on must not cost a
    request per earlier pass (it did, four times over, for every pass)."""
    source = tmp_path / "src"
    make_rich_tree(source, big=MiB)
    settled(source)
    store = CountingStore(tmp_path / "store")
    store.check(create=True)
    heads = []
    for _ in range(6):
        store.reads.clear()
        backup(store, source)
        heads.append(sum(key.endswith("/manifest.json") for key in store.reads))
    # The plan's look and the pass's at the newest pass; from the third pass on, the pass's
    # at the one before it too (interrupted passes a killed pass left: none here).
    assert heads == [0, 2, 3, 3, 3, 3], heads
    assert [p.complete for p in list_passes(store, "ns/data")] == [True] * 6
    assert volumes.plan_restore(store, "ns/data", tmp_path / "dst").info.pass_id == (
        list_passes(store, "ns/data")[-1].pass_id)


def test_paths_that_are_not_utf8_round_trip_through_entries():
    for raw in [b"", b"plain", "ünï ✓".encode(), b"\xff\xfe\x80", b"a/b\xe9/c"]:
        entry: dict = {}
        put_path(entry, "p", raw)
        assert get_path(jsoncodec.loads(jsoncodec.dumps(entry)), "p") == raw


def test_verify_names_each_difference(store, tmp_path: Path):
    source, target = tmp_path / "src", tmp_path / "dst"
    make_rich_tree(source)
    backup(store, source)
    restore(store, target)
    (target / "data" / "small" / "f020").write_bytes(b"changed")
    os.chmod(target / "data" / "small" / "f021", 0o777)
    os.unlink(target / "link-in")
    (target / "new-file").write_bytes(b"")
    sparse = target / "sparse.img"
    st = sparse.stat()
    with open(sparse, "r+b") as out:  # data where a hole was: same size, same mtime
        out.seek(1000)
        out.write(b"\x01")
    os.utime(sparse, ns=(st.st_atime_ns, st.st_mtime_ns))
    report = volumes.verify_volume(store, "ns/data", target)
    found = {d.what: d.error for d in report.differences.items}
    assert set(found) == {"data/small/f020", "data/small/f021", "link-in", "new-file",
                          "sparse.img"}
    assert "mode 777" in found["data/small/f021"] and found["link-in"] == "missing"
