"""What an installed migrator carries: the wheel built from this tree holds the manifests the
preflight permission check reads, and the check finds them outside the source tree."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def test_a_wheel_carries_the_manifests_and_the_permission_check_reads_them(tmp_path: Path):
    source = tmp_path / "src"
    shutil.copytree(REPO / "migrator", source / "migrator",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    shipped = sorted(path.name for path in (REPO / "migrator/manifests").glob("*.yaml"))
    packed = sorted(name.rsplit("/", 1)[1] for name in zipfile.ZipFile(wheel).namelist()
                    if name.startswith("migrator/manifests/"))
    assert shipped and packed == shipped

    installed = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(installed), str(wheel)], check=True, capture_output=True)
    probe = ("import migrator; from migrator.migrate.preflight import permissions as p; "
             "print(migrator.__file__); print(len(p.load_role('rbac.yaml', 'exporter').accesses))")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                         text=True, env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    where, accesses = run.stdout.split()
    assert Path(where).is_relative_to(installed)  # the installed copy, not this tree
    assert int(accesses) > 0
