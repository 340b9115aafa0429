"""JSON Lines check against decode-only on the same file, in one run (issue 22, items 2 and 5).

Times, in one process and on one file (bench/gen_jsonl.py's pattern; generated when missing):

- `decode`: msgspec decoding every line into dicts (the floor the issue's target is measured
  against: `check` within 1.5x of it, goal 1.33x);
- `read`: kvclaims.trace.jsonl.read_jsonl alone (decode plus the strict input checks: closed keys,
  duplicate keys, types, ranges, closed vocabularies; Event construction);
- `check`: kvclaims.run.check_stream, the whole `kvclaims check` of the file (reader plus replay).

Each is run `--repeat` times, interleaved, and the best CPU time (time.process_time, steadier than
wall time on a shared machine) and its wall time are printed as a Markdown table with the ratios to
`decode`. Run:

    .venv/bin/python bench/jsonl_bench.py --events 1000000 --repeat 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import msgspec

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gen_jsonl import rounds  # noqa: E402

from kvclaims import spec as spec_mod  # noqa: E402
from kvclaims.run import Options, check_stream  # noqa: E402
from kvclaims.trace.jsonl import read_jsonl  # noqa: E402


def _decode(path: str) -> object:
    decode = msgspec.json.Decoder().decode
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            decode(line)
            n += 1
    return n


def _read(path: str) -> object:
    spec = spec_mod.load()
    n = 0
    with open(path, "rb") as fh:
        for _ in read_jsonl(fh, path, spec):
            n += 1
    return n


def _check(path: str) -> object:
    spec = spec_mod.load()
    with open(path, "rb") as fh:
        report = check_stream(fh, path, spec, Options(input_format="jsonl"))
    if report.error is not None:
        raise SystemExit(f"input error: {report.error}")
    return report.events, report.verdict


MODES: dict[str, Callable[[str], object]] = {"decode": _decode, "read": _read, "check": _check}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--file", help="trace to use (default bench/out/trace-N.jsonl, generated)")
    args = ap.parse_args()
    path = Path(args.file) if args.file else HERE / "out" / f"trace-{args.events}.jsonl"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        with open(path, "w") as fh:
            for i, line in enumerate(rounds(args.events)):
                if i >= args.events:
                    break
                fh.write(line + "\n")
    best: dict[str, tuple[float, float, object]] = {}
    for _ in range(args.repeat):
        for mode, run in MODES.items():
            wall, cpu = time.perf_counter(), time.process_time()
            result = run(str(path))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            print(f"{mode}: cpu {cpu:.2f} s, wall {wall:.2f} s, {result}", file=sys.stderr)
            if mode not in best or cpu < best[mode][0]:
                best[mode] = (cpu, wall, result)
    base = best["decode"][0]
    print(f"| {path.stat().st_size / 1e6:.0f} MB, best of {args.repeat} | CPU s | wall s | "
          "CPU / decode |")
    print("|---|---:|---:|---:|")
    for mode, (cpu, wall, _) in best.items():
        print(f"| {mode} | {cpu:.2f} | {wall:.2f} | {cpu / base:.2f}x |")
    print(f"\nresult of check: {best['check'][2]}")


if __name__ == "__main__":
    main()
