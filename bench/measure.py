"""Measure one run in this process: decode-only or full check of a trace; print JSON.

`python bench/measure.py decode|check jsonl|kvt PATH|-` prints
{"mode", "format", "events", "seconds", "events_per_s", "cpu_events_per_s", "max_rss_mib"}
(events per CPU second of this process: steadier than wall time on a shared machine). Used by
bench/run.py, which starts it as a child so that peak RSS is this run's alone.
"""

from __future__ import annotations

import io
import json
import resource
import sys
import time

from kvclaims import spec as spec_mod
from kvclaims.run import Options, check_stream
from kvclaims.trace.dsl import read_kvt
from kvclaims.trace.jsonl import read_jsonl


def main() -> None:
    mode, fmt, path = sys.argv[1:4]
    spec = spec_mod.load()
    fh = sys.stdin.buffer if path == "-" else open(path, "rb")
    t = time.perf_counter()
    cpu = time.process_time()
    if mode == "decode":
        if fmt == "jsonl":
            events = read_jsonl(fh, path, spec)
        else:
            events = read_kvt(io.TextIOWrapper(fh, encoding="utf-8", newline=""), path, spec=spec)
        n = 0
        for _ in events:
            n += 1
        verdict = None
    else:
        report = check_stream(fh, path, spec, Options(input_format=fmt))
        n = report.events
        verdict = report.verdict
        if report.error is not None:
            raise SystemExit(f"input error: {report.error}")
    secs = time.perf_counter() - t
    cpu = time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "format": fmt, "events": n, "seconds": round(secs, 3),
                      "events_per_s": round(n / secs), "cpu_events_per_s": round(n / cpu),
                      "max_rss_mib": round(rss, 1),
                      "verdict": verdict}))


if __name__ == "__main__":
    main()
