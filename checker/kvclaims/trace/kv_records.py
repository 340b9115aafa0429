"""Recorded KV event streams and the order their batches are decided in (docs/model.md §6 R-stream).

A runtime publishes its KV events as numbered batches (vLLM's `ZmqEventPublisher`: frames
`[topic, seq, payload]`, `seq` 0, 1, 2 ... per publisher; docs/vllm.md). This module decides two
things, and nothing about claims:

- what a record file holds (:func:`read_frames`): a msgpack array of records, each `[seq, batch]`
  (what `kvclaims watch --record` writes), or the raw frame layout `[topic, seq (8 bytes,
  big-endian), payload (msgpack bytes)]`; a file holding one bare `KVEventBatch` is one record
  without a sequence number. A malformed file is a located :class:`InputError` (line = record).
- in which order the received frames are decided (:class:`Sequencer`): in sequence order, with a
  bounded reorder window counted in frames. A batch not there when `window` later batches have
  arrived is declared missing (a gap); a stream whose first batch is not 0 and is never filled
  has missed history; a number seen again with the same content is a duplicate (dropped and
  said), with other content or going back a publisher restart; a batch that arrives after its gap
  was declared is dropped and said. Every anomaly that can hide events is `unknown`: the caller
  makes every verdict after it unknown, never conformant.

`kvclaims watch` and `kvclaims check` feed the same frames, in arrival order, through the same
Sequencer (kvclaims.kvstream), so the live and the offline answer are one answer.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from kvclaims.trace.model import InputError

DEFAULT_WINDOW = 32  # frames a late batch may trail by before its number is declared missing
SEQ_BYTES = 8
_DIGESTS_KEPT = 1 << 16  # decided batches remembered for duplicate detection
# msgpack's array markers: fixarray 0x90-0x9f, array 16 (0xdc), array 32 (0xdd)
_ARRAY_START = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}


def looks_like_records(head: bytes) -> bool:
    """Whether `head` starts like a msgpack array (a record file or one KVEventBatch)."""
    return bool(head) and head[0] in _ARRAY_START


@dataclass(frozen=True, slots=True)
class Frame:
    """One received batch: its sequence number (None when the record has none), its payload (a
    decoded msgpack object, or bytes not yet decoded), its 1-based record number and topic.
    `stream` names the numbering `seq` belongs to where a file holds several publishers' (None:
    the file's one numbering; kvclaims.trace.formats)."""

    seq: int | None
    payload: Any
    record: int
    topic: bytes = b""
    stream: Any = None

    @property
    def digest(self) -> bytes:
        """The payload's content, canonically encoded, hashed (duplicates compare by it)."""
        raw = self.payload
        if isinstance(raw, (bytes, bytearray, memoryview)):
            try:
                raw = msgspec.msgpack.decode(raw)
            except msgspec.DecodeError:
                return hashlib.sha256(bytes(self.payload)).digest()
        return hashlib.sha256(msgspec.msgpack.encode(raw)).digest()


def frame_record(frame: Frame) -> list[Any]:
    """The record `kvclaims watch --record` writes for a frame: `[seq, batch]` (or the raw
    frame layout when the payload is not msgpack, so that it is kept exactly)."""
    raw = frame.payload
    if isinstance(raw, (bytes, bytearray, memoryview)):
        try:
            raw = msgspec.msgpack.decode(raw)
        except msgspec.DecodeError:
            return [frame.topic, (frame.seq or 0).to_bytes(SEQ_BYTES, "big"), bytes(raw)]
    return [frame.seq, raw]


def encode_frames(frames: list[Frame]) -> bytes:
    return msgspec.msgpack.encode([frame_record(f) for f in frames])


class RecordWriter:
    """Writes a record file as frames arrive (`kvclaims watch --record`): a msgpack array 32
    whose count is rewritten after each record, so the file is whole after every frame."""

    def __init__(self, path: str) -> None:
        self.fh = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.count = 0
        self.fh.write(b"\xdd" + (0).to_bytes(4, "big"))
        self.fh.flush()

    def add(self, frame: Frame) -> None:
        self.fh.write(msgspec.msgpack.encode(frame_record(frame)))
        self.count += 1
        self.fh.seek(1)
        self.fh.write(self.count.to_bytes(4, "big"))
        self.fh.seek(0, 2)
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def read_frames(data: bytes, file: str) -> list[Frame]:
    """The frames of a record file, in recorded (arrival) order; a located InputError when the
    file is not one (line = record number, column 1)."""
    try:
        raw = msgspec.msgpack.decode(data)
    except msgspec.DecodeError as err:
        raise InputError(file, 1, 1, f"not a msgpack KV event record file: {err}") from None
    if not isinstance(raw, list):
        raise InputError(file, 1, 1, "a KV event record file is a msgpack array of records "
                         f"(or one KVEventBatch), got {type(raw).__name__}")
    if raw and isinstance(raw[0], (int, float)) and not isinstance(raw[0], bool):
        return [Frame(None, raw, 1)]  # one bare KVEventBatch [ts, events, rank]
    frames = []
    for i, rec in enumerate(raw, 1):
        frames.append(_record(rec, i, file))
    return frames


