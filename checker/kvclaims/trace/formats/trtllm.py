"""TensorRT-LLM's KV cache events (`KVCacheEventSerializer` dicts) as the neutral KV stream
(docs/formats.md; docs/model.md §5).

The shape (spec/formats.toml [trtllm], with its version note: the documented serializer, not a
run), one JSON object a line as `LLM.get_kv_cache_events()` returns them:

    {"event_id": int, "window_size": int, ["attention_dp_rank": int], "data": D}
    D = created {num_blocks_per_cache_level} | stored {parent_hash, blocks: [stored_block
        {block_hash, tokens: [unique_token {token_id, token_extra_id}], cache_level, priority}]}
      | removed {block_hashes} | updated {block_hash, cache_level: event_diff, priority: event_diff}

Each event is one batch: `event_id` (from 0 per manager) is `Batch.seq`, the publisher
(`Frame.stream`) is the attention-DP rank, `data_parallel_rank` that rank. `cache_level` 0/1 is
the medium (GPU/CPU). A `stored` block becomes `BlockStored` on its level; `updated` with a
`cache_level` diff is a move: `BlockStored` on the new level, then `BlockRemoved` on the old one
(TensorRT-LLM offloads before it evicts); a `priority` diff changes no residency (carried and
ignored). `removed` names no level: a block is on one level at a time in TensorRT-LLM's radix
tree, so the decoder follows each hash's level in the decided order and removes it there; a hash
it does not know is removed from the GPU (as vLLM's default medium), and a hash it sees on two
levels at once is undecodable (which copy went is not said: the stream is unknown from there,
never a guess). The radix tree holds one block per hash, so a hash stored again on its level
with no remove between is an inconsistent stream (undecodable: unknown from there), never a
second copy that would outlive a remove. `window_size` is the KV pool (carried as `kv_cache_spec_sliding_window`).
"""

from __future__ import annotations

from typing import Any

from kvclaims.trace.formats import base
from kvclaims.trace.formats.base import REMOVED, STORED, Where
from kvclaims.trace.kv_records import Frame
from kvclaims.trace.vllm_events import Batch, KVEvent

NAME = "trtllm"


class TrtllmImporter(base.JsonLinesImporter):
    name = NAME
    top = "event"

    def detect(self, head: bytes) -> bool:
        return base.has_keys(base.first_json_line(head), "event_id", "window_size", "data")

    def line_frames(self, line: base.Line, decl: base.Declaration, where: Where) -> list[Frame]:
        ev, seq, rank = _validated(line.value, decl, where)
        return [Frame(seq, ev, line.number, stream=rank)]

    def decoder(self) -> base.Decoder:
        return _Decoder(self.declaration)


def _validated(obj: Any, decl: base.Declaration, where: Where) -> tuple[dict[str, Any], int,
                                                                        int | None]:
    ev = base.checked(obj, "event", decl, where)
    event_id = base.integer(ev, "event_id", where)
    base.integer(ev, "window_size", where)
    rank = base.integer(ev, "attention_dp_rank", where, optional=True)
    d = where.at("data")
    data = ev["data"]
    kind = data.get("type") if isinstance(data, dict) else None
    if isinstance(data, dict) and "type" not in data:
        raise d.error("missing field 'type' of a TensorRT-LLM event's data")
    if kind not in decl.variants:
        raise d.error(f"unknown TensorRT-LLM event type {kind!r} (known: "
                      f"{', '.join(decl.variants)})", "type" if isinstance(data, dict) else "data")
    base.checked(data, kind, decl, d)
    if kind == "created":
        base.integers(data, "num_blocks_per_cache_level", d)
    elif kind == "stored":
        base.integer(data, "parent_hash", d, optional=True)
        for blk, b in base.items(data, "blocks", d):
            _typed(blk, "stored_block", decl, b)
            base.integer(blk, "block_hash", b)
            base.tier(decl, blk["cache_level"], "cache_level", b)
            base.text(blk, "lora_name", b, optional=True)
            base.text(blk, "cache_salt", b, optional=True)
            for tok, t in base.items(blk, "tokens", b):
                _typed(tok, "unique_token", decl, t)
                base.integer(tok, "token_id", t)
    elif kind == "removed":
        base.integers(data, "block_hashes", d)
    elif kind == "updated":
        base.integer(data, "block_hash", d)
        for key in ("cache_level", "priority"):
            diff = data.get(key)
            if diff is None:
                continue
            x = d.at(key)
            _typed(diff, "event_diff", decl, x)
            for side in ("old_value", "new_value"):
                if key == "cache_level":
                    base.tier(decl, diff[side], side, x)
                else:
                    base.integer(diff, side, x, minimum=None)
    assert event_id is not None
    return ev, event_id - decl.first_event_id, rank


def _typed(obj: Any, kind: str, decl: base.Declaration, where: Where) -> None:
    base.checked(obj, kind, decl, where)
    if obj["type"] != kind:
        raise where.error(f"expected a {kind!r} object, got type {obj['type']!r}", "type")


