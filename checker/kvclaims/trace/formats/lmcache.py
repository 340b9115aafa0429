"""LMCache's controller messages (admit / evict / pin) as the neutral KV stream (docs/formats.md;
docs/model.md §5).

The shape (spec/formats.toml [lmcache], with its version note: lmcache 0.5.6's msgspec tagged
structs, read, not run), one JSON object a line, tag key `type`:

    {"type": "KVAdmitMsg"|"KVEvictMsg", "instance_id", "worker_id", "key", "location", "seq_num"}
    {"type": "BatchedKVOperationMsg", "instance_id", "worker_id", "location",
     "operations": [{"op_type": "admit"|"evict", "key", "seq_num"}]}
    {"type": "PinWorkerMsg", "worker_event_id", "location", "tokens"}

LMCache numbers operations, not messages: `seq_num` from 0 per (instance, worker, location)
(`BatchedMessageSender`), so each operation is one batch, numbered by its `seq_num`, and its
publisher (`Frame.stream`) is that triple; `instance_id` is `Batch.instance`, the location the
medium (spec/formats.toml tiers: LocalCPUBackend CPU, LocalDiskBackend DISK). `key` is LMCache's
chunk hash, not an engine block hash: a claim manifest for LMCache lists the claim's chunk
hashes as `block_hashes` and the tier its claim is on (`medium = "CPU"`). A pin changes no
residency (it is a retrieval-window lock LMCache force-releases after a timeout): carried and
ignored. A line of a batched message is one record whose operations are its events in order;
findings are located at the line. LMCache's controller keeps a set of keys per location, so a
key admitted again with no evict between is an inconsistent stream (undecodable: unknown from
there), never a second copy that would outlive an evict.
"""

from __future__ import annotations

import re
from typing import Any

from kvclaims.trace.formats import base
from kvclaims.trace.formats.base import REMOVED, STORED, Where
from kvclaims.trace.kv_records import Frame
from kvclaims.trace.vllm_events import Batch, KVEvent

NAME = "lmcache"
ADMIT, EVICT = "admit", "evict"
_SINGLE = {"KVAdmitMsg": ADMIT, "KVEvictMsg": EVICT}
_BATCHED = "BatchedKVOperationMsg"


class LmcacheImporter(base.JsonLinesImporter):
    name = NAME
    top = "message"

    def detect(self, head: bytes) -> bool:
        line = base.first_json_line(head)
        m = re.search(rb'"type"\s*:\s*"(\w+)"', line or b"")
        return m is not None and m.group(1).decode() in self.declaration.variants

    def line_frames(self, line: base.Line, decl: base.Declaration, where: Where) -> list[Frame]:
        return _frames(line, decl, where)

    def decoder(self) -> base.Decoder:
        decl = self.declaration
        held: set[tuple[str, str, int]] = set()  # (instance, location, key) admitted

        def decode(op: dict[str, Any], seq: int | None) -> Batch:
            kind = STORED if op["op_type"] == ADMIT else REMOVED
            at = (op["instance_id"], op["location"], op["key"])
            if kind == STORED and at in held:
                raise ValueError(f"chunk {op['key']} admitted again at {op['location']} with no "
                                 "evict between: LMCache keeps one copy per key and location, "
                                 "so the stream is inconsistent")
            (held.add if kind == STORED else held.discard)(at)
            fields: dict[str, Any] = {"block_hashes": [op["key"]],
                                      "medium": decl.tiers[op["location"]]}
            if kind == STORED:
                fields["parent_block_hash"] = None
            return Batch(0.0, [KVEvent(kind, fields)], None, seq, op["instance_id"])

        return decode


def _frames(line: base.Line, decl: base.Declaration, where: Where) -> list[Frame]:
    msg = line.value
    kind = msg.get("type") if isinstance(msg, dict) else None
    if isinstance(msg, dict) and "type" not in msg:
        raise where.error("missing field 'type' (the message's tag)")
    if kind not in decl.variants:
        raise where.error(f"unknown LMCache message type {kind!r} (known: "
                          f"{', '.join(decl.variants)})", "type" if isinstance(msg, dict) else None)
    base.checked(msg, kind, decl, where)
    if kind not in _SINGLE and kind != _BATCHED:
        return []  # a pin: carried and ignored (spec/formats.toml)
    instance = base.text(msg, "instance_id", where)
    worker = base.integer(msg, "worker_id", where)
    location = base.text(msg, "location", where)
    base.tier(decl, location, "location", where)
    if kind in _SINGLE:
        ops = [{"op_type": _SINGLE[kind], "key": msg["key"], "seq_num": msg["seq_num"]}]
        wheres = [where]
    else:
        pairs = base.items(msg, "operations", where)
        ops = [op for op, _ in pairs]
        wheres = [w for _, w in pairs]
    out = []
    for op, w in zip(ops, wheres):
        if kind == _BATCHED:
            base.checked(op, "KVOpEvent", decl, w)
            if op["op_type"] not in (ADMIT, EVICT):
                raise w.error(f"unknown op_type {op['op_type']!r} (known: admit, evict)",
                              "op_type")
        base.integer(op, "key", w)
        seq = base.integer(op, "seq_num", w)
        assert seq is not None
        out.append(Frame(seq - decl.first_event_id,
                         {"op_type": op["op_type"], "key": op["key"], "location": location,
                          "instance_id": instance},
                         line.number, stream=(instance, worker, location)))
    return out


# ---- writing (samples, round trips) -----------------------------------------------------------
def messages(batch: Batch, counters: dict[str, int], instance_id: str, worker_id: int
             ) -> list[dict[str, Any]]:
    """A neutral batch (CPU/DISK media) as the admit/evict messages LMCache's worker sends for
    it, one per chunk, each numbered by `counters` (location -> next seq_num, advanced here)."""
    where = {v: k for k, v in base.declarations()[NAME].tiers.items()}
    out = []
    for e in batch.events:
        if e.type not in (STORED, REMOVED):
            raise ValueError("LMCache's controller messages have no AllBlocksCleared")
        kind = "KVAdmitMsg" if e.type == STORED else "KVEvictMsg"
        location = where[e.fields.get("medium") or "CPU"]
        for h in e.fields["block_hashes"]:
            n = counters.get(location, 0)
            counters[location] = n + 1
            out.append({"type": kind, "instance_id": instance_id, "worker_id": worker_id,
                        "key": h, "location": location, "seq_num": n})
    return out
