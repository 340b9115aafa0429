"""Runtime KV event streams (the neutral `Batch` of `KVEvent` every importer produces, vLLM's
`KVEventBatch` msgpack read here) and the claim-manifest join (docs/model.md §5 runtime streams;
docs/formats.md "Block identity, copies and stream consistency").

The events are block/hash scoped: no claim, no request, no block id. A claim manifest (TOML; its
keys closed, each error located) names each claim's ordered chain of block hashes, given
explicitly or as token ids hashed with the runtime's own hasher, and its scope (instance, rank,
group, medium, salt, LoRA). Each stream format is declared in spec/streams.toml: its closed event
variants and field shapes (an undeclared field, variant or shape is a ValueError naming it: the
caller's undecodable batch, unknown) and what a copy is. :class:`StreamJoin` turns the stream
into events the checker decides:

- a claimed hash whose identity gets a live copy on the claim's tier from a store matching the
  claim's salt and LoRA becomes `resident_block_materialized` at its logical position, on a
  synthetic block id per (claim, position) (the stream has no block ids);
- copies are counted per identity by the format's semantics (kvclaims.trace.kv_identity): when
  none is left, that position is lost: `allocation_victim_selected` with
  `victim_reason = cached_prefix_reuse` (no runtime gives a reason; allocation eviction is the
  only ordinary cause); a removal the count cannot settle, and an inconsistency of a
  deduplicating stream, are stream findings;
- `AllBlocksCleared` loses every live claimed position on the format's cleared tiers of that
  instance at once;
- a batch sequence gap that cannot be filled (or missed history, or a publisher restart), and a
  stream finding on an instance a claim is scoped to, skip one `event_sequence` number and write
  a `kv_stream_gap` marker, which the checker reads as a stream gap: every verdict after it is
  unknown, never conformant (R-stream). Which batches are missing is decided by
  kvclaims.trace.kv_records.Sequencer, not here.

Claims are declared by the manifest (`resident_claim_accepted`, `declared_by = "manifest"`), and
`resident_claim_materialized` is written when the manifest's predicate first holds. Wire layouts:
0.33 (`[ts, [ {"type": ...}, ...], dp_rank]`), the older all-array layout
(`[ts, [ ["BlockStored", ...], ...], dp_rank]`), and the neutral map batch an importer may write
(`BATCH_KEYS`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import msgspec

from kvclaims.spec import StreamFormat, stream_formats
from kvclaims.trace.kv_identity import (
    ABSENT,
    AGAIN,
    GONE,
    UNSETTLED,
    BlockKey,
    CopyLedger,
)
from kvclaims.trace.kv_records import DROPPED, INCONSISTENT, UNSCOPED_INSTANCE, UNSETTLED_COPIES
from kvclaims.trace.model import Event, InputError

GPU = "GPU"
BLOCK_ID_BASE = 1_000_000  # synthetic block ids: the stream carries none
DEFAULT_FORMAT = "vllm"


def stream_format(name: str | None = None) -> StreamFormat:
    """A declared stream format (spec/streams.toml); ValueError naming the declared ones."""
    formats = stream_formats()
    fmt = formats.get(name or DEFAULT_FORMAT)
    if fmt is None:
        raise ValueError(f"KV event stream format {name!r}: one of {', '.join(sorted(formats))}")
    return fmt


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
    dropped: int = 0  # events the publisher says it dropped before this batch (its counter)


def _hash_key(h: Any) -> Any:
    if isinstance(h, (bytes, bytearray)):
        return bytes(h)
    if isinstance(h, str):
        s = h.strip()
        return int(s, 16) if s.lower().startswith("0x") else int(s)
    return h


_PY_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "str": (str,), "list": (list, tuple),
                                          "any": (object,)}


def _check_shape(kind: str, fields: dict[str, Any], fmt: StreamFormat) -> None:
    """Schema drift never passes silently (docs/formats.md): a field the variant does not declare
    (unless the format says to carry it), a required field missing, or a value of another shape
    is a ValueError naming the field (the caller's located stream finding)."""
    variant = fmt.variants[kind]
    if variant.on_unknown_field != "carry":
        for name in fields:
            if name not in variant.fields:
                raise ValueError(f"{kind} carries field {name!r}, which the {fmt.name} format "
                                 f"does not declare (spec/streams.toml; schema drift)")
    for name in sorted(variant.required - fields.keys()):
        raise ValueError(f"{kind} lacks required field {name!r} ({fmt.name} format)")
    for name, value in fields.items():
        if name not in variant.fields:
            continue
        base, nullable = fmt.field_types[name]
        if value is None and nullable:
            continue
        if (isinstance(value, bool) and base == "int") or not isinstance(value, _PY_TYPES[base]):
            raise ValueError(f"{kind} field {name!r} is {type(value).__name__}, the {fmt.name} "
                             f"format declares {base}{'?' if nullable else ''} (changed shape)")
    for h in fields.get(fmt.identity["hash"]) or ():
        try:
            if isinstance(h, bool) or not isinstance(h, (int, bytes, str)):
                raise TypeError
            _hash_key(h)
        except (TypeError, ValueError):
            raise ValueError(f"{kind} field {fmt.identity['hash']!r} holds {h!r}, not a block "
                             "hash (an integer, bytes or a numeral)") from None
    medium = fields.get(fmt.identity["tier"]) if fmt.identity["tier"] else None
    if medium is not None and medium not in fmt.media:
        raise ValueError(f"{kind} field {fmt.identity['tier']!r} is {medium!r}, not a medium of "
                         f"the {fmt.name} format ({', '.join(sorted(fmt.media))})")


def check_event(e: KVEvent, fmt: StreamFormat) -> None:
    """An event an importer produced, against its format's declaration (spec/streams.toml): a
    variant or field the format does not declare is a ValueError naming it, as for a decoded
    msgpack batch (:func:`decode_event`), so a declaration is never only documentation."""
    if e.type not in fmt.variants:
        raise ValueError(f"event type {e.type!r} is not a variant of the {fmt.name} format "
                         "(spec/streams.toml)")
    _check_shape(e.type, e.fields, fmt)


# The keys of a map-encoded batch (the array layout is [ts, events, data_parallel_rank]).
BATCH_KEYS = ("ts", "events", "data_parallel_rank", "instance", "dropped_events")


def decode_event(raw: Any, fmt: StreamFormat | None = None) -> KVEvent:
    """One KV event, tagged map or (older vLLM) tagged array, checked against the format's
    declaration (spec/streams.toml): a ValueError naming the variant or field otherwise."""
    fmt = fmt or stream_format()
    if isinstance(raw, dict):
        kind = raw.get("type")
        if kind not in fmt.variants:
            raise ValueError(f"unknown KV event type {kind!r} ({fmt.name} format)")
        fields = {k: v for k, v in raw.items() if k != "type"}
    elif isinstance(raw, (list, tuple)) and raw and isinstance(raw[0], str):
        kind = raw[0]
        if kind not in fmt.variants:
            raise ValueError(f"unknown KV event type {kind!r} ({fmt.name} format)")
        names = fmt.variants[kind].fields
        if len(raw) - 1 > len(names):
            raise ValueError(f"{kind} array has {len(raw) - 1} fields, at most {len(names)} known")
        fields = dict(zip(names, raw[1:]))
    else:
        raise ValueError("a KV event must be a tagged map or a tagged array, got "
                         f"{type(raw).__name__}")
    _check_shape(kind, fields, fmt)
    return KVEvent(kind, fields)


def decode_batch(payload: bytes | Any, seq: int | None = None,
                 fmt: StreamFormat | None = None) -> Batch:
    """One `KVEventBatch` from msgpack bytes (or an already decoded object), its events checked
    against `fmt` (default vLLM's declaration)."""
    raw = msgspec.msgpack.decode(payload) if isinstance(payload, (bytes, bytearray,
                                                                  memoryview)) else payload
    instance, dropped = None, 0
    if isinstance(raw, dict):  # a map-encoded batch: the neutral record an importer may write
        unknown = sorted(set(raw) - set(BATCH_KEYS))
        if unknown:
            raise ValueError(f"a KVEventBatch map carries {unknown[0]!r}, not one of "
                             f"{', '.join(BATCH_KEYS)}")
        ts, events, rank = raw.get("ts"), raw.get("events"), raw.get("data_parallel_rank")
        instance, dropped = raw.get("instance"), raw.get("dropped_events", 0)
        if instance is not None and not isinstance(instance, (str, int)):
            raise ValueError(f"a KVEventBatch's instance is str or int, got {instance!r}")
        if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
            raise ValueError(f"a KVEventBatch's dropped_events is a count, got {dropped!r}")
    elif isinstance(raw, (list, tuple)) and 2 <= len(raw) <= 3:
        ts, events = raw[0], raw[1]
        rank = raw[2] if len(raw) == 3 else None
    else:
        raise ValueError("a KVEventBatch must be [ts, events, data_parallel_rank]")
    if not isinstance(ts, (int, float)) or not isinstance(events, (list, tuple)):
        raise ValueError("a KVEventBatch must be [ts: float, events: list, ...]")
    if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int)):
        raise ValueError(f"a KVEventBatch's data-parallel rank is int or null, got {rank!r}")
    decoded = []
    for i, e in enumerate(events, 1):
        try:
            decoded.append(decode_event(e, fmt))
        except ValueError as err:  # located within the batch (the caller locates the batch)
            raise ValueError(f"event {i} of {len(events)}: {err}") from None
    return Batch(float(ts), decoded, rank, seq, None if instance is None else str(instance),
                 dropped)


