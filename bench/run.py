"""Replay-checker benchmark (issue: kvclaims check): events/s and peak RSS, JSON Lines and .kvt.

Generates traces of the corpus pattern (bench/gen_jsonl.py: hard claims on a 60-block prefix,
attributed refusals, demotion, evictions with post-release loss reports), writes them to bench/out/
(ignored by git), then measures each run in a fresh child process (bench/measure.py):

- decode only (import and validate every event) and full check, at 10^6 events;
- full check at 10^7 events, streamed from a generator through a pipe (no 3 GB file), to show
  that memory stays flat in trace length.

Run: `.venv/bin/python bench/run.py [--sizes 1000000 10000000]`; it prints a Markdown table that
bench/README.md records.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))

from gen_jsonl import rounds  # noqa: E402


def _jsonl_lines(n: int):
    for i, line in enumerate(rounds(n)):
        if i >= n:
            return
        yield line + "\n"


def _kvt_lines(n: int):
    from kvclaims import spec as spec_mod
    from kvclaims.trace.model import Event
    from kvclaims.trace.write import kvt_line

    spec = spec_mod.load()
    yield "kvtrace 1\n"
    for line in _jsonl_lines(n):
        d = json.loads(line)
        kind = d.pop("event")
        yield kvt_line(Event(kind, d), spec) + "\n"


def _lines(fmt: str, n: int):
    return _jsonl_lines(n) if fmt == "jsonl" else _kvt_lines(n)


def measure(mode: str, fmt: str, path: str, feed=None) -> dict:
    cmd = [sys.executable, str(HERE / "measure.py"), mode, fmt, path]
    if feed is None:
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def pump() -> None:
        assert proc.stdin is not None
        for line in feed:
            proc.stdin.write(line)
        proc.stdin.close()

    t = threading.Thread(target=pump)
    t.start()
    out = proc.stdout.read() if proc.stdout else ""
    t.join()
    if proc.wait() != 0:
        raise SystemExit(f"{cmd} failed")
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    ap.add_argument("--formats", nargs="*", default=["jsonl", "kvt"])
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    rows = []
    for fmt in args.formats:
        for n in args.sizes:
            if n <= 1_000_000:
                path = OUT / f"trace-{n}.{fmt}"
                if not path.exists():
                    with open(path, "w") as fh:
                        fh.writelines(_lines(fmt, n))
                dec = measure("decode", fmt, str(path))
                chk = measure("check", fmt, str(path))
                rows.append((fmt, n, dec, chk))
            else:
                chk = measure("check", fmt, "-", feed=_lines(fmt, n))
                rows.append((fmt, n, None, chk))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print("| format | events | decode only, events/s | check, events/s | check / decode | "
          "check, events per CPU s | peak RSS, MiB (check) | verdict |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for fmt, n, dec, chk in rows:
        ratio = f"{chk['events_per_s'] / dec['events_per_s']:.2f}" if dec else "-"
        d = f"{dec['events_per_s']:,}" if dec else "- (streamed)"
        print(f"| {fmt} | {n:,} | {d} | {chk['events_per_s']:,} | {ratio} | "
              f"{chk['cpu_events_per_s']:,} | {chk['max_rss_mib']} | {chk['verdict']} |")
    print(f"\nmachine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
