"""NVIDIA Dynamo's `RouterEvent`s as the neutral KV stream (docs/formats.md; docs/model.md §5).

The shape (spec/formats.toml [dynamo], with its version note): one JSON object a line,

    {"worker_id": u64, "storage_tier": "device"|"host_pinned"|"disk"|"external",
     "residency_domain": ..., "event": {"event_id": u64, "dp_rank": u32,
     "data": {"stored": {"parent_hash", "start_position", "blocks": [{"block_hash",
     "tokens_hash", "mm_extra_info"}]}} | {"removed": {"block_hashes": [...]}} | "cleared"}}

as Dynamo's router consumes it and its event plane carries it (msgpack there, in an envelope
:func:`event_plane_events` opens). Each RouterEvent is one batch: `event_id` (from 1 per
publisher, measured on ai-dynamo-runtime 1.6.1) minus one is `Batch.seq`, so the Sequencer
decides gaps, duplicates and restarts per publisher (`Frame.stream` = (worker_id, dp_rank));
`worker_id` is `Batch.instance`, `dp_rank` its `data_parallel_rank`, and `storage_tier` the
events' `medium` (spec/formats.toml tiers). `block_hash` is the engine's own hash (vLLM's when
Dynamo relays vLLM), so a claim manifest of vLLM hashes applies; `tokens_hash` (Dynamo's router
hash) is carried and ignored.
"""

from __future__ import annotations

from typing import Any

import msgspec

from kvclaims.trace.formats import base
from kvclaims.trace.formats.base import CLEARED, REMOVED, STORED, Where
from kvclaims.trace.kv_records import Frame
from kvclaims.trace.vllm_events import Batch, KVEvent

NAME = "dynamo"
ENVELOPE_VERSION = 1  # the event plane's envelope: version byte, 4-byte length, msgpack map


class DynamoImporter(base.JsonLinesImporter):
    name = NAME
    top = "router_event"

    def detect(self, head: bytes) -> bool:
        return base.has_keys(base.first_json_line(head), "worker_id", "event", "event_id")

    def line_frames(self, line: base.Line, decl: base.Declaration, where: Where) -> list[Frame]:
        ev, seq, stream = _validated(line.value, decl, where)
        return [Frame(seq, ev, line.number, stream=stream)]

    def decoder(self) -> base.Decoder:
        decl = self.declaration

        def decode(payload: Any, seq: int | None) -> Batch:
            return _batch(payload, seq, decl)

        return decode


def _validated(obj: Any, decl: base.Declaration, where: Where) -> tuple[dict[str, Any], int,
                                                                        tuple[int, int]]:
    """Check one RouterEvent against the declaration; (it, its Sequencer number, publisher)."""
    re_ = base.checked(obj, "router_event", decl, where)
    worker = base.integer(re_, "worker_id", where)
    if "storage_tier" in re_:
        base.tier(decl, re_["storage_tier"], "storage_tier", where)
    w = where.at("event")
    ev = base.checked(re_["event"], "event", decl, w)
    event_id = base.integer(ev, "event_id", w)
    rank = base.integer(ev, "dp_rank", w, optional=True) or 0
    if event_id is None or event_id < decl.first_event_id:
        raise w.error(f"event_id {event_id} is below {decl.first_event_id}, the first a "
                      "Dynamo publisher sends", "event_id")
    data = ev["data"]
    d = w.at("data")
    if isinstance(data, str):
        if data not in decl.variants or data != "cleared":
            raise d.error(f"unknown Dynamo event variant {data!r} (known: "
                          f"{', '.join(decl.variants)})", "data")
    elif isinstance(data, dict) and data:
        for variant in data:
            if variant not in decl.variants or variant == "cleared":
                raise d.error(f"unknown Dynamo event variant {variant!r} (known: "
                              f"{', '.join(decl.variants)})", variant)
        if len(data) != 1:
            raise d.error(f"field 'data' holds {len(data)} variants ({', '.join(data)}); a "
                          "Dynamo event is one", "data")
        (variant, body), = data.items()
        b = d.at(variant)
        base.checked(body, variant, decl, b)
        if variant == "stored":
            base.integer(body, "parent_hash", b, optional=True)
            for blk, bb in base.items(body, "blocks", b):
                base.checked(blk, "block", decl, bb)
                base.integer(blk, "block_hash", bb)
        else:
            base.integers(body, "block_hashes", b)
    else:
        raise d.error("field 'data' must name one variant: a map with one of "
                      f"{', '.join(repr(v) for v in decl.variants if v != 'cleared')}, or the "
                      "string 'cleared'", "data")
    assert worker is not None
    return re_, event_id - decl.first_event_id, (worker, rank)