def read_batches(data: bytes, fmt: StreamFormat | None = None) -> list[Batch]:
    """The batches of a KV event file in recorded order: one msgpack `KVEventBatch`, or a msgpack
    array of records, each a batch or `[seq, batch]` (what :func:`encode_records` and
    `kvclaims watch --record` write). No sequence checks: `kvclaims check FILE --claims M`
    (kvclaims.kvstream) orders the records and reports gaps, duplicates and restarts."""
    raw = msgspec.msgpack.decode(data)
    if isinstance(raw, list) and raw and isinstance(raw[0], (int, float)) and not (
            isinstance(raw[0], int) and len(raw) == 2 and isinstance(raw[1], list)
            and raw[1] and isinstance(raw[1][0], (int, float))):
        return [decode_batch(raw, fmt=fmt)]
    if not isinstance(raw, list):
        raise ValueError("a KV event file is a KVEventBatch or an array of them")
    out = []
    for rec in raw:
        if (isinstance(rec, list) and len(rec) == 2 and isinstance(rec[0], int)
                and isinstance(rec[1], list)):
            out.append(decode_batch(rec[1], rec[0], fmt))
        else:
            out.append(decode_batch(rec, fmt=fmt))
    return out


def encode_records(batches: Iterable[tuple[int, bytes]]) -> bytes:
    """`(seq, payload)` pairs as a record file that :func:`read_batches` reads."""
    return msgspec.msgpack.encode([[seq, msgspec.msgpack.decode(payload)]
                                   for seq, payload in batches])


