"""Container images for the real nodes, built on this machine without a registry.

Three images, each written as an OCI image layout tar (``oci-layout``, ``index.json``,
``blobs/sha256/``) and loaded into a node's containerd with ``ctr images import``:

- ``busybox``: Debian's static busybox with its applet links (sh, httpd, nc, ...), for test
  apps; pods use it with ``imagePullPolicy: Never`` or ``IfNotPresent``;
- ``pause``: the same layer, whose command waits for a signal: the pods' sandbox image;
- ``mover``: a Debian root with Python and the project's dependencies (a layer cached by the
  hash of those dependencies, made once with debootstrap and pip), plus a thin layer with the
  current ``migrator`` package, made at every start so the image always holds the code under
  test. ``python -m migrator`` and the ``migrator`` command work inside it.

Layers are uncompressed tars: their digest is their diff id, and nothing is compressed only to
be decompressed again a second later on the same disk.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from . import config, host

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Bump when the recipe of the mover's base layer changes (the cache key includes it).
MOVER_BASE_RECIPE = 1
MOVER_VENV = "/opt/venv"
# Debian packages of the mover's root on top of debootstrap's minimal base.
MOVER_PACKAGES = ("python3", "python3-venv", "ca-certificates")


def _log(msg: str) -> None:
    print(f"[proving-ground] {msg}", file=sys.stderr, flush=True)


# --- OCI image layout --------------------------------------------------------------------


class Layer:
    """One uncompressed layer tar on disk, with its digest (kept beside it once computed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size
        sidecar = path.with_name(path.name + ".sha256")
        if sidecar.exists() and sidecar.stat().st_mtime >= path.stat().st_mtime:
            self.digest = sidecar.read_text().strip()
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            self.digest = "sha256:" + h.hexdigest()
            sidecar.write_text(self.digest + "\n")


def _json_blob(data: dict) -> tuple[bytes, str]:
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return raw, "sha256:" + hashlib.sha256(raw).hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def write_oci_archive(out: BinaryIO, name: str, layers: list[Layer], image_config: dict,
                      omit: frozenset[str] = frozenset()) -> str:
    """Write one image as an OCI layout tar to ``out``; returns the manifest digest.

    Layers whose digest is in ``omit`` are named by the manifest but left out of the tar
    (the store already holds them)."""
    cfg = {"architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
           "config": image_config,
           "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]}}
    cfg_raw, cfg_digest = _json_blob(cfg)
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST,
                "config": {"mediaType": MEDIA_CONFIG, "digest": cfg_digest, "size": len(cfg_raw)},
                "layers": [{"mediaType": MEDIA_LAYER, "digest": layer.digest, "size": layer.size}
                           for layer in layers]}
    man_raw, man_digest = _json_blob(manifest)
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": MEDIA_MANIFEST, "digest": man_digest, "size": len(man_raw),
        "platform": {"architecture": "amd64", "os": "linux"},
        # containerd takes its own annotation as the full name; the OCI one is the standard tag.
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}}]}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add_bytes(tar, "index.json", json.dumps(index).encode())
        for layer in layers:
            if layer.digest in omit:
                continue
            info = tarfile.TarInfo("blobs/sha256/" + layer.digest.split(":", 1)[1])
            info.size, info.mode, info.mtime = layer.size, 0o644, 0
            with open(layer.path, "rb") as f:
                tar.addfile(info, f)
        _add_bytes(tar, "blobs/sha256/" + cfg_digest.split(":", 1)[1], cfg_raw)
        _add_bytes(tar, "blobs/sha256/" + man_digest.split(":", 1)[1], man_raw)
    return man_digest


