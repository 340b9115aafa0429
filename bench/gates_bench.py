"""The `--require` gates over offload histories of growing length (issue 22 item 4): time per gate.

`python bench/gates_bench.py [--sizes 1000 10000 100000] [--gates NAME ...] [--claims-shape]
[--checker DIR]` generates, with bench/gen_offload.py, a trace of about N offload events (one
claim with N/4 offload generations; with --claims-shape one generation per claim, N/4 claims),
then decides it in a fresh child process per run: the plain check, then `check --require NAME`
for every gate (or the named ones), printing one JSON line per run (gate, events, seconds,
events/s, peak RSS, the gate's missing list). `--checker DIR` puts DIR (a `checker/` tree, e.g.
an older commit's, from `git archive`) first on the child's path, for before/after curves.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time
from kvclaims import spec as spec_mod
from kvclaims.run import Options, check_stream
path, gate = sys.argv[1], sys.argv[2]
spec = spec_mod.load()
t = time.perf_counter()
with open(path, "rb") as fh:
    rep = check_stream(fh, path, spec, Options(require=(gate,) if gate != "-" else ()))
s = time.perf_counter() - t
print(json.dumps({"gate": gate, "events": rep.events, "seconds": round(s, 3),
                  "events_per_s": round(rep.events / s), "verdict": rep.verdict,
                  "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "missing": [list(g.missing) for g in rep.gates]}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--gates", nargs="*")
    ap.add_argument("--claims-shape", action="store_true")
    ap.add_argument("--checker")
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from gen_offload import events

    from kvclaims import spec as spec_mod
    from kvclaims.check.gate import gate_names

    gates = a.gates or gate_names(spec_mod.load())
    env = dict(os.environ)
    if a.checker:
        env["PYTHONPATH"] = a.checker + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.sizes:
            path = Path(tmp) / f"offload-{n}.jsonl"
            claims = max(1, n // 4) if a.claims_shape else 1
            path.write_text("".join(line + "\n" for line in events(n, claims)), encoding="utf-8")
            for gate in ["-", *gates]:
                out = subprocess.run([sys.executable, "-c", CHILD, str(path), gate], env=env,
                                     capture_output=True, text=True, check=True).stdout
                row = json.loads(out)
                row["offload_events"] = n
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