class _Decoder:
    """One stream's decoding: follows each hash's levels so `removed` knows where the block
    was (see the module docstring)."""

    def __init__(self, decl: base.Declaration) -> None:
        self.decl = decl
        self.levels: dict[tuple[int, int], list[str]] = {}  # (window, hash) -> media held

    def __call__(self, ev: dict[str, Any], seq: int | None) -> Batch:
        data = ev["data"]
        window = ev["window_size"]
        kind = data["type"]
        events: list[KVEvent] = []
        common = {"kv_cache_spec_sliding_window": window}
        if kind == "stored":
            parent = data["parent_hash"]
            run: list[dict[str, Any]] = []
            for blk in data["blocks"] + [None]:
                if run and (blk is None or blk["cache_level"] != run[0]["cache_level"]
                            or _identity(blk) != _identity(run[0])):
                    events.append(self._stored(run, parent, window, common))
                    parent = run[-1]["block_hash"]
                    run = []
                if blk is not None:
                    run.append(blk)
        elif kind == "removed":
            for h in data["block_hashes"]:
                held = self.levels.get((window, h), [])
                if len(set(held)) > 1:
                    raise ValueError(f"removed block {h} is held on {' and '.join(sorted(set(held)))}: "
                                     "which copy went is not said")
                medium = held[0] if held else self.decl.tiers["0"]
                self.levels.pop((window, h), None)
                events.append(KVEvent(REMOVED, {"block_hashes": [h], "medium": medium,
                                                **common}))
        elif kind == "updated" and data.get("cache_level") is not None:
            diff = data["cache_level"]
            old = self.decl.tiers[str(diff["old_value"])]
            new = self.decl.tiers[str(diff["new_value"])]
            h = data["block_hash"]
            if old != new:
                held = self.levels.setdefault((window, h), [])
                if old in held:
                    held.remove(old)
                held.append(new)
                events.append(KVEvent(STORED, {"block_hashes": [h], "parent_block_hash": None,
                                               "token_ids": [], "block_size": 0, "medium": new,
                                               **common}))
                events.append(KVEvent(REMOVED, {"block_hashes": [h], "medium": old, **common}))
        return Batch(0.0, _merged(events), ev.get("attention_dp_rank"), seq)

    def _stored(self, run: list[dict[str, Any]], parent: Any, window: int,
                common: dict[str, Any]) -> KVEvent:
        medium = self.decl.tiers[str(run[0]["cache_level"])]
        for blk in run:
            held = self.levels.setdefault((window, blk["block_hash"]), [])
            if medium in held:
                raise ValueError(f"block {blk['block_hash']} stored again on {medium} with no "
                                 "remove between: TensorRT-LLM keeps one block per hash, so the "
                                 "stream is inconsistent")
            held.append(medium)
        tokens = [t["token_id"] for blk in run for t in blk["tokens"]]
        fields: dict[str, Any] = {"block_hashes": [b["block_hash"] for b in run],
                                  "parent_block_hash": parent, "token_ids": tokens,
                                  "block_size": len(run[0]["tokens"]), "medium": medium,
                                  **common}
        for key in ("lora_name", "cache_salt"):
            if run[0].get(key) is not None:
                fields[key] = run[0][key]
        return KVEvent(STORED, fields)


def _identity(blk: dict[str, Any]) -> tuple[Any, Any]:
    return blk.get("lora_name"), blk.get("cache_salt")


def _merged(events: list[KVEvent]) -> list[KVEvent]:
    """Consecutive removes on one medium as one BlockRemoved (as vLLM-shaped streams carry)."""
    out: list[KVEvent] = []
    for e in events:
        last = out[-1] if out else None
        if (last is not None and e.type == REMOVED and last.type == REMOVED
                and last.fields["medium"] == e.fields["medium"]):
            out[-1] = KVEvent(REMOVED, {**last.fields, "block_hashes":
                                        last.fields["block_hashes"] + e.fields["block_hashes"]})
        else:
            out.append(e)
    return out


# ---- writing (samples, round trips) -----------------------------------------------------------
def serialized(batch: Batch, event_id: int, window_size: int, block_size: int,
               tokens: dict[int, list[int]] | None = None) -> list[dict[str, Any]]:
    """A neutral batch (GPU/CPU media) as the serializer dicts TensorRT-LLM would return for it,
    numbered from `event_id` (one dict per neutral event). `tokens` gives a stored block's
    token ids (default: `block_size` zeros)."""
    levels = {v: int(k) for k, v in base.declarations()[NAME].tiers.items()}
    out = []
    for i, e in enumerate(batch.events):
        f = e.fields
        if e.type == STORED:
            blocks = [{"type": "stored_block", "block_hash": h,
                       "tokens": [{"type": "unique_token", "token_id": t, "token_extra_id": 0}
                                  for t in (tokens or {}).get(h, [0] * block_size)],
                       "cache_level": levels[f.get("medium") or "GPU"], "priority": 35}
                      for h in f["block_hashes"]]
            data: dict[str, Any] = {"type": "stored", "parent_hash": f.get("parent_block_hash"),
                                    "blocks": blocks}
        elif e.type == REMOVED:
            data = {"type": "removed", "block_hashes": list(f["block_hashes"])}
        else:
            raise ValueError("TensorRT-LLM has no event for AllBlocksCleared")
        rec: dict[str, Any] = {"event_id": event_id + i, "window_size": window_size, "data": data}
        if batch.data_parallel_rank is not None:
            rec["attention_dp_rank"] = batch.data_parallel_rank
        out.append(rec)
    return out
