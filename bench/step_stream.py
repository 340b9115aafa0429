"""Step streams: the cost of batched traces against their totally ordered twins (issue 22 item 5).

    nice .venv/bin/python bench/step_stream.py [--batches 100 1000 10000 100000] [--per-batch 8]
                                               [--conflicting 10 20 50 100] [--engine auto]

1. The step-stream curve: a stream shaped like vLLM's KV events (bench/step_stream.md): one hard
   claim on 60 blocks, then N step batches (`unordered_batch`) of 8 allocations each, of blocks
   outside the claim, one per request (a decode step gives each running request at most one new
   block), `event_sequence` numbered in file order. Its twin is the same events without the batch
   key. Each is checked by `kvclaims check --format json FILE` as a child process: wall time and
   the child's own peak RSS (os.wait4), verdict.
2. Conflicting batches: the claim `leading_prefix_at_least(60)` of bench/z3_bench.py's
   `batch_kvt(k)` (a harm and k - 1 victims of the claim's blocks in one batch: every pair
   conflicts, the Z3 engine decides the whole batch; expected inconclusive, some_violate).
3. Mixed batches: the same claim, one batch of a harm, 2 victims of its blocks and N other
   allocations (`--mixed`): only the 3 conflicting events are ordered by the solver; the full
   encoding (every event placed by the solver) is timed beside it up to `--full-up-to` events.

Writes the traces to a temporary directory; prints one table row per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
KVCLAIMS = ROOT / ".venv" / "bin" / "kvclaims"
sys.path.insert(0, str(BENCH))

CLAIM_BLOCKS = 60
POOL = 4096  # distinct physical blocks outside the claim the allocations cycle through


def step_stream(batches: int, per_batch: int, batched: bool):
    """The stream's JSON Lines (see the module docstring); `batched=False`: the ordered twin."""
    seq = 0

    def line(kind: str, **f) -> str:
        nonlocal seq
        seq += 1
        return json.dumps({"event": kind, "event_sequence": seq, **f}, separators=(",", ":"))

    yield line("resident_claim_accepted", claim_id="claim:h", prefix_id="p",
               protection_mode="hard_exclude", resident_blocks_required=CLAIM_BLOCKS,
               materialization_predicate=f"leading_prefix_at_least({CLAIM_BLOCKS})",
               usable_blocks=CLAIM_BLOCKS + POOL)
    for pos in range(CLAIM_BLOCKS):
        yield line("resident_block_materialized", claim_id="claim:h", prefix_id="p",
                   logical_block_position=pos, physical_block_id=pos + 1)
    yield line("resident_claim_materialized", claim_id="claim:h", prefix_id="p")
    block = 0
    for b in range(batches):
        for j in range(per_batch):
            extra = {"unordered_batch": b} if batched else {}
            yield line("allocation_victim_selected",
                       physical_block_id=CLAIM_BLOCKS + 1 + block % POOL,
                       request_id=f"req{j}", victim_reason="free_uncached", **extra)
            block += 1