# ---- the claim manifest -----------------------------------------------------------------------
@dataclass
class ManifestClaim:
    """One claim: its ordered chain of block hashes and its scope (docs/formats.md "Block
    identity"): the instance and data-parallel rank that publish it, its KV cache group, the
    medium it must be resident on, and the salt and LoRA its stores must carry where the format
    carries them. None: the stream's one instance, any rank, group 0, no salt, no LoRA."""

    claim_id: str
    hashes: list[Any]
    mode: str = "hard_exclude"
    prefix_id: str | None = None
    required: int | None = None
    medium: str = GPU
    instance: str | None = None
    dp_rank: int | None = None
    group: int | None = None
    cache_salt: str | None = None
    lora: str | None = None

    @property
    def prefix(self) -> str:
        return self.prefix_id or self.claim_id.split(":", 1)[-1]

    @property
    def need(self) -> int:
        return self.required or len(self.hashes)


@dataclass(frozen=True)
class JoinNames:
    """The events the join writes (docs/model.md §5), each checked to exist in
    spec/events.toml, so the input side names no event the tables lack; and the stream's own
    variants (the `stream` scope events), by their verbs."""

    accepted: str
    materialized: str
    block_materialized: str
    victim: str
    stream_gap: str
    stored: str = ""
    removed: str = ""
    cleared: str = ""

    @classmethod
    def of(cls, spec: Any) -> JoinNames:
        verbs = {e.verb: e.name for e in spec.events.values() if e.scope == "stream"}
        names = cls("resident_claim_accepted", "resident_claim_materialized",
                    "resident_block_materialized", "allocation_victim_selected", "kv_stream_gap",
                    verbs["stored"], verbs["removed"], verbs["cleared"])
        for name in vars(names).values():
            if name not in spec.events:
                raise KeyError(f"spec/events.toml lacks {name}")
        return names


