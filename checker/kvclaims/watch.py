"""`kvclaims watch`: subscribe to vLLM's live KV event stream and decide claims continuously.

MODEL.md §6 R-stream. Connects a ZMQ SUB socket to vLLM's `ZmqEventPublisher`, checks each
batch's 8-byte sequence number, asks the ROUTER replay socket (`--replay`) for missed batches,
joins the events with a claim manifest (trace/vllm_events.py) and feeds the replay checker.
Findings are printed as they appear (text, or JSON Lines with `--format jsonl`); the final verdict
comes when the stream ends (`max_batches`, `idle_timeout`, or Ctrl-C). A gap the replay socket
cannot fill makes every later verdict unknown: the result is inconclusive, never conformant.
Needs pyzmq (the `vllm` extra). Network traffic goes only to the endpoints given.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from kvclaims import spec as spec_mod
from kvclaims.check.replay import Replay
from kvclaims.trace.model import InputError
from kvclaims.trace.vllm_events import Batch, StreamJoin, decode_batch, load_manifest

END_SEQ = -1


class _Out:
    def __init__(self, fmt: str, out: IO[str]):
        self.fmt = fmt
        self.out = out

    def emit(self, kind: str, text: str, **data: Any) -> None:
        if self.fmt == "jsonl":
            self.out.write(json.dumps({"kind": kind, **data}, sort_keys=True, default=str) + "\n")
        else:
            self.out.write(text + "\n")
        self.out.flush()


def _replay(ctx: Any, endpoint: str, start: int, timeout_ms: int) -> dict[int, bytes]:
    """Ask vLLM's replay ROUTER for every buffered batch from `start` on."""
    import zmq

    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(endpoint)
    got: dict[int, bytes] = {}
    try:
        d.send_multipart([b"", start.to_bytes(8, "big")])
        while d.poll(timeout_ms):
            frames = d.recv_multipart()
            if len(frames) != 4:
                continue
            _, _topic, seq_b, payload = frames
            seq = int.from_bytes(seq_b, "big", signed=True)
            if seq == END_SEQ:
                break
            got[seq] = payload
    finally:
        d.close(linger=0)
    return got


def watch(endpoint: str, replay: str | None, claims: str, fmt: str = "text", *,
          topic: str = "", max_batches: int | None = None, idle_timeout: float | None = None,
          out: IO[str] | None = None, ready: Any = None, replay_timeout_ms: int = 2000,
          start_seq: int = 0) -> int:
    """Run the watcher; returns the checker's exit code (0/1/3, 2 on input errors)."""
    import zmq

    o = _Out(fmt, out or sys.stdout)
    spec = spec_mod.load()
    try:
        manifest = load_manifest(claims)
    except InputError as err:
        o.emit("error", f"{err}", message=str(err))
        return 2
    join = StreamJoin(manifest)
    replay_chk = Replay(spec, endpoint)
    shown = 0

    def feed(events: list[Any]) -> None:
        nonlocal shown
        for ev in events:
            replay_chk.feed(ev)
        for f in replay_chk.findings[shown:]:
            o.emit("finding", f"{f.status.upper()} {f.rule} claim={f.claim_id}: {f.message}",
                   status=f.status, rule=f.rule, claim_id=f.claim_id, message=f.message)
        shown = len(replay_chk.findings)

    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(endpoint)
    sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
    o.emit("start", f"watching {endpoint}" + (f" (replay {replay})" if replay else "")
           + f", {len(manifest.claims)} claim(s)", endpoint=endpoint, replay=replay,
           claims=[c.claim_id for c in manifest.claims])
    feed(join.start())
    if ready is not None:
        ready.set()
    expected = start_seq
    n = 0
    last = time.monotonic()

    def handle(seq: int, payload: bytes) -> None:
        nonlocal n, expected
        try:
            batch = decode_batch(payload, seq)
        except (ValueError, Exception) as err:  # malformed payload: a gap for the checker
            o.emit("error", f"batch {seq}: cannot decode: {err}", seq=seq, message=str(err))
            feed(join.gap(seq, seq + 1))
            expected = seq + 1
            n += 1
            return
        feed(join.feed_batch(batch))
        o.emit("batch", f"batch {seq}: {len(batch.events)} event(s)", seq=seq,
               events=len(batch.events))
        expected = seq + 1
        n += 1

    try:
        while max_batches is None or n < max_batches:
            wait_ms = 200
            if not sub.poll(wait_ms):
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    break
                continue
            last = time.monotonic()
            frames = sub.recv_multipart()
            if len(frames) != 3:
                continue
            _topic, seq_b, payload = frames
            seq = int.from_bytes(seq_b, "big")
            if seq < expected:
                continue  # already seen (through replay)
            if seq > expected:
                missing = (expected, seq)
                got = _replay(ctx, replay, expected, replay_timeout_ms) if replay else {}
                filled = [s for s in range(expected, seq) if s in got]
                o.emit("gap", f"gap: batches {expected}..{seq - 1} missing; "
                       + (f"replay returned {len(filled)}" if replay else "no replay socket"),
                       missing=list(missing), replayed=len(filled))
                for s in range(expected, seq):
                    if s in got:
                        if s > expected:
                            o.emit("gap", f"unfillable gap: batches {expected}..{s - 1}",
                                   unfilled=[expected, s])
                            feed(join.gap(expected, s))
                            expected = s
                        handle(s, got[s])
                if expected < seq:
                    o.emit("gap", f"unfillable gap: batches {expected}..{seq - 1}",
                           unfilled=[expected, seq])
                    feed(join.gap(expected, seq))
                    expected = seq
            handle(seq, payload)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        sub.close(linger=0)
    report = replay_chk.finish()
    for f in replay_chk.findings[shown:]:
        o.emit("finding", f"{f.status.upper()} {f.rule} claim={f.claim_id}: {f.message}",
               status=f.status, rule=f.rule, claim_id=f.claim_id, message=f.message)
    o.emit("verdict", f"{endpoint}: {report.verdict.upper()} ({n} batch(es), "
           f"{len(join.gaps)} unfilled gap(s))", verdict=report.verdict, batches=n,
           gaps=[list(g) for g in join.gaps],
           claims={c.claim_id: c.verdict for c in report.claims})
    return {"conformant": 0, "violation": 1, "inconclusive": 3}.get(report.verdict, 2)


def watch_command(endpoint: str, replay: str | None, claims: str, fmt: str = "text") -> int:
    """The CLI entry: `kvclaims watch tcp://HOST:5557 [--replay tcp://HOST:5558] --claims M`."""
    return watch(endpoint, replay, claims, fmt)


def _main(argv: list[str] | None = None) -> int:  # `python -m kvclaims.watch` until wired
    import argparse

    p = argparse.ArgumentParser(prog="kvclaims watch")
    p.add_argument("endpoint")
    p.add_argument("--replay")
    p.add_argument("--claims", required=True)
    p.add_argument("--format", default="text", choices=["text", "jsonl"])
    p.add_argument("--topic", default="")
    p.add_argument("--max-batches", type=int)
    p.add_argument("--idle-timeout", type=float)
    a = p.parse_args(argv)
    return watch(a.endpoint, a.replay, a.claims, a.format, topic=a.topic,
                 max_batches=a.max_batches, idle_timeout=a.idle_timeout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(_main())


__all__ = ["watch", "watch_command", "Batch"]
