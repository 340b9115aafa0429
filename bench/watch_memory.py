"""Memory of a long-running watch: RSS and checkpoint size after 10^3..10^6 batches of a
steady-state KV event stream (bench/watch-memory.md, docs/watch-nats.md "Memory").

The stream (generated, no engine needed), `--stream steady` (the default): batch 0 stores the
blocks of the manifest's claims; every later batch stores one fresh unclaimed block (a new
request's, so "many requests" is this class) and, once `--resident` blocks are cached, removes
the oldest (an engine at steady state: the pool full, unclaimed blocks cycling); every 50th batch
stores a second copy of a claimed block and 25 batches later removes it (a copy, not the block: no
claim loses anything). The claims stay materialized: conformant throughout.

`--stream churn`: the same, but the claims are best-effort and their blocks keep coming and
going: every batch also evicts one claimed block (its last copy) or stores it again, in turns, so
every batch joins a claim event (a victim or a materialization) — the class whose joined events
grew without bound before they were let go past kvclaims.kvstream.KEEP_JOINED. Every 1,000th
batch evicts and stores the same claimed block in one batch (an order that can matter), so the
verdict is decided in the written order only once events were let go: inconclusive, as
docs/watch-nats.md says; `--no-unordered` leaves those batches out (then conformant).

Each batch goes through what `kvclaims watch nats://...` runs per message — the one
:class:`kvclaims.kvstream.StreamCheck` (Sequencer, manifest join, streaming replay) — in this
process, and at each size the process's resident set (VmRSS), the checkpoint's size
(kvclaims.checkpoint.dump of the state the watch stores) and the rate are printed. The final
verdict is taken at the end, as the watch does.

    .venv/bin/python bench/watch_memory.py --batches 1000000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import msgspec

from kvclaims import __version__
from kvclaims import checkpoint as ckpt
from kvclaims import spec as spec_mod
from kvclaims.kvstream import StreamCheck
from kvclaims.trace.kv_records import Frame
from kvclaims.trace.vllm_events import Manifest, ManifestClaim, manifest_toml

UNCLAIMED = 10**12


def claims(n: int, blocks: int, mode: str = "hard_exclude") -> Manifest:
    return Manifest([ManifestClaim(f"claim:{c}", [c * 1000 + b + 1 for b in range(blocks)],
                                   mode, f"p{c}") for c in range(n)],
                    usable_blocks=n * blocks + 10_000)


def stored(hs: list[int]) -> dict:
    return {"type": "BlockStored", "block_hashes": hs, "parent_block_hash": None,
            "token_ids": [], "block_size": 16, "lora_id": None, "medium": "GPU"}


def removed(hs: list[int]) -> dict:
    return {"type": "BlockRemoved", "block_hashes": hs, "medium": "GPU"}


def steady_state(manifest: Manifest, n: int, resident: int, churn: bool = False,
                 unordered: bool = True) -> Iterator[tuple[int, bytes]]:
    claimed = [h for c in manifest.claims for h in c.hashes]
    enc = msgspec.msgpack.Encoder()
    yield 0, enc.encode([0.0, [stored(claimed)], 0])
    for s in range(1, n):
        events = [stored([UNCLAIMED + s])]
        if s > resident:
            events.append(removed([UNCLAIMED + s - resident]))
        if churn:
            h = claimed[((s - 1) // 2) % len(claimed)]
            if unordered and s % 1000 == 0:
                events += [removed([claimed[-1]]), stored([claimed[-1]])]
            events.append(removed([h]) if s % 2 else stored([h]))
        elif s % 50 == 0:
            events.append(stored([claimed[(s // 50) % len(claimed)]]))
        elif s % 50 == 25 and s > 25:
            events.append(removed([claimed[(s // 50) % len(claimed)]]))
        yield s, enc.encode([float(s), events, 0])


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, default=1_000_000)
    ap.add_argument("--claims", type=int, default=4)
    ap.add_argument("--blocks", type=int, default=16, help="blocks per claim")
    ap.add_argument("--resident", type=int, default=1000, help="unclaimed blocks cached")
    ap.add_argument("--stream", choices=["steady", "churn"], default="steady")
    ap.add_argument("--no-unordered", dest="unordered", action="store_false",
                    help="churn: no batch evicts and stores the same block")
    a = ap.parse_args()
    spec = spec_mod.load()
    churn = a.stream == "churn"
    manifest = claims(a.claims, a.blocks, "best_effort" if churn else "hard_exclude")
    mbytes = manifest_toml(manifest).encode()
    check = StreamCheck(spec, manifest, "steady-state")
    marks = {m for k in range(3, 10) for m in (10**k, 3 * 10**k) if m <= a.batches} | {a.batches}
    print(f"kvclaims {__version__}: --stream {a.stream}: {a.claims} claims x {a.blocks} blocks "
          f"({manifest.claims[0].mode}), {a.resident} unclaimed blocks resident")
    print("| batches | VmRSS, MiB | checkpoint, KiB | checkpoint write, ms | events joined | "
          "events kept | batches/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    t0 = time.perf_counter()
    stream = steady_state(manifest, a.batches, a.resident, churn, a.unordered)
    for i, (seq, payload) in enumerate(stream, 1):
        check.push(Frame(seq, payload, i))
        if i in marks:
            dt = time.perf_counter() - t0
            header = ckpt.Header(ckpt.FORMAT, __version__, ckpt.spec_digest(),
                                 ckpt.manifest_digest(mbytes), "S", "D", i, i,
                                 {"engine": ckpt.Mark(0, seq)})
            t1 = time.perf_counter()
            size = len(ckpt.dump(header, check, spec))
            dump_ms = (time.perf_counter() - t1) * 1000
            print(f"| {i:,} | {rss_mib():.1f} | {size / 1024:.0f} | {dump_ms:.0f} | "
                  f"{check.count:,} | {len(check.events):,} | {i / dt:,.0f} |", flush=True)
            t0 += time.perf_counter() - t1  # the rate is the checking's
    report = check.finish()
    print(f"verdict: {report.verdict}; batches decided {report.extra['stream']['batches']:,}; "
          f"final VmRSS {rss_mib():.1f} MiB")


if __name__ == "__main__":
    main()