# REPORT_MODES: vLLM's per-request kv_cache_report_mode (vllm/v1/request.py); "full" makes a
# repeated BlockStored possibly a report of reused blocks rather than a new copy.
REPORT_MODES = ("incremental", "full")


@dataclass
class Manifest:
    claims: list[ManifestClaim]
    usable_blocks: int | None = None
    runtime: str = DEFAULT_FORMAT
    kv_cache_report_mode: str = REPORT_MODES[0]


# The manifest's closed keys and their types (docs/formats.md "Manifest scoping keys").
_TOP_KEYS: dict[str, tuple[type, ...]] = {
    "runtime": (str,), "block_size": (int,), "hash_algo": (str,), "usable_blocks": (int,),
    "claim": (list,), "kv_cache_report_mode": (str,)}
_CLAIM_KEYS: dict[str, tuple[type, ...]] = {
    "id": (str,), "claim_id": (str,), "block_hashes": (list,), "token_ids": (list,),
    "block_size": (int,), "hash_algo": (str,), "cache_salt": (str,), "mode": (str,),
    "prefix": (str,), "required": (int,), "medium": (str,), "instance": (str, int),
    "dp_rank": (int,), "group": (int,), "lora": (str,)}


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
    whose hash function turns `token_ids` into block hashes, and the stream format whose
    declaration (spec/streams.toml) decides the stream. Every key is checked: an unknown key or
    a value of the wrong type is a located InputError (file:line:column)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as err:
        raise InputError(path, 0, 0, f"cannot open claim manifest: {err.strerror}") from err
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, 1, 1, f"claim manifest is not TOML: {err}") from err
    return manifest_from_dict(doc, path, runtime, data.decode("utf-8"))


def _where(text: str, claim: int | None, key: str | None) -> tuple[int, int]:
    """(line, column) of `key` at the top level (claim None) or in the claim-th [[claim]] table
    (0-based) of the manifest's text; the table's header (or line 1) when the key is not found."""
    lines = text.splitlines()
    lo, hi = 0, len(lines)
    if claim is not None:
        heads = [i for i, ln in enumerate(lines) if ln.strip().startswith("[[claim]]")]
        if claim < len(heads):
            lo = heads[claim]
            hi = heads[claim + 1] if claim + 1 < len(heads) else len(lines)
    else:
        tables = [i for i, ln in enumerate(lines) if ln.strip().startswith("[")]
        hi = tables[0] if tables else len(lines)
    if key is not None:
        for i in range(lo, hi):
            stripped = lines[i].lstrip()
            if stripped.startswith(key) and stripped[len(key):].lstrip().startswith("="):
                return i + 1, len(lines[i]) - len(stripped) + 1
    return lo + 1, 1


def _closed_keys(table: dict[str, Any], allowed: dict[str, tuple[type, ...]], path: str,
                 text: str, claim: int | None, what: str) -> None:
    for key, value in table.items():
        if key not in allowed:
            line, col = _where(text, claim, key)
            raise InputError(path, line, col, f"{what}: unknown key {key!r} (one of "
                             f"{', '.join(sorted(allowed))})")
        if isinstance(value, bool) or not isinstance(value, allowed[key]):
            line, col = _where(text, claim, key)
            want = " or ".join(t.__name__ for t in allowed[key])
            raise InputError(path, line, col, f"{what}: {key} must be {want}, got "
                             f"{type(value).__name__}")


