"""Neutral KV streams written in every runtime format kvclaims imports (tests of
kvclaims.trace.formats): one scenario, written once as neutral batches, seen through each
format's own writer."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from kvclaims.trace.formats import lmcache, trtllm
from kvclaims.trace.formats.base import REMOVED, STORED
from kvclaims.trace.formats.dynamo import router_event
from kvclaims.trace.vllm_events import Batch, KVEvent

FORMATS = ("vllm", "dynamo", "trtllm", "lmcache")
# The tier a claim is on in each format's samples, and another tier of the same format.
CLAIM_TIER = {"vllm": "GPU", "dynamo": "GPU", "trtllm": "GPU", "lmcache": "CPU"}
OTHER_TIER = {"vllm": "CPU", "dynamo": "CPU", "trtllm": "CPU", "lmcache": "DISK"}
_DYNAMO_TIER = {"GPU": "device", "CPU": "host_pinned", "DISK": "disk", "EXTERNAL": "external"}


def stored(hashes: list[int], medium: str) -> KVEvent:
    return KVEvent(STORED, {"block_hashes": list(hashes), "parent_block_hash": None,
                            "token_ids": [], "block_size": 16, "medium": medium})


def removed(hashes: list[int], medium: str) -> KVEvent:
    return KVEvent(REMOVED, {"block_hashes": list(hashes), "medium": medium})


def records(fmt: str, batches: list[list[KVEvent]]) -> list[bytes | Any]:
    """The stream's records (JSON lines as bytes; vLLM: msgpack records), one or more a batch."""
    out: list[Any] = []
    if fmt == "vllm":
        for i, events in enumerate(batches):
            out.append([i, [0.0, [{"type": e.type, **e.fields} for e in events], None]])
        return out
    counters: dict[str, int] = {}
    for events in batches:
        for e in events:
            b = Batch(0.0, [e], None)
            if fmt == "dynamo":
                objs = router_event(b, len(out) + 1, 7, _DYNAMO_TIER[e.fields.get("medium", "GPU")])
            elif fmt == "trtllm":
                objs = trtllm.serialized(b, len(out), 4096, 16)
            else:
                objs = lmcache.messages(b, counters, "inst-0", 0)
            out += [json.dumps(o).encode() for o in objs]
    return out


def encode(fmt: str, recs: list[Any]) -> bytes:
    if fmt == "vllm":
        return msgspec.msgpack.encode(recs)
    return b"".join(r + b"\n" for r in recs)


def stream(fmt: str, batches: list[list[KVEvent]]) -> bytes:
    return encode(fmt, records(fmt, batches))
