"""Fleet checking throughput: `kvclaims check DIR` with 1 and 2 worker processes and on a local
Ray (docs/fleet.md; results in bench/fleet.md).

    python bench/fleet_gen.py bench/out/fleet          # 1,000 instance streams
    python bench/fleet_bench.py bench/out/fleet [--ray-cpus 1 2]

Each run is one `kvclaims check DIR --quiet --format json` in a fresh process; the closing
summary gives the events and the checking time (from the first file to the last report); the
wall time adds the process's start-up (and, for --ray, starting the local Ray of that many
CPUs, which the driver does before the check). events/s = events / checking time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

KV = [os.path.join(os.path.dirname(sys.executable), "kvclaims")]


def run(args: list[str], env: dict[str, str] | None = None) -> dict:
    start = time.perf_counter()
    p = subprocess.run(KV + args, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    summary = json.loads(p.stdout.splitlines()[-1])
    assert summary["kind"] == "summary", p.stderr
    return {"exit": p.returncode, "wall": wall, **summary}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("fleet")
    ap.add_argument("--ray-cpus", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--jobs", type=int, nargs="*", default=[1, 2])
    a = ap.parse_args()
    rows = []
    base = ["check", a.fleet, "--quiet", "--format", "json"]
    for j in a.jobs:
        rows.append((f"--jobs {j}", run(base + ["--jobs", str(j)])))
    for c in a.ray_cpus:
        # A local Ray of c CPUs: the driver starts it with ray.init(num_cpus=c).
        code = ("import ray, sys; ray.init(num_cpus=%d, include_dashboard=False, "
                "log_to_driver=False); from kvclaims.cli import main; "
                "sys.argv=['kvclaims', *sys.argv[1:]]; main()" % c)
        start = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", code, *base, "--ray"], capture_output=True,
                           text=True)
        wall = time.perf_counter() - start
        summary = json.loads(p.stdout.splitlines()[-1])
        rows.append((f"--ray ({c} CPU)", {"exit": p.returncode, "wall": wall, **summary}))
    print("| run | files | events | checking s | events/s | wall s | exit |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(f"| `{name}` | {r['files']:,} | {r['events']:,} | {r['seconds']:.2f} | "
              f"{r['events'] / r['seconds']:,.0f} | {r['wall']:.2f} | {r['exit']} |")


if __name__ == "__main__":
    main()