def _record(rec: Any, i: int, file: str) -> Frame:
    if isinstance(rec, list) and len(rec) == 2 and type(rec[0]) is int:
        if rec[0] < 0:
            raise InputError(file, i, 1, f"record {i}: sequence number {rec[0]} is negative")
        return Frame(rec[0], rec[1], i)
    if (isinstance(rec, list) and len(rec) == 3 and isinstance(rec[0], (bytes, str))
            and isinstance(rec[1], bytes) and isinstance(rec[2], bytes)):
        if len(rec[1]) != SEQ_BYTES:
            raise InputError(file, i, 1, f"record {i}: a raw frame's sequence number is "
                             f"{SEQ_BYTES} bytes, got {len(rec[1])}")
        topic = rec[0].encode() if isinstance(rec[0], str) else rec[0]
        return Frame(int.from_bytes(rec[1], "big"), rec[2], i, topic)
    if isinstance(rec, list) and rec and isinstance(rec[0], float):
        return Frame(None, rec, i)  # a bare batch among records: no sequence number
    raise InputError(file, i, 1, f"record {i}: expected [seq, batch] or a raw frame [topic, "
                     "seq (8 bytes), payload]")


# ---- the decided order ------------------------------------------------------------------------
GAP = "gap"
MISSED_HISTORY = "missed_history"
RESTART = "restart"
CONFLICT = "conflict"
UNSEQUENCED = "unsequenced"
EMPTY = "empty"
UNDECODABLE = "undecodable"
DUPLICATE = "duplicate"
LATE = "late"
# A batch of another data-parallel rank (another KV pool, another shard: docs/fleet.md): its
# events are not joined with this pool's, and the stream is not decidable as one.
CROSS_SHARD = "cross_shard"
# Found by the manifest join (kvclaims.trace.vllm_events.StreamJoin; docs/formats.md "Stream
# consistency"), on an instance some claim is scoped to: a deduplicating runtime's store of a live
# block or remove of a block not stored; a per-copy runtime's remove the copy count cannot settle;
# claims that name no instance on a stream carrying several.
INCONSISTENT = "inconsistent"
UNSETTLED_COPIES = "unsettled_copies"
UNSCOPED_INSTANCE = "unscoped_instance"
DROPPED = "dropped"  # the publisher says it dropped events (a format's dropped-event counter)
# The same findings on an instance no claim is scoped to: said, deciding nothing.
OUT_OF_SCOPE = "out_of_scope"
# Anomalies after which events may be missing: every verdict after them is unknown.
UNKNOWN_KINDS = frozenset({GAP, MISSED_HISTORY, RESTART, CONFLICT, UNSEQUENCED, EMPTY,
                           UNDECODABLE, CROSS_SHARD, INCONSISTENT, UNSETTLED_COPIES,
                           UNSCOPED_INSTANCE, DROPPED})


@dataclass(frozen=True, slots=True)
class Anomaly:
    """Something wrong with the stream's numbering, located at the record that showed it (None:
    at the end of the stream). `missing` is the range of batch numbers lost, when there is one."""

    kind: str
    message: str
    record: int | None
    seq: int | None = None
    missing: tuple[int, int] | None = None

    @property
    def unknown(self) -> bool:
        return self.kind in UNKNOWN_KINDS


def span(a: int, b: int) -> str:
    """Batch numbers [a, b) in words."""
    return f"batch {a}" if b - a == 1 else f"batches {a}..{b - 1}"


Step = tuple[str, Any]  # ("batch", Frame) | ("anomaly", Anomaly)


