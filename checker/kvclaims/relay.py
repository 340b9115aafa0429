"""`kvclaims relay`: an engine's KV event stream (ZMQ) onto NATS JetStream, each batch once
(docs/watch-nats.md; docs/model.md §6 R-stream).

Subscribes to vLLM's `ZmqEventPublisher` (frames `[topic, seq (8 bytes, big-endian), payload]`)
and publishes every batch as one JetStream message whose id is instance:epoch:seq
(:mod:`kvclaims.jetstream`), so a batch published twice (a relay retrying across a server
restart, a relay restarted, a duplicate frame) is stored once: JetStream's duplicate window
drops the copy. What it decides, and nothing else:

- which run of the publisher a batch belongs to: the numbering going back is a new run (epoch + 1;
  the watcher's Sequencer reports the restart, as the offline check of the same frames does),
  unless the frame repeats a batch of the current run (a duplicate: published again under its
  first id, so JetStream drops it);
- which batches are missing before a received one, asked from the engine's replay socket
  (`--replay`, vLLM's ROUTER protocol, as `kvclaims watch` asks it) and published first, in
  order; those the socket no longer holds stay missing, and the watcher says so (a gap);
- where it resumes after its own restart: the stream's last message on the subject gives the
  instance's epoch and last batch number.

ENDPOINT may also be a record file (`kvclaims watch --record`, `.kvbatches`): its frames are
published in recorded order, as the engine would have (an archived stream put on the audit bus).
It publishes the payload as received and never reorders within a run, so the stream holds, per
instance, the engine's batches in publication order. A publish the server cannot take (it is
restarting) is retried with the same id until it is stored. Exit 0 when stopped (SIGINT/SIGTERM,
`--idle-timeout`, `--max-batches`), 2 on a usage error or an unreachable server.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import IO, Any

import msgspec

from kvclaims import jetstream as jsw
from kvclaims.trace.kv_records import SEQ_BYTES, read_frames
from kvclaims.trace.model import InputError

END_SEQ = -1
EXIT_INPUT = 2


_DIGESTS_KEPT = 1 << 12  # batches of the current run remembered to tell a duplicate frame


@dataclass
class Position:
    """Per instance: the publisher's run, the last batch number published in it, and the
    digests of its latest batches (a frame going back with a known content is a duplicate, with
    other content a new run: the Sequencer's rule, kvclaims.trace.kv_records)."""

    epoch: int = 0
    last: int | None = None
    digests: OrderedDict[int, bytes] = field(default_factory=OrderedDict)

    def run_of(self, seq: int, payload: bytes) -> int:
        """The run a frame belongs to (starting a new one when the numbering went back)."""
        if self.last is not None and seq < self.last and self.digests.get(seq) != _digest(
                payload):
            self.epoch += 1
            self.last = None
            self.digests.clear()
        return self.epoch

    def published(self, seq: int, payload: bytes) -> None:
        self.last = seq if self.last is None else max(self.last, seq)
        self.digests[seq] = _digest(payload)
        if len(self.digests) > _DIGESTS_KEPT:
            self.digests.popitem(last=False)


def _digest(payload: bytes) -> bytes:
    return hashlib.sha256(payload).digest()


async def _replay(ctx: Any, endpoint: str, start: int,
                  timeout_ms: int) -> list[tuple[bytes, int, bytes]]:
    """Ask the replay ROUTER for every buffered batch from `start` on: (topic, seq, payload)."""
    import zmq

    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(endpoint)
    got: list[tuple[bytes, int, bytes]] = []
    try:
        await d.send_multipart([b"", start.to_bytes(SEQ_BYTES, "big")])
        while await d.poll(timeout_ms):
            frames = await d.recv_multipart()
            if len(frames) != 4:
                continue
            _, topic, seq_b, payload = frames
            seq = int.from_bytes(seq_b, "big", signed=True)
            if seq == END_SEQ:
                break
            got.append((topic, seq, payload))
    finally:
        d.close(linger=0)
    return got


async def _close(nc: Any) -> None:
    try:
        await asyncio.wait_for(nc.drain(), 5)
    except Exception:  # noqa: BLE001 - closing: every publish was acknowledged or given up
        pass


async def _resume(js: Any, stream: str, subject: str, instance: str,
                  stop: threading.Event) -> Position:
    """The instance's position from the stream's last message on `subject` (a fresh one when the
    subject is empty or its last message is another instance's)."""
    from nats.js.errors import NotFoundError

    try:
        msg = await jsw.retry(lambda: js.get_last_msg(stream, subject), stop=stop.is_set)
    except NotFoundError:
        return Position()
    ident = jsw.identity(msg.headers)
    if ident is None or ident[0] != instance:
        return Position()
    return Position(ident[1], ident[2])


async def _relay(endpoint: str, url: str, stream: str, subject: str, replay: str | None,
                 instance: str, topic: str, idle_timeout: float | None,
                 max_batches: int | None, out: IO[str], stop: threading.Event,
                 ready: threading.Event | None, replay_timeout_ms: int,
                 recorded: list[tuple[bytes, int, bytes]] | None) -> int:
    import zmq
    import zmq.asyncio

    try:
        nc = await jsw.connect(url)
    except Exception as err:  # noqa: BLE001 - unreachable server: a usage error, said
        out.write(f"kvclaims relay: {url}: cannot connect ({err or type(err).__name__})\n")
        return EXIT_INPUT
    js = nc.jetstream()
    try:
        created = await jsw.retry(lambda: jsw.ensure_stream(js, stream, subject),
                                  stop=stop.is_set)
    except LookupError as err:
        out.write(f"kvclaims relay: {err}\n")
        await nc.close()
        return EXIT_INPUT
    # A record file numbers its runs itself (relayed again, its ids repeat: dropped); a live
    # engine continues the run the stream last holds for it.
    pos = Position() if recorded is not None else await _resume(js, stream, subject, instance,
                                                                     stop)
    counts = {"published": 0, "duplicate": 0, "replayed": 0}

    async def publish(t: bytes, seq: int, payload: bytes) -> None:
        epoch = pos.run_of(seq, payload)
        ack = await jsw.retry(lambda: js.publish(subject, payload, stream=stream,
                                                 headers=jsw.headers(instance, epoch, seq, t),
                                                 timeout=2.0), stop=stop.is_set)
        counts["duplicate" if ack.duplicate else "published"] += 1
        pos.published(seq, payload)

    def said(received: int) -> int:
        out.write(f"relayed {received} batch(es): {counts['published']} stored, "
                  f"{counts['duplicate']} dropped by JetStream as duplicates, "
                  f"{counts['replayed']} filled from the replay socket\n")
        out.flush()
        return 0

    head = (f"relaying {endpoint} to {url} stream {stream} subject {subject} as instance "
            f"{instance}" + (" (stream created)" if created else "") + "\n")
    if recorded is not None:  # a record file: its frames in recorded order
        out.write(head)
        try:
            for t, seq, payload in recorded:
                if stop.is_set():
                    break
                await publish(t, seq, payload)
        finally:
            await _close(nc)
        return said(len(recorded))
    ctx = zmq.asyncio.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    try:
        sub.connect(endpoint)
    except zmq.ZMQError as err:
        sub.close(linger=0)
        await nc.close()
        out.write(f"kvclaims relay: {endpoint}: {err}\n")
        return EXIT_INPUT
    want = topic.encode()
    sub.setsockopt(zmq.SUBSCRIBE, want)
    out.write(head)
    out.flush()
    if ready is not None:
        ready.set()

    received = 0
    loop = asyncio.get_running_loop()
    last_seen = loop.time()
    try:
        while max_batches is None or received < max_batches:
            if stop.is_set():
                break
            if not await sub.poll(100):
                if idle_timeout is not None and loop.time() - last_seen > idle_timeout:
                    break
                continue
            last_seen = loop.time()
            parts = await sub.recv_multipart()
            if len(parts) != 3 or len(parts[1]) != SEQ_BYTES:
                out.write(f"ignored a message of {len(parts)} frame(s): not [topic, seq, "
                          "payload]\n")
                continue
            t, seq_b, payload = parts
            if want and t != want:
                continue
            seq = int.from_bytes(seq_b, "big")
            received += 1
            back = (pos.last is not None and seq < pos.last
                    and pos.digests.get(seq) != _digest(payload))
            start = 0 if pos.last is None or back else pos.last + 1
            if replay and seq > start:
                got = [g for g in await _replay(ctx, replay, start, replay_timeout_ms)
                       if start <= g[1] < seq]
                for tt, s, p in sorted(got, key=lambda g: g[1]):
                    if pos.last is None or s > pos.last:
                        await publish(tt, s, p)
                        counts["replayed"] += 1
            await publish(t, seq, payload)
    finally:
        sub.close(linger=0)
        ctx.term()
        await _close(nc)
    return said(received)


def _recorded(endpoint: str) -> list[tuple[bytes, int, bytes]] | None:
    """The frames of a record file named as the source (None for a ZMQ endpoint)."""
    if "://" in endpoint or not os.path.isfile(endpoint):
        return None
    with open(endpoint, "rb") as fh:
        frames = read_frames(fh.read(), endpoint)
    out = []
    for f in frames:
        if f.seq is None:
            raise InputError(endpoint, f.record, 1, f"record {f.record} has no sequence number: "
                             "a relayed batch's message id needs one")
        raw = f.payload
        payload = bytes(raw) if isinstance(raw, (bytes, bytearray, memoryview)) else \
            msgspec.msgpack.encode(raw)
        out.append((f.topic, f.seq, payload))
    return out


def relay(endpoint: str, url: str, stream: str, subject: str, replay: str | None = None, *,
          instance: str | None = None, topic: str = "", idle_timeout: float | None = None,
          max_batches: int | None = None, out: IO[str] | None = None,
          stop: threading.Event | None = None, ready: threading.Event | None = None,
          replay_timeout_ms: int = 2000) -> int:
    """Run the relay (see the module docstring); returns the exit code. `stop` ends it (tests)."""
    o = out or sys.stdout
    try:
        import nats  # noqa: F401
        import zmq  # noqa: F401
    except ImportError:
        print(f"kvclaims relay: {jsw.MISSING_NATS}", file=sys.stderr)
        return EXIT_INPUT
    bad = jsw.check_url(url)
    if bad:
        o.write(f"kvclaims relay: {bad}\n")
        return EXIT_INPUT
    try:
        recorded = _recorded(endpoint)
    except InputError as err:
        o.write(f"{err}\n")
        return EXIT_INPUT
    stop = stop or threading.Event()
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        return asyncio.run(_relay(endpoint, url, stream, subject, replay, instance or endpoint,
                                  topic, idle_timeout, max_batches, o, stop, ready,
                                  replay_timeout_ms, recorded))
    except jsw.Stopped:
        o.write("kvclaims relay: stopped while waiting for the server\n")
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["relay"]
