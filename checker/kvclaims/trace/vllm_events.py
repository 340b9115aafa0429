"""vLLM `KVEventBatch` (msgpack) import and the claim-manifest join (docs/model.md §5 runtime streams).

vLLM's KV events are block/hash scoped: no claim, no request, no block id. A claim manifest
(TOML) names each claim's ordered chain of block hashes, given explicitly or as token ids hashed
with vLLM's own block hasher. :class:`StreamJoin` turns the stream into events the checker
decides:

- a claimed hash whose first live GPU copy is stored (`BlockStored`) becomes
  `resident_block_materialized` at its logical position, on a synthetic block id per
  (claim, position) (the stream has no block ids);
- `BlockRemoved` is per cached copy, so copies are reference-counted per hash; when the last GPU
  copy of a claimed hash goes, that position is lost: `allocation_victim_selected` with
  `victim_reason = cached_prefix_reuse` (vLLM gives no reason; allocation eviction is the only
  ordinary cause);
- `AllBlocksCleared` loses every live claimed position at once;
- a batch sequence gap that cannot be filled (or missed history, or a publisher restart) skips
  one `event_sequence` number and writes a `kv_stream_gap` marker, which the checker reads as a
  stream gap: every verdict after it is unknown, never conformant (R-stream). Which batches are
  missing is decided by kvclaims.trace.kv_records.Sequencer, not here.

Claims are declared by the manifest (`resident_claim_accepted`, `declared_by = "manifest"`), and
`resident_claim_materialized` is written when the manifest's predicate first holds. Wire layouts:
0.33 (`[ts, [ {"type": ...}, ...], dp_rank]`) and the older all-array layout
(`[ts, [ ["BlockStored", ...], ...], dp_rank]`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from typing import Any, Iterable

import msgspec

from kvclaims.trace.model import Event, InputError

GPU = "GPU"
BLOCK_ID_BASE = 1_000_000  # synthetic block ids: the stream carries none

# Field order on the wire (vLLM 0.33 distributed/kv_events.py; array_like layouts use it).
WIRE_FIELDS: dict[str, tuple[str, ...]] = {
    "BlockStored": ("block_hashes", "parent_block_hash", "token_ids", "block_size", "lora_id",
                    "medium", "lora_name", "extra_keys", "group_idx", "kv_cache_spec_kind",
                    "kv_cache_spec_sliding_window", "locality", "ownership", "session_id",
                    "lookahead_token_ids"),
    "BlockRemoved": ("block_hashes", "medium", "group_idx", "locality", "ownership"),
    "AllBlocksCleared": (),
}


@dataclass(frozen=True)
class KVEvent:
    type: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """One published batch. `instance` names the publishing worker where the format carries one
    (Dynamo's `worker_id`; None for vLLM and SGLang, whose stream is one instance's): with
    `data_parallel_rank` it is the instance part of a block's identity (docs/model.md §5)."""

    ts: float
    events: list[KVEvent]
    data_parallel_rank: int | None = None
    seq: int | None = None
    instance: str | None = None


def _hash_key(h: Any) -> Any:
    if isinstance(h, (bytes, bytearray)):
        return bytes(h)
    if isinstance(h, str):
        s = h.strip()
        return int(s, 16) if s.lower().startswith("0x") else int(s)
    return h


def decode_event(raw: Any) -> KVEvent:
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind not in WIRE_FIELDS:
            raise ValueError(f"unknown KV event type {kind!r}")
        return KVEvent(kind, {k: v for k, v in raw.items() if k != "type"})
    if isinstance(raw, (list, tuple)) and raw and isinstance(raw[0], str):
        kind = raw[0]
        if kind not in WIRE_FIELDS:
            raise ValueError(f"unknown KV event type {kind!r}")
        names = WIRE_FIELDS[kind]
        if len(raw) - 1 > len(names):
            raise ValueError(f"{kind} array has {len(raw) - 1} fields, at most {len(names)} known")
        return KVEvent(kind, dict(zip(names, raw[1:])))
    raise ValueError(f"a KV event must be a tagged map or a tagged array, got {type(raw).__name__}")


def decode_batch(payload: bytes | Any, seq: int | None = None) -> Batch:
    """One `KVEventBatch` from msgpack bytes (or an already decoded object)."""
    raw = msgspec.msgpack.decode(payload) if isinstance(payload, (bytes, bytearray,
                                                                  memoryview)) else payload
    if isinstance(raw, dict):  # a map-encoded batch (not what vLLM sends, but unambiguous)
        ts, events, rank = raw.get("ts"), raw.get("events"), raw.get("data_parallel_rank")
    elif isinstance(raw, (list, tuple)) and 2 <= len(raw) <= 3:
        ts, events = raw[0], raw[1]
        rank = raw[2] if len(raw) == 3 else None
    else:
        raise ValueError("a KVEventBatch must be [ts, events, data_parallel_rank]")
    if not isinstance(ts, (int, float)) or not isinstance(events, (list, tuple)):
        raise ValueError("a KVEventBatch must be [ts: float, events: list, ...]")
    return Batch(float(ts), [decode_event(e) for e in events], rank, seq)