class _LayerWriter:
    """A deterministic layer tar: fixed times and owners, entries in the order added."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime, info.uid, info.gid = kind, mode, 0, 0, 0
        return info

    def directory(self, name: str, mode: int = 0o755) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)

    def close(self) -> None:
        self.tar.close()


# --- busybox and pause ---------------------------------------------------------------------


def _busybox_binary() -> Path:
    path = Path("/bin/busybox")
    if not path.exists():
        raise SystemExit("/bin/busybox is missing: scripts/bootstrap installs Debian's busybox-static")
    kind = subprocess.run(["file", "-b", str(path)], capture_output=True, text=True).stdout \
        if shutil.which("file") else ""
    if "dynamically linked" in kind:
        raise SystemExit("/bin/busybox is dynamically linked: the image needs busybox-static")
    return path


def busybox_layer() -> Layer:
    """A root with a static busybox and a link for each of its applets (cached by binary)."""
    binary = _busybox_binary()
    data = binary.read_bytes()
    key = hashlib.sha256(data).hexdigest()[:16]
    dest = config.cache_dir() / "images" / f"busybox-{key}.tar"
    if dest.exists():
        return Layer(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    applets = subprocess.run([str(binary), "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    tmp = dest.with_suffix(".tmp")
    layer = _LayerWriter(tmp)
    for directory in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "var",
                      "var/www", "proc", "sys", "dev", "data"):
        layer.directory(directory, 0o700 if directory == "root" else 0o755)
    layer.directory("tmp", 0o1777)
    layer.file("bin/busybox", data, 0o755)
    for applet in sorted(set(applets)):
        if applet != "bin/busybox":
            layer.symlink(applet, "/bin/busybox")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                             b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    layer.close()
    tmp.rename(dest)
    return Layer(dest)


PAUSE_COMMAND = ["/bin/sh", "-c", 'trap "exit 0" TERM INT; sleep 2147483647 & wait']


# --- the mover ---------------------------------------------------------------------------


def _project_dependencies() -> list[str]:
    project = tomllib.loads((config.REPO / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def _host_suite_and_mirror() -> tuple[str, str]:
    """The Debian release of this machine and the archive its apt already uses."""
    release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines()
                   if "=" in line)
    suite = release.get("VERSION_CODENAME", "").strip('"')
    if not suite:
        raise SystemExit("cannot tell this machine's Debian release (no VERSION_CODENAME in /etc/os-release)")
    texts = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    for text in texts:  # deb822 stanzas
        for stanza in text.split("\n\n"):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            if "deb" in fields.get("Types", "").split() and suite in fields.get("Suites", "").split():
                return suite, fields["URIs"].split()[0]
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]:
        if path.exists():
            for line in path.read_text().splitlines():
                parts = re.sub(r"\[[^]]*\]", "", line).split()
                if len(parts) >= 3 and parts[0] == "deb" and parts[2] == suite:
                    return suite, parts[1]
    raise SystemExit(f"no apt source for Debian {suite} on this machine: debootstrap needs one")


def mover_base_key() -> str:
    suite, _ = _host_suite_and_mirror()
    spec = {"recipe": MOVER_BASE_RECIPE, "suite": suite, "packages": MOVER_PACKAGES,
            "dependencies": sorted(_project_dependencies())}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def mover_base_dir() -> Path:
    return config.cache_dir() / "images" / f"mover-base-{mover_base_key()}"


def _run(cmd: list[str], **kwargs) -> str:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{tail}")
    return proc.stdout


def _make_mover_root(root: Path, suite: str, mirror: str) -> dict:
    _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(MOVER_PACKAGES),
          suite, str(root), mirror])
    # pip inside the root reaches the package index as this machine does: same resolver,
    # same trusted certificates (the machine's may include a local authority). Both go.
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    host_ca = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    shutil.copy(host_ca, root / "tmp/host-ca.crt")
    env = {"PATH": PATH_ENV.split("=", 1)[1], "HOME": "/root", "LANG": "C.UTF-8",
           "PIP_NO_CACHE_DIR": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
           "PIP_CERT": "/tmp/host-ca.crt"}
    for key in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "HTTPS_PROXY",
                "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy", "no_proxy"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    _run(["chroot", str(root), "python3", "-m", "venv", MOVER_VENV], env=env)
    # The versions this checkout's own environment resolved (the ones the tests run with):
    # the image gets the same, and pip has nothing to search for.
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True).stdout
    (root / "tmp/constraints.txt").write_text(frozen)
    _run(["chroot", str(root), f"{MOVER_VENV}/bin/pip", "install", "-q", "-c", "/tmp/constraints.txt",
          *_project_dependencies()], env=env)
    info = json.loads(_run(["chroot", str(root), f"{MOVER_VENV}/bin/python", "-c",
                            "import json, sys, sysconfig; print(json.dumps({"
                            "'python': sys.version.split()[0], "
                            "'site_packages': sysconfig.get_paths()['purelib']}))"], env=env))
    (root / "etc/resolv.conf").unlink()
    (root / "tmp/host-ca.crt").unlink()
    (root / "tmp/constraints.txt").unlink()
    for junk in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                 "usr/share/info", "usr/share/locale", "var/log", "root/.cache"):
        shutil.rmtree(root / junk, ignore_errors=True)
    for directory in ("var/cache/apt", "var/lib/apt/lists", "var/log"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    # Device nodes are the runtime's business (it mounts /dev in every container).
    host.umount_under(root / "dev")
    for entry in (root / "dev").iterdir():
        if not entry.is_dir() or entry.is_symlink():
            entry.unlink()
    return info


def build_mover_base() -> Path:
    """Debian's minimal root with Python and a virtual environment holding the project's
    dependencies, as one layer tar; made once per set of dependencies."""
    dest = mover_base_dir()
    if (dest / ".done").exists():
        return dest
    started = time.time()
    suite, mirror = _host_suite_and_mirror()
    work = dest.with_name(dest.name + ".tmp")
    host.safe_rmtree(work)  # a killed debootstrap leaves /proc (and maybe /dev) mounted in it
    root = work / "root"
    root.mkdir(parents=True)
    _log(f"building the mover's base: Debian {suite} (debootstrap) with Python and the "
         "project's dependencies")
    try:
        info = _make_mover_root(root, suite, mirror)
    finally:
        host.umount_under(root)
    # GNU tar keeps owners, modes, links and hard links exactly; names sorted, times kept.
    _run(["tar", "-C", str(root), "--numeric-owner", "--sort=name", "-cf", str(work / "layer.tar"),
          *sorted(os.listdir(root))])
    layer = Layer(work / "layer.tar")
    info.update({"suite": suite, "dependencies": _project_dependencies(), "size": layer.size,
                 "digest": layer.digest, "built_in_seconds": round(time.time() - started, 1)})
    (work / "image.json").write_text(json.dumps(info, indent=2))
    host.safe_rmtree(root)
    shutil.rmtree(dest, ignore_errors=True)
    work.rename(dest)
    (dest / ".done").write_text("ok\n")
    _log(f"built the mover's base ({layer.size / 2**20:.0f} MiB, Python {info['python']}) "
         f"in {time.time() - started:.0f}s -> {dest}")
    return dest


def _package_files() -> Iterable[Path]:
    package = config.REPO / "migrator"
    for path in sorted(package.rglob("*")):
        if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
            continue
        yield path


def mover_code_layer(directory: Path) -> Layer:
    """The current ``migrator`` package, installed into the base's environment as pip would:
    the package, its dist-info with the console script's entry point, and the script."""
    base = json.loads((mover_base_dir() / "image.json").read_text())
    site = base["site_packages"].lstrip("/")
    version = re.search(r'__version__\s*=\s*"([^"]+)"',
                        (config.REPO / "migrator/__init__.py").read_text()).group(1)
    project = tomllib.loads((config.REPO / "pyproject.toml").read_text())["project"]
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "mover-code.tar"
    layer = _LayerWriter(path)
    parents: set[str] = set()

    def ensure_parents(name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in parents:
                parents.add(parent)
                layer.directory(parent)

    for source in _package_files():
        name = f"{site}/{source.relative_to(config.REPO).as_posix()}"
        ensure_parents(name + "/x" if source.is_dir() else name)
        if source.is_file():
            layer.file(name, source.read_bytes())
    dist = f"{site}/migrator-{version}.dist-info"
    ensure_parents(dist + "/x")
    scripts = project.get("scripts", {})
    layer.file(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: migrator\nVersion: {version}\n"
                                   f"Requires-Python: {project.get('requires-python', '')}\n".encode())
    layer.file(f"{dist}/INSTALLER", b"migrator-proving-ground\n")
    layer.file(f"{dist}/top_level.txt", b"migrator\n")
    layer.file(f"{dist}/entry_points.txt", ("[console_scripts]\n" + "".join(
        f"{name} = {target}\n" for name, target in scripts.items())).encode())
    for name, target in scripts.items():
        module, func = target.split(":")
        ensure_parents(f"{MOVER_VENV.lstrip('/')}/bin/{name}")
        layer.file(f"{MOVER_VENV.lstrip('/')}/bin/{name}",
                   f"#!{MOVER_VENV}/bin/python\nimport sys\nfrom {module} import {func}\n"
                   f"sys.exit({func}())\n".encode(), 0o755)
    layer.close()
    return Layer(path)


# --- what a node loads ---------------------------------------------------------------------


def node_images(directory: Path) -> dict[str, tuple[list[Layer], dict]]:
    """Every image a real node gets, by name: its layers and its config (for this start)."""
    bb = busybox_layer()
    mover_base = Layer(mover_base_dir() / "layer.tar")
    mover_code = mover_code_layer(directory)
    return {
        config.IMAGES["busybox"]: ([bb], {"Env": [PATH_ENV], "Cmd": ["sh"], "WorkingDir": "/"}),
        config.IMAGES["pause"]: ([bb], {"Env": [PATH_ENV], "Entrypoint": PAUSE_COMMAND,
                                        "WorkingDir": "/"}),
        config.IMAGES["mover"]: ([mover_base, mover_code], {
            "Env": [f"PATH={MOVER_VENV}/bin:" + PATH_ENV.split("=", 1)[1], "LANG=C.UTF-8",
                    "PYTHONUNBUFFERED=1"],
            "Entrypoint": ["migrator"], "WorkingDir": "/"}),
    }


# Layers at least this big are not copied into each node's store at every start.
_SHARED_LAYER_SIZE = 16 * 2**20


def _ctr(address: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["ctr", "-a", address, "-n", "k8s.io", *args], capture_output=True, **kwargs)


def _share_layer(address: str, content_root: Path, layer: Layer) -> bool:
    """Put a cached layer into a containerd's store without copying it.

    The layer file is hard-linked into the store's blob directory, then ingested with its
    digest: containerd finds the blob there (its default content sharing policy is
    "shared") and only records it in the namespace; ``ctr`` seeks past the bytes it was
    given. An import that names the layer no longer needs to carry it. Where no link can be
    made (another file system), the ingest copies the bytes as usual."""
    blobs = content_root / "io.containerd.content.v1.content" / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    target = blobs / layer.digest.split(":", 1)[1]
    if not target.exists():
        try:
            os.link(layer.path, target)
        except OSError:
            pass
    with open(layer.path, "rb") as data:
        return _ctr(address, "content", "ingest", "--expected-size", str(layer.size),
                    "--expected-digest", layer.digest, f"share-{layer.digest}", stdin=data).returncode == 0


def _in_store(address: str, digests: set[str]) -> bool:
    listed = _ctr(address, "content", "ls", "--quiet", text=True).stdout.split()
    return digests <= set(listed)


def import_images(ctr_address: str, images: dict[str, tuple[list[Layer], dict]], log: Path,
                  content_root: Path | None = None) -> None:
    """Load images into one containerd (namespace ``k8s.io``, where the kubelet looks).

    Streamed to ``ctr images import -``; images are not unpacked here: containerd unpacks
    an image when the first container of it is created, so the mover's large base costs
    nothing at start. Given the containerd's root, large layers are shared with the cache
    instead of copied (see ``_share_layer``).
    """
    for name, (layers, image_config) in images.items():
        shared = frozenset(layer.digest for layer in layers if content_root is not None
                           and layer.size >= _SHARED_LAYER_SIZE
                           and _share_layer(ctr_address, content_root, layer))
        _import_one(ctr_address, name, layers, image_config, log, shared)
        if shared and not _in_store(ctr_address, set(shared)):
            # Collected as garbage before the image referred to it: import it whole.
            _import_one(ctr_address, name, layers, image_config, log, frozenset())


def _import_one(ctr_address: str, name: str, layers: list[Layer], image_config: dict, log: Path,
                omit: frozenset[str]) -> None:
    with open(log, "ab") as out:
        proc = subprocess.Popen(["ctr", "-a", ctr_address, "-n", "k8s.io", "images", "import",
                                 "--no-unpack", "-"], stdin=subprocess.PIPE, stdout=out,
                                stderr=subprocess.STDOUT)
        try:
            write_oci_archive(proc.stdin, name, layers, image_config, omit)
        finally:
            proc.stdin.close()
        if proc.wait() != 0:
            raise SystemExit(f"ctr could not import {name} (see {log})")