def run_check(path: Path, *args: str, timeout: float | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the child alone (os.wait4), and its verdict."""
    import threading

    with tempfile.TemporaryFile() as out:
        t = time.perf_counter()
        p = subprocess.Popen([str(KVCLAIMS), "check", "--format", "json", *args, str(path)],
                             stdout=out, stderr=subprocess.DEVNULL)
        timer = threading.Timer(timeout, p.kill) if timeout else None
        if timer is not None:
            timer.start()
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        if timer is not None:
            timer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode < 0:
            return float("nan"), usage.ru_maxrss / 1024, f"killed after {timeout:.0f} s"
        out.seek(0)
        try:
            doc = json.loads(out.read())
            report = doc["reports"][0] if "reports" in doc else doc
            verdict = report.get("verdict", "?")
            how = (report.get("order") or {}).get("linearizations")
            if how:
                verdict += f" ({how})"
        except (ValueError, KeyError, IndexError, TypeError):
            verdict = f"exit {p.returncode}"
    return wall, usage.ru_maxrss / 1024, verdict


def curve(tmp: Path, sizes: list[int], per_batch: int, engine: str, timeout: float) -> None:
    print(f"\n1. step-stream curve ({per_batch} allocations per batch, --engine {engine})")
    print(f"{'batches':>8} {'events':>8} {'batched s':>10} {'MiB':>6} {'ordered s':>10} "
          f"{'MiB':>6} {'ratio':>6} {'batches/s':>10}  verdicts (batched | ordered)")
    for n in sizes:
        paths = {}
        for batched in (True, False):
            p = tmp / f"steps-{n}-{'b' if batched else 'o'}.jsonl"
            with open(p, "w") as fh:
                for ln in step_stream(n, per_batch, batched):
                    fh.write(ln + "\n")
            paths[batched] = p
        events = CLAIM_BLOCKS + 2 + n * per_batch
        ot, orss, ov = run_check(paths[False], "--engine", engine, timeout=timeout)
        bt, brss, bv = run_check(paths[True], "--engine", engine, timeout=timeout)
        print(f"{n:>8} {events:>8} {bt:>10.2f} {brss:>6.0f} {ot:>10.2f} {orss:>6.0f} "
              f"{bt / ot:>6.2f} {n / bt:>10,.0f}  {bv} | {ov}", flush=True)
        for p in paths.values():
            p.unlink()


def conflicting(tmp: Path, ks: list[int], timeout: float) -> None:
    from z3_bench import batch_kvt

    print("\n2. one conflicting batch (harm + k - 1 victims of the claim's blocks)")
    print(f"{'k':>5} {'s':>8} {'MiB':>6}  verdict")
    for k in ks:
        p = tmp / f"conflict-{k}.kvt"
        p.write_text(batch_kvt(k))
        t, rss, v = run_check(p, timeout=timeout)
        print(f"{k:>5} {t:>8.2f} {rss:>6.0f}  {v}", flush=True)


def mixed_kvt(others: int, victims: int = 2) -> str:
    """A harm and `victims` victims of the claim's blocks in one batch with `others` allocations
    of other blocks (one request each): a vLLM-sized step batch whose conflicting part is small."""
    from z3_bench import batch_kvt

    head = batch_kvt(1).split("batch {")[0]
    body = ["claim claim:r harmed"]
    body += [f"block {b} victim request=a reason=cached_prefix_reuse" for b in range(1, victims + 1)]
    body += [f"block {1000 + j} victim request=o{j} reason=free_uncached" for j in range(others)]
    return head + "batch {\n" + "\n".join(body) + "\n}\n"


def mixed(ks: list[int], full_up_to: int) -> None:
    """Deciding only (events read first), in this process: the reduced decision against the
    full encoding (`partial.decide(..., reduce=False)`), when it is small enough to wait for."""
    import io

    from kvclaims import spec as spec_mod
    from kvclaims.check import partial
    from kvclaims.trace.dsl import read_partial_kvt

    spec = spec_mod.load()
    print("\n3. a step batch of a harm, 2 victims of the claim and N other allocations")
    print(f"{'batch events':>12} {'reduced s':>10} {'full s':>8}  verdicts (reduced | full)")
    for n in ks:
        trace = read_partial_kvt(io.StringIO(mixed_kvt(n)), "mixed.kvt", spec=spec)
        batches = [(s, e) for s, e, _ in trace.batches(spec) if e - s >= 2]
        t = time.perf_counter()
        r = partial.decide(spec, trace.events, batches=batches)
        rt = time.perf_counter() - t
        ft, fv = float("nan"), "-"
        if n + 3 <= full_up_to:
            t = time.perf_counter()
            f = partial.decide(spec, trace.events, batches=batches, reduce=False)
            ft = time.perf_counter() - t
            fv = f"{f.verdict} ({f.extra.get('linearizations')})"
        print(f"{n + 3:>12} {rt:>10.2f} {ft:>8.2f}  {r.verdict} "
              f"({r.extra.get('linearizations')}) | {fv}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="*", default=[100, 1000, 10000, 100000])
    ap.add_argument("--per-batch", type=int, default=8)
    ap.add_argument("--conflicting", type=int, nargs="*", default=[10, 20, 50, 100])
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--mixed", type=int, nargs="*", default=[10, 30, 100, 1000],
                    help="other allocations beside the conflicting part of one batch")
    ap.add_argument("--full-up-to", type=int, default=40,
                    help="also time the full encoding of mixed batches up to this size")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if a.batches:
            curve(tmp, a.batches, a.per_batch, a.engine, a.timeout)
        if a.conflicting:
            conflicting(tmp, a.conflicting, a.timeout)
    if a.mixed:
        mixed(a.mixed, a.full_up_to)


if __name__ == "__main__":
    main()
