"""The volume mover's backups, the code of a git revision against the code as it is, side by
side in one run: what a change of the mover's own does, apart from how fast the machine
runs that day.

On the bench's own MinIO (see ``volumes_bench.object_store``) and a fresh journaled ext4
holding the small tree (``volumes_bench.make_small``, ``--files`` files) or, with ``--tree
mixed``, the mixed one (``volumes_bench.make_mixed``, ``--mixed-gib``), each round gives
each code base a bucket of its own and runs, alternating which goes first: a full backup,
then a 1 % change of the tree (``volumes_bench.change_tree``, made once for both), an
incremental pass, and a pass with nothing changed. Wall time of each command as a user runs
it (``python -m migrator volumes backup``, encrypted, byte-compiled), every round printed
and the medians at the end. The revision's code is checked out in a worktree of its own.

    .venv/bin/python scripts/bench/volumes_side_by_side.py --base REV [--tree small|mixed]
        [--files 200000] [--mixed-gib 2] [--rounds 3] [--work DIR]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import volumes_bench as bench

STEPS = ("full", "incremental", "nothing changed")


def backup(code: Path, tree: Path, bucket: bench.Bucket) -> float:
    """Seconds of one ``volumes backup`` of ``tree`` by the code in ``code``."""
    env = {**bucket.env(), "MIGRATOR_ENCRYPT_KEY": bench.KEY_HEX}
    command = [sys.executable, "-m", "migrator", "volumes", "backup", str(tree), "--name",
               "bench/side", "--store", f"s3://{bucket.name}/vol", "-o", "json"]
    started = time.monotonic()
    subprocess.run(command, env=env, cwd=code, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--tree", choices=("small", "mixed"), default="small")
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument("--mixed-gib", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/migrator-volumes-side"))
    args = parser.parse_args()
    args.store_server = "own"
    args.work.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="base-", dir=args.work))
    subprocess.run(["git", "-C", str(bench.REPO), "worktree", "add", "--detach", str(base),
                    args.base], check=True, capture_output=True)
    codes = {args.base: base, "now": bench.REPO}
    for code in codes.values():
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(code / "migrator")],
                       check=True, stdout=subprocess.DEVNULL)
    place = args.work / "tree"
    place.mkdir(exist_ok=True)
    times: dict[str, dict[str, list[float]]] = {
        name: {step: [] for step in STEPS} for name in codes}
    try:
        if args.tree == "mixed":
            bench.fresh_filesystem(place, int((args.mixed_gib + 2) * 1024) * bench.MiB)
            bench.make_mixed(place / "tree", args.mixed_gib)
        else:
            bench.fresh_filesystem(place, 4 * 1024 * bench.MiB)
            bench.make_small(place / "tree", args.files)
        time.sleep(2.5)  # every file older than the mover's "just modified" window
        os.sync()
        with bench.object_store(args) as s3:
            for number in range(args.rounds):
                order = list(codes) if number % 2 == 0 else list(codes)[::-1]
                buckets = {name: bench.Bucket(s3) for name in codes}
                try:
                    for step in STEPS:
                        if step == "incremental":
                            bench.change_tree(place / "tree", seed=number + 1)
                            time.sleep(2.5)
                        for name in order:
                            times[name][step].append(
                                backup(codes[name], place / "tree", buckets[name]))
                finally:
                    for bucket in buckets.values():
                        bucket.remove()
                print(f"round {number + 1}: " + "; ".join(
                    f"{name} " + ", ".join(f"{step} {times[name][step][-1]:.2f} s"
                                          for step in STEPS) for name in codes), flush=True)
    finally:
        bench.release_filesystem(place)
        shutil.rmtree(place, ignore_errors=True)
        subprocess.run(["git", "-C", str(bench.REPO), "worktree", "remove", "--force",
                        str(base)], check=False, capture_output=True)
    tree = (f"the mixed tree ({args.mixed_gib:g} GiB)" if args.tree == "mixed"
            else f"{args.files:,} small files")
    print(f"\nmedians of {args.rounds} rounds, {tree}")
    print("code | " + " | ".join(STEPS))
    for name in codes:
        print(f"{name} | " + " | ".join(
            f"{statistics.median(times[name][step]):.2f} s" for step in STEPS))


if __name__ == "__main__":
    main()
