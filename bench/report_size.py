"""Size of the JSON report of a batched trace (issue 22, item 3; docs/partial.md, "Which parts
the report details").

    .venv/bin/python bench/report_size.py [--sizes 100 1000 10000]

The trace: a soft claim on two blocks, then N batches of three victims of blocks no claim holds
(their order changes no finding) and one conflicting batch (the claim's harm and the victim it
reports: harm first conforms, victim first is a silent loss; the verdict is inconclusive). Prints,
per N, the bytes of `kvclaims check --format json`'s report, its verdict and the wall time.
Run the same script with PYTHONPATH pointing at another checkout's checker/ to measure it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KVCLAIMS = ROOT / ".venv" / "bin" / "kvclaims"


def trace(n: int) -> str:
    lines = ["kvtrace 1",
             "claim claim:r accepted mode=soft_priority required=2 "
             "predicate=leading_prefix_at_least(2) prefix=p usable=8",
             "block 1 materialized claim=claim:r prefix=p position=0",
             "block 2 materialized claim=claim:r prefix=p position=1",
             "claim claim:r materialized",
             "active a admitted required=7 usable=8"]
    block = 100
    for _ in range(n):
        lines.append("batch {")
        for _ in range(3):
            lines.append(f"block {block} victim request=a reason=cached_prefix_reuse usable=8")
            block += 1
        lines.append("}")
    lines += ["batch {", "claim claim:r harmed",
              "block 2 victim request=a reason=cached_prefix_reuse usable=8", "}",
              "active a refused"]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    args = ap.parse_args()
    print(f"{'batches':>8} {'trace bytes':>12} {'report bytes':>13} {'verdict':>13} {'seconds':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"steps-{n}.kvt"
            path.write_text(trace(n))
            t0 = time.perf_counter()
            res = subprocess.run([str(KVCLAIMS), "check", "--format", "json", str(path)],
                                 capture_output=True, text=True)
            secs = time.perf_counter() - t0
            line = res.stdout.splitlines()[0]
            doc = json.loads(line)
            print(f"{n:>8} {path.stat().st_size:>12} {len(line.encode()):>13} "
                  f"{doc['verdict']:>13} {secs:>8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