def read_batches(data: bytes) -> list[Batch]:
    """The batches of a KV event file in recorded order: one msgpack `KVEventBatch`, or a msgpack
    array of records, each a batch or `[seq, batch]` (what :func:`encode_records` and
    `kvclaims watch --record` write). No sequence checks: `kvclaims check FILE --claims M`
    (kvclaims.kvstream) orders the records and reports gaps, duplicates and restarts."""
    raw = msgspec.msgpack.decode(data)
    if isinstance(raw, list) and raw and isinstance(raw[0], (int, float)) and not (
            isinstance(raw[0], int) and len(raw) == 2 and isinstance(raw[1], list)
            and raw[1] and isinstance(raw[1][0], (int, float))):
        return [decode_batch(raw)]
    if not isinstance(raw, list):
        raise ValueError("a KV event file is a KVEventBatch or an array of them")
    out = []
    for rec in raw:
        if (isinstance(rec, list) and len(rec) == 2 and isinstance(rec[0], int)
                and isinstance(rec[1], list)):
            out.append(decode_batch(rec[1], rec[0]))
        else:
            out.append(decode_batch(rec))
    return out


def encode_records(batches: Iterable[tuple[int, bytes]]) -> bytes:
    """`(seq, payload)` pairs as a record file that :func:`read_batches` reads."""
    return msgspec.msgpack.encode([[seq, msgspec.msgpack.decode(payload)]
                                   for seq, payload in batches])


# ---- the claim manifest -----------------------------------------------------------------------
@dataclass
class ManifestClaim:
    claim_id: str
    hashes: list[Any]
    mode: str = "hard_exclude"
    prefix_id: str | None = None
    required: int | None = None
    medium: str = GPU

    @property
    def prefix(self) -> str:
        return self.prefix_id or self.claim_id.split(":", 1)[-1]

    @property
    def need(self) -> int:
        return self.required or len(self.hashes)


@dataclass(frozen=True)
class JoinNames:
    """The events the join writes (docs/model.md §5), each checked to exist in
    spec/events.toml, so the input side names no event the tables lack."""

    accepted: str
    materialized: str
    block_materialized: str
    victim: str
    stream_gap: str

    @classmethod
    def of(cls, spec: Any) -> JoinNames:
        names = cls("resident_claim_accepted", "resident_claim_materialized",
                    "resident_block_materialized", "allocation_victim_selected", "kv_stream_gap")
        for name in vars(names).values():
            if name not in spec.events:
                raise KeyError(f"spec/events.toml lacks {name}")
        return names


@dataclass
class Manifest:
    claims: list[ManifestClaim]
    usable_blocks: int | None = None


def hash_tokens(tokens: list[int], block_size: int, algo: str = "sha256",
                cache_salt: str | None = None, runtime: str = "vllm") -> list[Any]:
    """Token ids -> the chain of block hashes as KV events carry them, with the runtime's own
    hasher: vLLM's block hasher (needs vLLM installed), or for `runtime = "sglang"` SGLang's
    page hashes (kvclaims.trace.sglang_hashes.page_hashes; needs SGLang installed)."""
    if runtime == "sglang":
        try:
            from kvclaims.trace.sglang_hashes import page_hashes
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ValueError("token_ids in an SGLang claim manifest need SGLang installed "
                             "(scripts/setup-runtime sglang==0.5.23) to hash them with SGLang's "
                             f"own function: {err}") from err
        return page_hashes(tokens, block_size, cache_salt)
    if runtime != "vllm":
        raise ValueError(f"runtime {runtime!r}: one of vllm, sglang")
    from kvclaims.trace.vllm_hashes import chain_hashes, external_hash, make_block_hasher

    try:
        hasher = make_block_hasher(block_size, algo)
        return [external_hash(h) for h in chain_hashes(tokens, hasher, cache_salt)]
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ValueError("token_ids in a claim manifest need vLLM installed (scripts/setup-runtime vllm==VERSION) "
                         f"to hash them with vLLM's own block hasher: {err}") from err


def load_manifest(path: str, runtime: str = "vllm") -> Manifest:
    """A claim manifest; `runtime` (or the manifest's own `runtime = "..."` key, which wins) names
    whose hash function turns `token_ids` into block hashes."""
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as err:
        raise InputError(path, 0, 0, f"cannot open claim manifest: {err.strerror}") from err
    except tomllib.TOMLDecodeError as err:
        raise InputError(path, 1, 1, f"claim manifest is not TOML: {err}") from err
    return manifest_from_dict(doc, path, runtime)


