"""The Z3 engine's cost (kvclaims.check.partial over kvclaims.check.z3model) against the replay.

    .venv/bin/python bench/z3_bench.py [--sizes 1000 10000] [--batches 10 20 50] [--repeat 3]
                                       [--no-shrink]

Prints, each timed in this process after a warm-up (the median of --repeat runs; events already
decoded, so only deciding is timed):

1. events/s of both engines on totally ordered traces of the corpus pattern (bench/gen_jsonl.py:
   per round a 60-block hard claim, an attributed refusal, a demotion, 50 evictions with
   post-release loss reports), with their verdicts and first violations (they must agree);
2. the time to decide one unordered batch of k events: a claim `leading_prefix_at_least(60)`,
   its 60 block materializations and `materialized`, then `batch { harm, k - 1 victims of its
   blocks }` (harm first conforms, a victim first is an unreported resident loss: expected
   inconclusive, some_violate);
3. `kvclaims shrink --rule R-no-silent-loss` on the 60/70/80 probe with its harm report dropped
   (tests/test_shrink.py; the corpus file is read from ../shared/corpus, the silent copy is
   written to a temporary directory), with each engine, as a child process (wall time includes
   interpreter start-up).

Targets from the issue: 10^3 events under 5 s; a 50-event batch under 10 s.
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import z3

from kvclaims import spec as spec_mod
from kvclaims.check import partial, replay
from kvclaims.check.verdict import Report
from kvclaims.trace.dsl import read_partial_kvt
from kvclaims.trace.jsonl import read_jsonl

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from gen_jsonl import rounds

PROBE = (
    ROOT.parent
    / "shared"
    / "corpus"
    / "resident-kv-artifacts"
    / "artifacts"
    / "claim_metadata"
    / "claim_metadata_60_70_80.jsonl"
)
KVCLAIMS = ROOT / ".venv" / "bin" / "kvclaims"


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def first(rep: Report) -> str:
    f = rep.first_violation()
    return rep.verdict + ("" if f is None else f" {f.rule}@{f.event_index}")


def ordered_trace(n: int, spec: Any) -> list[Any]:
    data = "".join(line + "\n" for _, line in zip(range(n), rounds(n))).encode()
    return list(read_jsonl(io.BytesIO(data), "gen", spec))


def batch_kvt(k: int, blocks: int = 60) -> str:
    accept = (
        f"claim claim:r accepted mode=soft_priority required={blocks} "
        f"predicate=leading_prefix_at_least({blocks}) prefix=p usable=200"
    )
    lines = ["kvtrace 1", accept]
    lines += [
        f"block {b} materialized claim=claim:r prefix=p position={b - 1}"
        for b in range(1, blocks + 1)
    ]
    lines += ["claim claim:r materialized", "batch {", "claim claim:r harmed"]
    lines += [
        f"block {b} victim request=a reason=cached_prefix_reuse usable=200" for b in range(1, k)
    ]
    lines += ["}"]
    return "\n".join(lines) + "\n"


def bench_ordered(spec: Any, sizes: list[int], repeat: int) -> None:
    print("\n1. totally ordered traces (corpus pattern, bench/gen_jsonl.py)")
    print(
        f"{'events':>7} {'replay s':>9} {'replay ev/s':>12} {'z3 s':>8} {'z3 ev/s':>9} "
        f"{'z3/replay':>9}  verdicts (replay | z3)"
    )
    for n in sizes:
        events = ordered_trace(n, spec)
        rt, rrep = timed(functools.partial(replay.check_events, spec, events), repeat)
        zt, zrep = timed(functools.partial(partial.check_events, spec, events), repeat)
        agree = "agree" if first(rrep) == first(zrep) else "DIFFER"
        print(
            f"{len(events):>7} {rt:>9.4f} {len(events) / rt:>12,.0f} {zt:>8.3f} "
            f"{len(events) / zt:>9,.0f} {zt / rt:>9.0f}  {first(rrep)} | {first(zrep)} "
            f"({agree})"
            + ("" if n != 1000 else f"; target 10^3 under 5 s: {'met' if zt < 5 else 'NOT met'}")
        )


def bench_batches(spec: Any, sizes: list[int], repeat: int) -> None:
    print("\n2. one unordered batch: harm + (k - 1) victims after 60 materializations")
    print(f"{'k':>3} {'events':>6} {'median s':>9} {'max s':>7}  verdict, linearizations")
    for k in sizes:
        pt = read_partial_kvt(io.StringIO(batch_kvt(k)), f"batch-{k}.kvt", spec=spec)
        batches = [(s, e) for s, e, _ in pt.batches(spec) if e - s >= 2]
        assert [e - s for s, e in batches] == [k]
        times, rep = [], None
        for _ in range(repeat):
            t = time.perf_counter()
            rep = partial.decide(spec, pt.events, batches=batches, skews=pt.skews)
            times.append(time.perf_counter() - t)
        assert rep is not None
        lin = rep.extra.get("linearizations")
        ok = rep.verdict == "inconclusive" and lin == "some_violate"
        target = (
            ""
            if k != 50
            else f"; target 50-event batch under 10 s: {'met' if max(times) < 10 else 'NOT met'}"
        )
        print(
            f"{k:>3} {len(pt.events):>6} {statistics.median(times):>9.3f} {max(times):>7.3f}  "
            f"{rep.verdict}, {lin} ({'as expected' if ok else 'UNEXPECTED'}){target}"
        )


def bench_shrink(spec: Any, repeat: int) -> None:
    print("\n3. kvclaims shrink --rule R-no-silent-loss, 60/70/80 probe without its harm report")
    harmed = "resident_claim_harmed"
    lines = PROBE.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if json.loads(ln).get("event") != harmed]
    assert len(kept) == len(lines) - 1
    with tempfile.TemporaryDirectory() as tmp:
        silent = Path(tmp) / "silent_60_70_80.jsonl"
        silent.write_text("".join(kept))
        for engine in ("replay", "z3"):
            cmd = [
                str(KVCLAIMS),
                "shrink",
                str(silent),
                "--rule",
                "R-no-silent-loss",
                "--engine",
                engine,
                "--no-progress",
                "-o",
                str(Path(tmp) / f"{engine}.kvt"),
            ]
            times, res = [], None
            for _ in range(repeat):
                t = time.perf_counter()
                res = subprocess.run(cmd, capture_output=True, text=True, check=False)
                times.append(time.perf_counter() - t)
            assert res is not None
            summary = next((ln for ln in res.stderr.splitlines() if "→" in ln), res.stderr.strip())
            print(
                f"--engine {engine:6} exit {res.returncode}  median {statistics.median(times):.2f}"
                f" s  max {max(times):.2f} s  {summary}"
            )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--batches", type=int, nargs="+", default=[10, 20, 50])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-shrink", action="store_true")
    args = ap.parse_args()
    spec = spec_mod.load()
    print(
        f"python {platform.python_version()}, z3 {z3.get_version_string()}, "
        f"{platform.machine()}, repeat {args.repeat}"
    )
    partial.decide(spec, ordered_trace(300, spec))  # warm up z3 and the spec tables
    bench_ordered(spec, args.sizes, args.repeat)
    bench_batches(spec, args.batches, args.repeat)
    if not args.no_shrink:
        bench_shrink(spec, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
