"""Time to find each primitive witness (and each proof) at the default bound (issue 5).

    .venv/bin/python bench/lower_bench.py [--repeat N] [--bound K]

For every (primitive, mode) pair used by the bad-lowering suite and the sound lowering, runs the
bounded search from scratch N times (no cache) and prints the median and worst wall time, the
witness length and the outcome. Target: each witness under 1 s at the default bound.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import z3

from kvclaims.lower import primitives as P

CASES = [
    ("prioritized_lru_duration", "hard_protected"),
    ("ttl_expiry", "hard_protected"),
    ("write_no_admit", "hard_protected"),
    ("request_lifetime_pin", "hard_protected"),
    ("pin_timeout_log_only", "hard_protected"),
    ("max_merged_priority", "hard_protected"),
    ("lru_cached_blocks", "hard_protected"),
    ("offload_restore_fallback", "offloadable"),
    ("block_event_observation", "soft_priority"),
    ("hard_exclude_refusal", "hard_protected"),  # sound: bounded search + induction
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bound", type=int, default=P.DEFAULT_BOUND)
    args = ap.parse_args()
    print(f"python {platform.python_version()}, z3 {z3.get_version_string()}, "
          f"{platform.machine()}, bound {args.bound}, repeat {args.repeat}")
    P.search("lru_cached_blocks", "hard_protected", args.bound)  # warm up z3
    print(f"{'primitive':26} {'mode':15} {'outcome':9} {'rule':17} {'steps':>5} {'events':>6} "
          f"{'median s':>9} {'max s':>7}")
    worst = 0.0
    for prim, mode in CASES:
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            s = P.search(prim, mode, args.bound)
            times.append(time.perf_counter() - t)
        r = s.result
        worst = max(worst, max(times)) if r.status == "witness" else worst
        print(f"{prim:26} {mode:15} {r.status:9} {r.rule or '-':17} {r.depth:>5} "
              f"{len(r.events):>6} {statistics.median(times):>9.3f} {max(times):>7.3f}")
    print(f"slowest witness: {worst:.3f} s ({'under' if worst < 1 else 'OVER'} the 1 s target)")
    return 0 if worst < 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