def _batch(re_: dict[str, Any], seq: int | None, decl: base.Declaration) -> Batch:
    ev = re_["event"]
    medium = decl.tiers[re_.get("storage_tier", "device")]
    data = ev["data"]
    if data == "cleared":
        events = [KVEvent(CLEARED, {})]
    elif "stored" in data:
        s = data["stored"]
        events = [KVEvent(STORED, {"block_hashes": [b["block_hash"] for b in s["blocks"]],
                                   "parent_block_hash": s.get("parent_hash"),
                                   "medium": medium})]
    else:
        events = [KVEvent(REMOVED, {"block_hashes": list(data["removed"]["block_hashes"]),
                                    "medium": medium})]
    return Batch(0.0, events, ev.get("dp_rank", 0), seq, str(re_["worker_id"]))


# ---- writing (samples, round trips) and the event plane ----------------------------------------
def router_event(batch: Batch, event_id: int, worker_id: int, tier: str = "device") -> list[
        dict[str, Any]]:
    """A neutral batch as the RouterEvents a Dynamo publisher sends for it, numbered from
    `event_id` (one RouterEvent per neutral event)."""
    out = []
    for i, e in enumerate(batch.events):
        if e.type == STORED:
            data: Any = {"stored": {"parent_hash": e.fields.get("parent_block_hash"),
                                    "start_position": None,
                                    "blocks": [{"block_hash": h, "tokens_hash": 0,
                                                "mm_extra_info": None}
                                               for h in e.fields["block_hashes"]]}}
        elif e.type == REMOVED:
            data = {"removed": {"block_hashes": list(e.fields["block_hashes"])}}
        else:
            data = "cleared"
        out.append({"worker_id": worker_id, "storage_tier": tier, "residency_domain": "worker",
                    "event": {"event_id": event_id + i, "data": data,
                              "dp_rank": batch.data_parallel_rank or 0}})
    return out


def event_plane_events(frames: list[bytes]) -> list[dict[str, Any]]:
    """The RouterEvents of one message of Dynamo's ZMQ event plane, as measured on
    ai-dynamo-runtime 1.6.1: frames [topic, publisher_id (8 bytes), sequence (8 bytes),
    envelope], the envelope a version byte, a 4-byte big-endian length and a msgpack map whose
    `payload` is a msgpack array of RouterEvents. Raises ValueError on anything else."""
    if len(frames) != 4:
        raise ValueError(f"a Dynamo event-plane message has 4 frames, got {len(frames)}")
    env = frames[3]
    if len(env) < 5 or env[0] != ENVELOPE_VERSION:
        raise ValueError("not a version-1 Dynamo event-plane envelope")
    n = int.from_bytes(env[1:5], "big")
    if len(env) < 5 + n:
        raise ValueError("truncated Dynamo event-plane envelope")
    try:
        head = msgspec.msgpack.decode(env[5:5 + n])
        payload = head["payload"] if isinstance(head, dict) else None
        events = msgspec.msgpack.decode(payload) if isinstance(payload, bytes) else None
    except (msgspec.DecodeError, KeyError) as err:
        raise ValueError(f"undecodable Dynamo event-plane envelope: {err}") from None
    if not isinstance(events, list):
        raise ValueError("a Dynamo event-plane payload is an array of RouterEvents")
    return events


def validated(obj: Any, file: str, number: int) -> tuple[dict[str, Any], int, tuple[int, int]]:
    """One RouterEvent received live, checked as a file line would be (located at `number`)."""
    raw = msgspec.json.encode(obj)
    return _validated(obj, base.declarations()[NAME],
                      Where(file, base.Line(number, raw, obj), "router_event"))