@dataclass
class Sequencer:
    """Put frames in sequence order (see the module docstring); push() and finish() return the
    steps to decide, in order."""

    window: int = DEFAULT_WINDOW
    expected: int = 0
    decided: int = 0  # batches handed out in this run
    _buffer: dict[int, Frame] = field(default_factory=dict)
    # seq -> digest, record; ordered so that forgetting the oldest is O(1) (a plain dict's
    # pop of its first key walks the deleted slots before it: quadratic on a long stream)
    _seen: OrderedDict[int, tuple[bytes, int]] = field(default_factory=OrderedDict)
    _gaps: list[tuple[int, int]] = field(default_factory=list)
    _last_record: int = 0
    received: int = 0

    def push(self, frame: Frame) -> list[Step]:
        self.received += 1
        self._last_record = frame.record
        out: list[Step] = []
        s = frame.seq
        if s is None:
            out.append(("anomaly", Anomaly(UNSEQUENCED, f"record {frame.record} has no sequence "
                        "number: missed or repeated batches cannot be detected", frame.record)))
            out.append(("batch", frame))
            return out
        if s >= self.expected:
            held = self._buffer.get(s)
            if held is not None:
                return self._again(frame, held)
            self._buffer[s] = frame
            out += self._drain()
            if len(self._buffer) > self.window:
                out += self._declare(frame.record)
            return out
        seen = self._seen.get(s)
        if seen is not None and seen[0] == frame.digest:
            return [("anomaly", Anomaly(DUPLICATE, f"batch {s} again at record {frame.record} "
                     f"(first at record {seen[1]}): dropped", frame.record, s))]
        if seen is None and any(a <= s < b for a, b in self._gaps):
            return [("anomaly", Anomaly(LATE, f"batch {s} arrived at record {frame.record}, after "
                     f"its gap was declared (later than the reorder window of {self.window} "
                     "batches): dropped", frame.record, s))]
        return self._restart(frame)

    def holds(self, seq: int) -> bool:
        """Whether batch `seq` is waiting in the reorder window."""
        return seq in self._buffer

    def _again(self, frame: Frame, held: Frame) -> list[Step]:
        s, rec = frame.seq, held.record
        if held.digest == frame.digest:
            return [("anomaly", Anomaly(DUPLICATE, f"batch {s} again at record {frame.record} "
                     f"(first at record {rec}): dropped", frame.record, s))]
        return [("anomaly", Anomaly(CONFLICT, f"batch {s} at record {frame.record} differs from "
                 f"batch {s} at record {rec}: two batches carry one number; the later is "
                 "dropped and the stream is inconsistent", frame.record, s))]

    def _drain(self) -> list[Step]:
        out: list[Step] = []
        while self.expected in self._buffer:
            f = self._buffer.pop(self.expected)
            self._remember(f)
            out.append(("batch", f))
            self.expected += 1
            self.decided += 1
        return out

    def _remember(self, f: Frame) -> None:
        assert f.seq is not None
        self._seen[f.seq] = (f.digest, f.record)
        if len(self._seen) > _DIGESTS_KEPT:
            self._seen.popitem(last=False)

    def _declare(self, record: int | None) -> list[Step]:
        """The earliest missing number is given up: a gap up to the first buffered batch."""
        nxt = min(self._buffer)
        a, b = self.expected, nxt
        self._gaps.append((a, b))
        after = self._buffer[nxt].record  # located at the first record after the gap
        where = f"at record {record}" if record is not None else "at the end of the stream"
        if self.decided == 0 and a == 0:
            were = "was" if b == 1 else "were"
            an = Anomaly(MISSED_HISTORY, f"the stream starts at batch {b} (record {after}): "
                         f"{span(0, b)} {were} published before the first record received "
                         f"(missed history; declared {where})", after, b, (a, b))
        else:
            an = Anomaly(GAP, f"{span(a, b)} missing before batch {b} (record {after}; "
                         f"declared {where})", after, b, (a, b))
        self.expected = nxt
        return [("anomaly", an), *self._drain()]

    def _restart(self, frame: Frame) -> list[Step]:
        """The numbering went back: a new run of the publisher starts (from 0: its batches
        before `frame` may still arrive within the window, or are its missed history)."""
        s = frame.seq
        assert s is not None
        out: list[Step] = []
        while self._buffer:
            out += self._declare(frame.record)
        last = self.expected - 1
        out.append(("anomaly", Anomaly(RESTART, f"sequence goes back from {last} to {s} at record "
                    f"{frame.record}: the publisher restarted, and what its runtime did in between "
                    "is unknown", frame.record, s)))
        self.expected = 0
        self.decided = 0
        self._seen.clear()
        self._gaps.clear()
        self._buffer[s] = frame
        out += self._drain()
        if len(self._buffer) > self.window:
            out += self._declare(frame.record)
        return out

    def finish(self) -> list[Step]:
        out: list[Step] = []
        while self._buffer:
            out += self._declare(None)
        if self.received == 0:
            out.append(("anomaly", Anomaly(EMPTY, "no batch received: nothing was decided",
                                           None)))
        return out