def manifest_from_dict(doc: dict[str, Any], path: str = "<manifest>",
                       runtime: str = "vllm", text: str = "") -> Manifest:
    _closed_keys(doc, _TOP_KEYS, path, text, None, "claim manifest")
    claims = []
    runtime = doc.get("runtime", runtime)
    report_mode = doc.get("kv_cache_report_mode", REPORT_MODES[0])
    if report_mode not in REPORT_MODES:
        line, col = _where(text, None, "kv_cache_report_mode")
        raise InputError(path, line, col, f"kv_cache_report_mode {report_mode!r}: one of "
                         f"{', '.join(REPORT_MODES)}")
    formats = stream_formats()
    if runtime not in formats:
        line, col = _where(text, None, "runtime")
        raise InputError(path, line, col, f"runtime {runtime!r}: one of "
                         f"{', '.join(sorted(formats))} (the stream formats spec/streams.toml "
                         "declares)")
    hasher = formats[runtime].runtime
    media = formats[runtime].media
    block_size = doc.get("block_size", 16)
    algo = doc.get("hash_algo", "sha256")
    for i, c in enumerate(doc.get("claim", ())):
        if not isinstance(c, dict):
            raise InputError(path, *_where(text, i, None), f"claim #{i + 1} is not a table")
        cid = c.get("id") or c.get("claim_id")
        if not isinstance(cid, str) or not cid:
            raise InputError(path, *_where(text, i, None), f"claim #{i + 1} has no id")
        _closed_keys(c, _CLAIM_KEYS, path, text, i, f"claim {cid}")
        if "block_hashes" in c:
            try:
                hashes = [_hash_key(h) for h in c["block_hashes"]]
            except (ValueError, TypeError) as err:
                raise InputError(path, *_where(text, i, "block_hashes"),
                                 f"claim {cid}: a block hash is an integer or a hex string: "
                                 f"{err}") from err
        elif "token_ids" in c:
            try:
                hashes = hash_tokens(list(c["token_ids"]), c.get("block_size", block_size),
                                     c.get("hash_algo", algo), c.get("cache_salt"), hasher)
            except ValueError as err:
                raise InputError(path, *_where(text, i, "token_ids"),
                                 f"claim {cid}: {err}") from err
        else:
            raise InputError(path, *_where(text, i, None),
                             f"claim {cid} needs block_hashes or token_ids")
        if not hashes:
            raise InputError(path, *_where(text, i, None), f"claim {cid} names no full block")
        medium = c.get("medium", formats[runtime].default_medium)
        if medium not in media:
            raise InputError(path, *_where(text, i, "medium"), f"claim {cid}: medium "
                             f"{medium!r} is none of {', '.join(sorted(media))}")
        instance = c.get("instance")
        claims.append(ManifestClaim(cid, hashes, c.get("mode", "hard_exclude"),
                                    c.get("prefix"), c.get("required"), medium,
                                    None if instance is None else str(instance),
                                    c.get("dp_rank"), c.get("group"), c.get("cache_salt"),
                                    c.get("lora")))
    if not claims:
        raise InputError(path, 1, 1, "claim manifest declares no [[claim]]")
    return Manifest(claims, doc.get("usable_blocks"), runtime, report_mode)


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
        for key, value in (("medium", None if c.medium == GPU else c.medium),
                           ("instance", c.instance), ("cache_salt", c.cache_salt),
                           ("lora", c.lora)):
            if value is not None:
                lines.append(f'{key} = "{value}"')
        for key, num in (("dp_rank", c.dp_rank), ("group", c.group)):
            if num is not None:
                lines.append(f"{key} = {num}")
        hs = ", ".join(f'"{h.hex()}"' if isinstance(h, bytes) else str(h) for h in c.hashes)
        lines.append(f"block_hashes = [{hs}]")
    return "\n".join(lines) + "\n"


# ---- the join ---------------------------------------------------------------------------------
@dataclass
class _Pos:
    claim: ManifestClaim
    position: int
    block_id: int
    live: bool = False


