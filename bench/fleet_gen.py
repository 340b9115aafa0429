"""Generate a simulated fleet: N instance streams, one JSON Lines file each (docs/fleet.md).

Each stream is the corpus pattern of bench/gen_jsonl.py (per round a 60-block resident prefix
under a hard claim, an attributed refusal, a demotion, then evictions with post-release loss
reports; about 264 events a round), ROUNDS rounds long, with the instance's name as its
`run_id`. Files go to OUT/instance-NNNN.jsonl, spread over OUT/rack-NN/ directories of 100 (a
directory argument to `kvclaims check` walks them in sorted order).

    python bench/fleet_gen.py [--instances 1000] [--rounds 1] OUT
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_jsonl import rounds  # noqa: E402

PER_ROUND = 264  # events of one round of gen_jsonl.rounds (its default geometry)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    # One stream's text, made once; each instance differs by its run_id only.
    body = "\n".join(rounds(a.rounds * PER_ROUND)) + "\n"
    events = body.count("\n")
    for i in range(a.instances):
        rack = os.path.join(a.out, f"rack-{i // 100:02d}")
        os.makedirs(rack, exist_ok=True)
        with open(os.path.join(rack, f"instance-{i:04d}.jsonl"), "w") as fh:
            fh.write(body.replace('"run_id":"bench"', f'"run_id":"instance-{i:04d}"'))
    print(f"{a.instances} streams of {events} events ({a.instances * events:,} events) in "
          f"{a.out}")


if __name__ == "__main__":
    main()