def manifest_from_dict(doc: dict[str, Any], path: str = "<manifest>",
                       runtime: str = "vllm") -> Manifest:
    claims = []
    runtime = doc.get("runtime", runtime)
    block_size = doc.get("block_size", 16)
    algo = doc.get("hash_algo", "sha256")
    for i, c in enumerate(doc.get("claim", ())):
        cid = c.get("id") or c.get("claim_id")
        if not isinstance(cid, str) or not cid:
            raise InputError(path, 1, 1, f"claim #{i + 1} has no id")
        if "block_hashes" in c:
            hashes = [_hash_key(h) for h in c["block_hashes"]]
        elif "token_ids" in c:
            try:
                hashes = hash_tokens(list(c["token_ids"]), c.get("block_size", block_size),
                                     c.get("hash_algo", algo), c.get("cache_salt"), runtime)
            except ValueError as err:
                raise InputError(path, 1, 1, f"claim {cid}: {err}") from err
        else:
            raise InputError(path, 1, 1, f"claim {cid} needs block_hashes or token_ids")
        if not hashes:
            raise InputError(path, 1, 1, f"claim {cid} names no full block")
        claims.append(ManifestClaim(cid, hashes, c.get("mode", "hard_exclude"),
                                    c.get("prefix"), c.get("required"), c.get("medium", GPU)))
    if not claims:
        raise InputError(path, 1, 1, "claim manifest declares no [[claim]]")
    return Manifest(claims, doc.get("usable_blocks"))


def manifest_toml(manifest: Manifest) -> str:
    """The TOML spelling of a manifest with explicit hash lists."""
    lines = []
    if manifest.usable_blocks is not None:
        lines.append(f"usable_blocks = {manifest.usable_blocks}")
    for c in manifest.claims:
        lines += ["", "[[claim]]", f'id = "{c.claim_id}"', f'mode = "{c.mode}"',
                  f'prefix = "{c.prefix}"']
        if c.required is not None:
            lines.append(f"required = {c.required}")
        hs = ", ".join(f'"{h.hex()}"' if isinstance(h, bytes) else str(h) for h in c.hashes)
        lines.append(f"block_hashes = [{hs}]")
    return "\n".join(lines) + "\n"


# ---- the join ---------------------------------------------------------------------------------
@dataclass
class _Pos:
    claim: ManifestClaim
    position: int
    block_id: int
    copies: int = 0


