"""Build the proving ground's servers from Go modules, cached by version.

Every server is built once per version into ``<cache>/bin/<name>-<version>/`` and
reused afterwards; a ``.done`` marker is written only when the build succeeded, so an
interrupted build is simply redone.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import config


def _log(msg: str) -> None:
    print(f"[proving-ground] {msg}", file=sys.stderr, flush=True)


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GOTOOLCHAIN"] = "local"  # never download another toolchain
    # -mod=mod lets the wrapper modules fill in go.sum as they go, including the `go list`
    # calls openapi-gen makes through go/build.
    env["GOFLAGS"] = "-mod=mod -buildvcs=false"
    env["GO111MODULE"] = "on"
    env["CGO_ENABLED"] = "0"
    return env


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=_go_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-60:])
        raise SystemExit(f"command failed in {cwd}: {' '.join(cmd)}\n{tail}")


def _download(path: str, version: str, cwd: Path) -> dict:
    """Download one module; its go.mod file (``GoMod``) and source directory (``Dir``)."""
    out = subprocess.run(["go", "mod", "download", "-json", f"{path}@{version}"], cwd=cwd,
                         env=_go_env(), check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def _staging_modules(kube_gomod: Path) -> list[str]:
    """The k8s.io modules that k8s.io/kubernetes replaces with its staging directories."""
    text = kube_gomod.read_text()
    return sorted(set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", text, re.M)))


def _done(dest: Path) -> bool:
    return (dest / ".done").exists()


def _finish(dest: Path, name: str, started: float) -> None:
    (dest / ".done").write_text(json.dumps({"built_in_seconds": round(time.time() - started, 1)}))
    _log(f"built {name} in {time.time() - started:.0f}s -> {dest}")


# Staging modules whose API packages feed the API server's generated OpenAPI definitions
# (the same set Kubernetes' own Makefile scans for `+k8s:openapi-gen` tags).
_OPENAPI_MODULES = ("api", "apimachinery", "apiextensions-apiserver", "kube-aggregator", "metrics",
                    "kube-scheduler", "kube-controller-manager", "kubelet", "cloud-provider",
                    "controller-manager", "apiserver", "component-base", "cri-api")
_OPENAPI_TAG = re.compile(r"^// *\+k8s:openapi-gen=", re.M)


def _tagged_packages(root: Path, import_prefix: str) -> list[str]:
    found = set()
    for path in root.rglob("*.go"):
        if path.name.endswith("_test.go") or "/testdata/" in str(path):
            continue
        if _OPENAPI_TAG.search(path.read_text(errors="replace")):
            rel = path.parent.relative_to(root).as_posix()
            found.add(import_prefix + ("/" + rel if rel != "." else ""))
    return sorted(found)


def _generate_openapi(work: Path, kube_dir: Path, staging_version: str) -> None:
    """Releases before the generated OpenAPI definitions were committed need them made:
    copy k8s.io/kubernetes beside the wrapper, generate with the release's own
    openapi-gen (module mode), and build against the copy."""
    local = work / "kubernetes"
    if not local.exists():
        shutil.copytree(kube_dir, local)
        for path in [local, *local.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    with open(work / "go.mod", "a") as gomod:
        gomod.write("\nreplace k8s.io/kubernetes => ./kubernetes\n")
    _run(["go", "build", "-trimpath", "-o", str(work / "tools") + "/",
          "k8s.io/kube-openapi/cmd/openapi-gen"], work)
    inputs = _tagged_packages(local / "pkg" / "apis", "k8s.io/kubernetes/pkg/apis")
    for mod in _OPENAPI_MODULES:
        source = Path(_download(f"k8s.io/{mod}", staging_version, work)["Dir"])
        inputs += _tagged_packages(source, f"k8s.io/{mod}")
    (work / "boilerplate.txt").write_text("// Generated for the migrator proving ground.\n")
    gen = work / "gen"
    shutil.rmtree(gen, ignore_errors=True)
    _run([str(work / "tools" / "openapi-gen"), "-i", ",".join(inputs),
          "-p", "k8s.io/kubernetes/pkg/generated/openapi", "-O", "zz_generated.openapi",
          "-h", str(work / "boilerplate.txt"), "-o", str(gen), "-r", str(work / "violations.report")],
         work)
    generated = gen / "k8s.io/kubernetes/pkg/generated/openapi/zz_generated.openapi.go"
    for must in ("k8s.io/api/core/v1.Pod", "apiextensions/v1.CustomResourceDefinition"):
        if must not in generated.read_text():
            raise SystemExit(f"openapi-gen left out {must}: see {work}/gen and the go list errors above")
    shutil.copy(generated, local / "pkg/generated/openapi/zz_generated.openapi.go")
    _log(f"generated OpenAPI definitions for {len(inputs)} API packages")


def _kube_wrapper(version: str) -> tuple[Path, list[str]]:
    """The wrapper module that builds one release's binaries, and the linker flags that
    stamp their version. Made once; the node's build reuses the control plane's."""
    minor = int(version.split(".")[1])
    work = config.cache_dir() / "src" / f"kubernetes-{version}"
    ldflags = ["-s", "-w", "-checklinkname=0"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        ldflags += [f"-X {pkg}.gitVersion=v{version}", f"-X {pkg}.gitMajor=1",
                    f"-X {pkg}.gitMinor={minor}", f"-X {pkg}.gitTreeState=clean",
                    f"-X {pkg}.buildDate=1970-01-01T00:00:00Z"]
    gomod = work / "go.mod"
    if (gomod.exists() and f"k8s.io/kubernetes v{version}" in gomod.read_text()
            and (work / ".wrapper-ready").exists()):
        return work, ldflags
    work.mkdir(parents=True, exist_ok=True)
    (work / ".wrapper-ready").unlink(missing_ok=True)
    (work / "go.mod").write_text("module provingground.local/kubernetes\n\ngo 1.16\n")
    (work / "go.sum").unlink(missing_ok=True)
    kube = _download("k8s.io/kubernetes", f"v{version}", work)
    kube_gomod, kube_dir = Path(kube["GoMod"]), Path(kube["Dir"])
    staging = _staging_modules(kube_gomod)
    # The go line sets GODEBUG defaults: each release gets the line its own go.mod has.
    go_line = re.search(r"^go (\S+)", kube_gomod.read_text(), re.M).group(1)
    lines = ["module provingground.local/kubernetes", "", f"go {go_line}", "",
             "require (", f"\tk8s.io/kubernetes v{version}"]
    if minor < 24:
        # reflect2 v1.0.1 crashes at run time on Go >= 1.18.
        lines.append("\tgithub.com/modern-go/reflect2 v1.0.2")
    lines += [")", "", "replace ("]
    staging_version = f"v0.{minor}.{version.split('.')[2]}"
    lines += [f"\t{mod} => {mod} {staging_version}" for mod in staging]
    lines += [")", ""]
    (work / "go.mod").write_text("\n".join(lines))
    if not (kube_dir / "pkg/generated/openapi/zz_generated.openapi.go").exists():
        _generate_openapi(work, kube_dir, staging_version)
    (work / ".wrapper-ready").write_text("ok\n")
    return work, ldflags


def _wrapper_built_before(version: str) -> bool:
    """A wrapper left by a control plane build (before the ready marker existed)."""
    work = config.cache_dir() / "src" / f"kubernetes-{version}"
    gomod = work / "go.mod"
    if not (_done(config.bin_dir("kubernetes", version)) and gomod.exists()):
        return False
    text = gomod.read_text()
    generated = work / "kubernetes/pkg/generated/openapi/zz_generated.openapi.go"
    return f"k8s.io/kubernetes v{version}" in text and (
        "=> ./kubernetes" not in text or generated.exists())


def build_kubernetes(version: str) -> Path:
    """The control plane (API server, controller manager, scheduler) and kubectl of one
    release, in one build: they share most of the compile work."""
    dest = config.bin_dir("kubernetes", version)
    if _done(dest):
        return dest
    started = time.time()
    work, ldflags = _kube_wrapper(version)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _log(f"building Kubernetes v{version} (control plane and kubectl)")
    _run(["go", "build", "-trimpath", "-tags", "providerless",
          f"-ldflags={' '.join(ldflags)}", "-o", str(tmp) + "/",
          "k8s.io/kubernetes/cmd/kube-apiserver",
          "k8s.io/kubernetes/cmd/kube-controller-manager",
          "k8s.io/kubernetes/cmd/kube-scheduler",
          "k8s.io/kubernetes/cmd/kubectl"], work)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    _finish(dest, f"Kubernetes v{version}", started)
    return dest


def build_kube_node(version: str) -> Path:
    """The kubelet and kube-proxy of one release, from the control plane's wrapper module
    (so they share its downloads and most of its compile cache). Cached apart from the
    control plane, in ``kubenode-<version>``."""
    dest = config.bin_dir("kubenode", version)
    if _done(dest):
        return dest
    started = time.time()
    work = config.cache_dir() / "src" / f"kubernetes-{version}"
    if _wrapper_built_before(version) and not (work / ".wrapper-ready").exists():
        (work / ".wrapper-ready").write_text("ok\n")
    work, ldflags = _kube_wrapper(version)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    minor = int(version.split(".")[1])
    # dockerless leaves out the 1.20-1.23 kubelets' dockershim: nodes talk CRI to containerd.
    tags = "providerless,dockerless" if minor < 24 else "providerless"
    _log(f"building Kubernetes v{version} (kubelet and kube-proxy)")
    _run(["go", "build", "-trimpath", "-tags", tags, f"-ldflags={' '.join(ldflags)}",
          "-o", str(tmp) + "/", "k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-proxy"],
         work)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    _finish(dest, f"kubelet and kube-proxy v{version}", started)
    return dest


def _build_go_main(name: str, module: str, version: str, packages: list[str],
                   rename: dict[str, str] | None = None, go_line: str = "1.24") -> Path:
    dest = config.bin_dir(name, version)
    if _done(dest):
        return dest
    started = time.time()
    work = config.cache_dir() / "src" / f"{name}-{version}"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(
        f"module provingground.local/{name}\n\ngo {go_line}\n\nrequire {module} {version}\n")
    (work / "go.sum").unlink(missing_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _log(f"building {name} {version}")
    _run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(tmp) + "/",
          *packages], work)
    for old, new in (rename or {}).items():
        (tmp / old).rename(tmp / new)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    _finish(dest, f"{name} {version}", started)
    return dest


def build_etcd() -> Path:
    return _build_go_main("etcd", "go.etcd.io/etcd/server/v3", config.ETCD_VERSION,
                          ["go.etcd.io/etcd/server/v3"], rename={"server": "etcd"})


def build_kwok() -> Path:
    return _build_go_main("kwok", "sigs.k8s.io/kwok", config.KWOK_VERSION,
                          ["sigs.k8s.io/kwok/cmd/kwok"])


def build_minio() -> Path:
    return _build_go_main("minio", "github.com/minio/minio", config.MINIO_VERSION,
                          ["github.com/minio/minio"])