@dataclass(frozen=True)
class StreamFinding:
    """Something the join found wrong or undecidable in the stream itself (docs/formats.md
    "Stream consistency"), located at the KV event that showed it. `unknown`: it touches a
    claim's scope, so a gap marker was written and every verdict after it is unknown; otherwise
    (an instance no claim is scoped to) it is said, and decides nothing."""

    kind: str  # kvclaims.trace.kv_records: INCONSISTENT, UNSETTLED_COPIES, UNSCOPED_INSTANCE
    message: str
    record: int
    column: int
    seq: int | None
    instance: str | None
    unknown: bool


@dataclass
class StreamJoin:
    """Feed batches in the order they are decided (kvclaims.trace.kv_records.Sequencer); collect
    checker events from :meth:`feed_batch`, and a gap marker from :meth:`gap`.

    `fmt` names the stream format (spec/streams.toml; default the manifest's `runtime`): its
    declaration decides what a copy is (kvclaims.trace.kv_identity). A claimed position is live
    while its identity (instance, rank, group, the claim's tier, hash) has a copy that a store
    matching the claim's salt and LoRA made live; a store on another instance, rank, group,
    tier, salt or LoRA does not touch it. A remove that leaves a copy is no loss; one that
    leaves none is (`allocation_victim_selected`); one the count cannot settle, and every
    inconsistency of a deduplicating stream on a claim's instance, is a :class:`StreamFinding`
    with a gap marker (R-stream: unknown from there, never conformant). AllBlocksCleared loses
    the format's cleared tiers on that instance only.

    Every event is located: `line` is the batch's record number, `column` the 1-based position
    of the KV event within its batch (0 for manifest and marker events), `text` says both in
    words. A batch in which some claim both gains and loses blocks is one whose order can matter:
    its block events carry `kv_batch_seq` (an unordered batch, decided over every order); any
    other batch gives the same verdict in every order and is decided as written."""

    manifest: Manifest
    source: str = "vllm"
    fmt: str | None = None
    _seq: int = 0
    _by_hash: dict[Any, list[_Pos]] = field(default_factory=dict)
    _live: dict[str, set[int]] = field(default_factory=dict)
    _materialized: set[str] = field(default_factory=set)
    _started: bool = False
    _loc: tuple[int, int, str] = (0, 0, "")
    _dirs: dict[str, set[bool]] = field(default_factory=dict)
    gaps: list[tuple[int, int]] = field(default_factory=list)
    findings: list[StreamFinding] = field(default_factory=list)
    _instances: list[str] = field(default_factory=list)  # instances seen, in order
    _fed: int = 0

    def __post_init__(self) -> None:
        from kvclaims import spec as spec_mod

        self.E = JoinNames.of(spec_mod.load())
        self.fmt = stream_format(self.fmt or self.manifest.runtime).name
        self.ledger = CopyLedger(self.F.deduplicated)
        self._ranks_scoped = all(c.dp_rank is not None for c in self.manifest.claims)
        self._maybe_report = (self.F.repeated_store == "copy_or_report"
                              and self.manifest.kv_cache_report_mode == REPORT_MODES[1])
        n = 0
        for c in self.manifest.claims:
            if c.medium not in self.F.media:
                raise ValueError(f"claim {c.claim_id}: medium {c.medium!r} is not a medium of "
                                 f"the {self.F.name} format ({', '.join(sorted(self.F.media))})")
            self._live[c.claim_id] = set()
            for i, h in enumerate(c.hashes):
                self._by_hash.setdefault(h, []).append(
                    _Pos(c, i, BLOCK_ID_BASE + n))
                n += 1

    @property
    def F(self) -> StreamFormat:
        """The stream format's declaration (looked up, not kept: a checkpoint pickles the join
        and refers to the spec, kvclaims.checkpoint)."""
        return stream_format(self.fmt)

    # ---- scope --------------------------------------------------------------------------------
    def _instance_of(self, c: ManifestClaim) -> str | None:
        """The instance a claim is scoped to: its own, or the stream's first one."""
        if c.instance is not None:
            return c.instance
        return self._instances[0] if self._instances else None

    def touches(self, instance: str | None) -> bool:
        """Whether some claim is scoped to `instance` (its verdict can depend on it)."""
        return any(self._instance_of(c) == instance for c in self.manifest.claims)

    def _key(self, h: Any, f: dict[str, Any], batch: Batch) -> BlockKey:
        tier_field, group_field = self.F.identity["tier"], self.F.identity["group"]
        medium = (f.get(tier_field) if tier_field else None) or self.F.default_medium
        group = (f.get(group_field) if group_field else None) or 0
        # Ranks are told apart only when every claim names its rank; otherwise the stream has
        # one rank per instance (kvclaims.kvstream reports a second one: cross_shard) and a
        # batch without a rank is of it. A named-rank claim reads a rankless batch as rank 0.
        rank = (batch.data_parallel_rank or 0) if self._ranks_scoped else None
        return BlockKey(batch.instance, rank, group, self.F.media[medium], _hash_key(h))

    def _claims_key(self, p: _Pos, key: BlockKey) -> bool:
        c = p.claim
        return (key.instance == self._instance_of(c)
                and (c.dp_rank is None or key.dp_rank == c.dp_rank)
                and key.group == (c.group or 0)
                and key.tier == self.F.media[c.medium])

    def _store_matches(self, c: ManifestClaim, f: dict[str, Any]) -> bool:
        """A store's salt and LoRA, where the format carries them, are the claim's."""
        for role, want in (("salt", c.cache_salt), ("lora", c.lora)):
            name = self.F.identity[role]
            if name and f.get(name) != want:
                return False
        return True

    # ---- events -------------------------------------------------------------------------------
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
        follows. Copies counted from here on are counted without the stream's start."""
        self.gaps.append((first_missing, next_seen))
        self.ledger.from_start = False
        self._seq += 1
        self._loc = (record, 0, f"record {record}: " + (
            why or f"batches {first_missing}..{next_seen - 1} missing"))
        return [self._ev(self.E.stream_gap)]

    def _finding(self, kind: str, message: str, batch: Batch) -> list[Event]:
        """A stream finding at the current event; a gap marker when it touches a claim's scope."""
        record, column, text = self._loc
        unknown = self.touches(batch.instance)
        self.findings.append(StreamFinding(kind, message, record, column, batch.seq,
                                           batch.instance, unknown))
        if not unknown:
            return []
        self._seq += 1
        self._loc = (record, column, f"{text}: {message}")
        ev = self._ev(self.E.stream_gap)
        self._loc = (record, column, text)
        return [ev]

    def feed_batch(self, batch: Batch, record: int = 0) -> list[Event]:
        out = self.start()
        self._dirs = {}
        mine: list[Event] = []
        if self._fed == 0 and batch.seq != 0:
            self.ledger.from_start = False  # the stream's first batch was not seen
        self._fed += 1
        if batch.instance is not None and batch.instance not in self._instances:
            self._instances.append(batch.instance)
            if len(self._instances) == 2 and any(c.instance is None
                                                 for c in self.manifest.claims):
                self._loc = (record, 0, f"record {record}, batch {batch.seq}")
                mine += self._finding(UNSCOPED_INSTANCE, "the stream carries instances "
                                      f"{self._instances[0]!r} and {batch.instance!r} and a "
                                      "claim names no instance (manifest key `instance`)",
                                      replace(batch, instance=self._instances[0]))
        if batch.dropped:
            self._loc = (record, 0, f"record {record}, batch {batch.seq}")
            mine += self._finding(DROPPED, f"the publisher dropped {batch.dropped} event(s) "
                                  "before this batch", batch)
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

    def _stored(self, h: Any, f: dict[str, Any], batch: Batch) -> list[Event]:
        key = self._key(h, f, batch)
        # vLLM's report of reused blocks always starts at block 0, so its parent is null
        # (block_pool.py emit_cached_block_events); a store with a parent adds copies.
        report = self._maybe_report and f.get("parent_block_hash") is None
        outcome = self.ledger.store(key, maybe_report=report)
        out: list[Event] = []
        if outcome == AGAIN and self.F.deduplicated:
            out += self._finding(INCONSISTENT, f"block {_text(h)} ({key.tier}) is stored again "
                                 f"with no remove between; the {self.F.name} runtime keeps one "
                                 "copy per block, so the stream is inconsistent", batch)
        for p in self._by_hash.get(key.hash, ()):
            if p.live or not self._claims_key(p, key) or not self._store_matches(p.claim, f):
                continue
            p.live = True
            live = self._live[p.claim.claim_id]
            live.add(p.position)
            self._dirs.setdefault(p.claim.claim_id, set()).add(True)
            out.append(self._ev(self.E.block_materialized, physical_block_id=p.block_id,
                                logical_block_position=p.position,
                                claim_id=p.claim.claim_id, prefix_id=p.claim.prefix,
                                block_hash=_text(h), is_protected_resident=False))
            c = p.claim
            if c.claim_id not in self._materialized and all(i in live for i in range(c.need)):
                self._materialized.add(c.claim_id)
                out.append(self._ev(self.E.materialized, claim_id=c.claim_id,
                                    prefix_id=c.prefix, resident_blocks_materialized=len(live),
                                    predicate_materialized=True, declared_by="manifest"))
        return out

    def _removed(self, h: Any, f: dict[str, Any], batch: Batch) -> list[Event]:
        key = self._key(h, f, batch)
        outcome = self.ledger.remove(key)
        out: list[Event] = []
        if outcome == ABSENT and self.F.deduplicated and self.ledger.from_start:
            out += self._finding(INCONSISTENT, f"block {_text(h)} ({key.tier}) is removed but "
                                 "is not stored (the stream was seen from its start)", batch)
        if outcome not in (GONE, UNSETTLED):
            return out
        for p in self._by_hash.get(key.hash, ()):
            if not p.live or not self._claims_key(p, key):
                continue
            if outcome == GONE:
                out.append(self._lost(p, h, self.E.removed))
            else:
                out += self._finding(UNSETTLED_COPIES, f"claim {p.claim.claim_id} position "
                                     f"{p.position} (block {_text(h)}): the {self.F.name} "
                                     "runtime removes one copy per event and the stream cannot "
                                     "tell whether a copy is left (copies stored before the "
                                     "stream's start, or reports of reused blocks): the block's "
                                     "verdict is unknown", batch)
        return out

    def _lost(self, p: _Pos, h: Any, why: str) -> Event:
        p.live = False
        self._live[p.claim.claim_id].discard(p.position)
        self._dirs.setdefault(p.claim.claim_id, set()).add(False)
        return self._ev(self.E.victim, physical_block_id=p.block_id,
                        victim_reason="cached_prefix_reuse", block_hash=_text(h),
                        kv_event=why, is_protected_resident=False)

    def _feed_event(self, e: KVEvent, batch: Batch) -> list[Event]:
        f = e.fields
        out: list[Event] = []
        hash_field = self.F.identity["hash"]
        if e.type == self.E.stored:
            for h in f.get(hash_field) or ():
                out += self._stored(h, f, batch)
        elif e.type == self.E.removed:
            for h in f.get(hash_field) or ():
                out += self._removed(h, f, batch)
        elif e.type == self.E.cleared:
            for k in self.ledger.clear(batch.instance, self.F.cleared_tiers):
                for p in self._by_hash.get(k.hash, ()):
                    if p.live and self._claims_key(p, k):
                        out.append(self._lost(p, p.claim.hashes[p.position], self.E.cleared))
        return out


def _text(h: Any) -> str:
    return h.hex() if isinstance(h, (bytes, bytearray)) else str(h)


def join_batches(batches: Iterable[Batch], manifest: Manifest,
                 fmt: str | None = None) -> list[Event]:
    """The checker events of `batches` taken in the order given (no sequence checks: a recorded
    stream is decided through kvclaims.kvstream, which orders it and reports its gaps)."""
    j = StreamJoin(manifest, fmt=fmt)
    out = j.start()
    for i, b in enumerate(batches, 1):
        out += j.feed_batch(b, i)
    return out
