"""Velero's CLI/server and its AWS object-store plugin, built from their Go modules and cached.

Built as the proving ground builds its servers (a wrapper module, ``GOTOOLCHAIN=local``,
``-trimpath -ldflags='-s -w'``, cached in ``<cache>/bin/velero-<version>/`` with a
``.done`` marker), but only when the Velero benchmark runs: ``scripts/test`` never builds
it. Both binaries come from one wrapper module (the plugin requires Velero's own module, so
they share most of the compile work); Velero's ``replace`` of kopia applies only to its own
module, so the wrapper repeats it.

    .venv/bin/python scripts/bench/velero_build.py     # builds if missing, prints the folder
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proving_ground import config
from proving_ground.build import _done, _finish, _log, _run

VELERO_VERSION = "v1.18.3"
AWS_PLUGIN_VERSION = "v1.14.3"  # the plugin release that pairs with Velero 1.18
# Velero's go.mod replaces kopia with its fork; a replace holds only in the main module.
REPLACE = {"github.com/kopia/kopia":
           "github.com/project-velero/kopia v0.0.0-20251230033609-d946b1e75197"}
# Versions the module proxy no longer serves, raised to the next patch release that it does.
RAISE = {"k8s.io/cli-runtime": "v0.33.13"}
GO_LINE = "1.26.0"  # Velero 1.18 requires Go 1.26
# controller-runtime's manager serves metrics on :8080 unless told otherwise, which Velero
# does not do: two servers (one per cluster) would fight for the port. "0" turns it off.
LDFLAGS = "-s -w -X sigs.k8s.io/controller-runtime/pkg/metrics/server.DefaultBindAddress=0"
VELERO = "velero"
PLUGIN = "velero-plugin-for-aws"


def build_velero() -> Path:
    """The folder holding ``velero`` (CLI and server) and ``plugins/velero-plugin-for-aws``."""
    dest = config.bin_dir("velero", f"{VELERO_VERSION}-aws-{AWS_PLUGIN_VERSION.lstrip('v')}")
    if _done(dest):
        return dest
    started = time.time()
    work = config.cache_dir() / "src" / dest.name
    work.mkdir(parents=True, exist_ok=True)
    replaces = "".join(f"replace {old} => {new}\n" for old, new in REPLACE.items())
    raised = "".join(f"\t{module} {version}\n" for module, version in RAISE.items())
    (work / "go.mod").write_text(
        f"module provingground.local/velero\n\ngo {GO_LINE}\n\n"
        f"require (\n\tgithub.com/vmware-tanzu/velero {VELERO_VERSION}\n"
        f"\tgithub.com/vmware-tanzu/velero-plugin-for-aws {AWS_PLUGIN_VERSION}\n{raised})\n\n"
        f"{replaces}")
    (work / "go.sum").unlink(missing_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _log(f"building Velero {VELERO_VERSION} and its AWS plugin {AWS_PLUGIN_VERSION}")
    _run(["go", "build", "-trimpath", f"-ldflags={LDFLAGS}", "-o", str(tmp) + "/",
          f"github.com/vmware-tanzu/velero/cmd/{VELERO}",
          f"github.com/vmware-tanzu/velero-plugin-for-aws/{PLUGIN}"], work)
    # The server runs every file of its plugin directory as a plugin: the plugin alone there.
    (tmp / "plugins").mkdir()
    (tmp / PLUGIN).rename(tmp / "plugins" / PLUGIN)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    _finish(dest, f"Velero {VELERO_VERSION}", started)
    return dest


if __name__ == "__main__":
    print(build_velero())