@dataclass
class StreamJoin:
    """Feed batches in the order they are decided (kvclaims.trace.kv_records.Sequencer); collect
    checker events from :meth:`feed_batch`, and a gap marker from :meth:`gap`.

    Every event is located: `line` is the batch's record number, `column` the 1-based position
    of the KV event within its batch (0 for manifest and marker events), `text` says both in
    words. A batch in which some claim both gains and loses blocks is one whose order can matter:
    its block events carry `kv_batch_seq` (an unordered batch, decided over every order); any
    other batch gives the same verdict in every order and is decided as written."""

    manifest: Manifest
    source: str = "vllm"
    _seq: int = 0
    _by_hash: dict[Any, list[_Pos]] = field(default_factory=dict)
    _live: dict[str, set[int]] = field(default_factory=dict)
    _materialized: set[str] = field(default_factory=set)
    _started: bool = False
    _loc: tuple[int, int, str] = (0, 0, "")
    _dirs: dict[str, set[bool]] = field(default_factory=dict)
    gaps: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from kvclaims import spec as spec_mod

        self.E = JoinNames.of(spec_mod.load())
        n = 0
        for c in self.manifest.claims:
            self._live[c.claim_id] = set()
            for i, h in enumerate(c.hashes):
                self._by_hash.setdefault(h, []).append(
                    _Pos(c, i, BLOCK_ID_BASE + n))
                n += 1

    def _ev(self, kind: str, **fields: Any) -> Event:
        self._seq += 1
        line, column, text = self._loc
        return Event(kind, {"event_sequence": self._seq,
                            **{k: v for k, v in fields.items() if v is not None}},
                     line, column, text or None)

    def start(self) -> list[Event]:
        if self._started:
            return []
        self._started = True
        out = []
        for c in self.manifest.claims:
            self._loc = (0, 0, f"claim manifest: {c.claim_id} ({c.mode}, {c.need} of "
                               f"{len(c.hashes)} blocks)")
            out.append(self._ev(self.E.accepted, claim_id=c.claim_id, protection_mode=c.mode,
                                prefix_id=c.prefix, resident_blocks_required=c.need,
                                materialization_predicate=f"leading_prefix_at_least({c.need})",
                                usable_blocks=self.manifest.usable_blocks,
                                declared_by="manifest"))
        return out

    def gap(self, first_missing: int, next_seen: int, *, record: int = 0,
            why: str | None = None) -> list[Event]:
        """Batches [first_missing, next_seen) are lost for good (or the stream's history is
        otherwise unknown, `why`): skip one event_sequence number and write a gap marker, so
        the checker sees a stream gap (R-stream: unknown from here on) even when no claim event
        follows."""
        self.gaps.append((first_missing, next_seen))
        self._seq += 1
        self._loc = (record, 0, f"record {record}: " + (
            why or f"batches {first_missing}..{next_seen - 1} missing"))
        return [self._ev(self.E.stream_gap)]

    def feed_batch(self, batch: Batch, record: int = 0) -> list[Event]:
        out = self.start()
        self._dirs = {}
        mine: list[Event] = []
        n = len(batch.events)
        for i, e in enumerate(batch.events, 1):
            self._loc = (record, i, f"record {record}, batch {batch.seq}, event {i} of {n}: "
                                    f"{e.type}")
            mine += self._feed_event(e, batch)
        if any(len(d) > 1 for d in self._dirs.values()):
            block = (self.E.block_materialized, self.E.victim)
            mine = [Event(ev.kind, {**ev.fields, "kv_batch_seq": batch.seq}, ev.line, ev.column,
                          ev.text) if ev.kind in block else ev for ev in mine]
        return out + mine

    def _stored(self, h: Any, medium: str | None, batch: Batch) -> list[Event]:
        out: list[Event] = []
        for p in self._by_hash.get(_hash_key(h), ()):
            if (medium or GPU) != p.claim.medium:
                continue
            p.copies += 1
            if p.copies == 1:
                live = self._live[p.claim.claim_id]
                live.add(p.position)
                self._dirs.setdefault(p.claim.claim_id, set()).add(True)
                out.append(self._ev(self.E.block_materialized, physical_block_id=p.block_id,
                                    logical_block_position=p.position,
                                    claim_id=p.claim.claim_id, prefix_id=p.claim.prefix,
                                    block_hash=_text(h), is_protected_resident=False))
                c = p.claim
                if c.claim_id not in self._materialized and all(
                        i in live for i in range(c.need)):
                    self._materialized.add(c.claim_id)
                    out.append(self._ev(self.E.materialized, claim_id=c.claim_id,
                                        prefix_id=c.prefix, resident_blocks_materialized=len(live),
                                        predicate_materialized=True, declared_by="manifest"))
        return out

    def _removed(self, h: Any, medium: str | None, batch: Batch, why: str) -> list[Event]:
        out: list[Event] = []
        for p in self._by_hash.get(_hash_key(h), ()):
            if (medium or GPU) != p.claim.medium or p.copies == 0:
                continue
            p.copies -= 1
            if p.copies == 0:
                out.append(self._lost(p, h, batch, why))
        return out

    def _lost(self, p: _Pos, h: Any, batch: Batch, why: str) -> Event:
        self._live[p.claim.claim_id].discard(p.position)
        self._dirs.setdefault(p.claim.claim_id, set()).add(False)
        return self._ev(self.E.victim, physical_block_id=p.block_id,
                        victim_reason="cached_prefix_reuse", block_hash=_text(h),
                        kv_event=why, is_protected_resident=False)

    def _feed_event(self, e: KVEvent, batch: Batch) -> list[Event]:
        f = e.fields
        out: list[Event] = []
        if e.type == "BlockStored":
            for h in f.get("block_hashes") or ():
                out += self._stored(h, f.get("medium"), batch)
        elif e.type == "BlockRemoved":
            for h in f.get("block_hashes") or ():
                out += self._removed(h, f.get("medium"), batch, "BlockRemoved")
        elif e.type == "AllBlocksCleared":
            for positions in self._by_hash.values():
                for p in positions:
                    if p.copies and p.claim.medium == GPU:
                        p.copies = 0
                        out.append(self._lost(p, p.claim.hashes[p.position], batch,
                                              "AllBlocksCleared"))
        return out


def _text(h: Any) -> str:
    return h.hex() if isinstance(h, (bytes, bytearray)) else str(h)


def join_batches(batches: Iterable[Batch], manifest: Manifest) -> list[Event]:
    """The checker events of `batches` taken in the order given (no sequence checks: a recorded
    stream is decided through kvclaims.kvstream, which orders it and reports its gaps)."""
    j = StreamJoin(manifest)
    out = j.start()
    for i, b in enumerate(batches, 1):
        out += j.feed_batch(b, i)
    return out
