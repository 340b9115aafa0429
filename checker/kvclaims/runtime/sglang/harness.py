"""Drive SGLang 0.5.23's real RadixCache + allocator + KV pool (no model) and record a joined trace.

docs/model.md §5 and §8; docs/sglang.md. What is SGLang's own code, run as it is: `RadixCache`
(prefix matching, insertion, node splitting, `evict`, `inc_lock_ref`/`dec_lock_ref`), its
`PagedTokenToKVPoolAllocator` (`alloc`, `free`, `evict_to_free_tokens`), `MHATokenToKVPool` and
`ReqToTokenPool` (CPU tensors), its `KVCacheEventRecorder` (the KV events and their hashes), its
`KVEventBatch`, and, when an endpoint is given, its `ZmqEventPublisher` (through SGLang's
`EventPublisherFactory`). What the harness does itself is the scheduler loop around them, at the
granularity of SGLang's prefill admission: for each waiting request in arrival order, match its
prompt (at most `len - 1` tokens, as `Req` does), lock the matched node, make room with the
allocator's `evict_to_free_tokens`, `alloc` the rest page-aligned; a request that does not fit
stops the admission round (SGLang's prefill adder stops on the first request it cannot add). A
request runs for `max_tokens` steps, then is finished as SGLang's cache layer finishes one: its
prompt is inserted into the tree, the duplicate pages the insert exposed are freed, the lock is
released. Output tokens are not cached (no model produces them).

The harness observes the tree from outside by wrapping two methods of its one
`KVCacheEventRecorder` instance (no SGLang file is edited): `record_store(node)` becomes one
`resident_block_materialized` per page (bound to a claim position when its hash is in a declared
claim's chain, hashed with SGLang's own function: :func:`page_hashes`), and `record_remove(node)`
one `allocation_victim_selected` per page of the removed node (`victim_reason` the spec's cached
reason, attributed to the request whose allocation evicted it). The recorder's own events still go
out unchanged: one `BlockRemoved` carries every page of an evicted node.

With the stock tree the harness writes the declared claims' telemetry itself
(`declared_by = "harness"`); with the claim-aware tree (plugin.py, chosen with `tree_cache_cls`) the
tree writes its own into the same trace. Event kinds come from spec/events.toml (EventNames); every
emitted key is checked against the event's closed key set.
"""

from __future__ import annotations

from kvclaims.trace import sglang_env  # noqa: F401  (before SGLang: the torchvision placeholder)

import importlib
import json
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from sglang.srt.disaggregation.kv_events import EventPublisherFactory, KVEventBatch
from sglang.srt.mem_cache.allocator.paged import PagedTokenToKVPoolAllocator
from sglang.srt.mem_cache.base_prefix_cache import InsertParams, MatchPrefixParams
from sglang.srt.mem_cache.cache_init_params import CacheInitParams
from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, ReqToTokenPool
from sglang.srt.mem_cache.radix_cache import RadixCache, RadixKey

from kvclaims import spec as spec_mod
from kvclaims.check.state import EventNames
from kvclaims.runtime.sglang import PLUGIN_QUALNAME, SGLANG_VERSION, STOCK_QUALNAME
from kvclaims.trace.model import Event
from kvclaims.trace.sglang_hashes import PAGE_SIZE, page_hashes, radix_key  # noqa: F401  (re-exported)



# ---- claims and hashes ------------------------------------------------------------------------
@dataclass(frozen=True)
class SglClaim:
    """A declared resident claim on a token prefix (full pages only are claimable)."""

    claim_id: str
    tokens: tuple[int, ...]
    mode: str = "hard_exclude"
    prefix_id: str | None = None
    required_pages: int | None = None  # default: every full page of `tokens`
    duration_steps: int | None = None  # plug-in: expire after this many steps
    on_conflict: str = "refuse"  # plug-in: refuse | defer | demote
    priority: int | None = None  # claim_priority: soft claims give way lowest first (R-yield)
    cache_salt: str | None = None

    @property
    def prefix(self) -> str:
        return self.prefix_id or self.claim_id.split(":", 1)[-1]


def resolve_tree_cls(qualname: str) -> type:
    mod, _, name = qualname.rpartition(".")
    cls = getattr(importlib.import_module(mod), name)
    if not (isinstance(cls, type) and issubclass(cls, RadixCache)):
        raise TypeError(f"tree_cache_cls {qualname} is not a RadixCache")
    return cls


# ---- records ----------------------------------------------------------------------------------
@dataclass
class StepRecord:
    step: int
    admitted: dict[str, int]  # request -> prefix hit tokens
    finished: list[str]
    waiting: list[str]
    running: list[str]
    kv_events: dict[str, int]

    @property
    def scheduled(self) -> dict[str, int]:
        return self.admitted

    def comment(self) -> str:
        parts = [f"step {self.step}:"]
        if self.admitted:
            parts.append("admitted(prefix_hit_tokens)=" + ",".join(
                f"{k}:{v}" for k, v in self.admitted.items()))
        for name in ("finished", "waiting", "running"):
            v = getattr(self, name)
            if v:
                parts.append(f"{name}=" + ",".join(v))
        if self.kv_events:
            parts.append("kv_events=" + ",".join(f"{k}:{v}" for k, v in self.kv_events.items()))
        return " ".join(parts)


@dataclass
class _Bound:
    prefix_id: str
    position: int
    claim_id: str | None
    block_hash: int


@dataclass
class _Req:
    rid: str
    tokens: list[int]
    max_tokens: int
    priority: int
    row: int | None = None
    lock: Any = None
    prefix_len: int = 0  # tree-owned tokens at admission (the matched prefix)
    remaining: int = 0


@dataclass
class _Live:
    claim: SglClaim
    positions: set[int] = field(default_factory=set)


# ---- the harness ------------------------------------------------------------------------------
class SglangHarness:
    """SGLang's tree, allocator and pools plus the recorder. `plugin=True` configures the
    claim-aware tree (`tree_cache_cls`); `claims` are declared before the first request."""

    def __init__(self, *, claims: Sequence[SglClaim] = (), plugin: bool = False,
                 tree_cache_cls: str | None = None, num_pages: int = 80,
                 page_size: int = PAGE_SIZE, max_running: int = 16, max_context_len: int = 8192,
                 eviction_policy: str = "lru", kv_events_endpoint: str | None = None,
                 kv_topic: str = "kv", plugin_options: dict[str, Any] | None = None,
                 run_id: str = "sglang-harness"):
        self.spec = spec_mod.load()
        self.E = EventNames(self.spec)
        self.claims = list(claims)
        self.page_size = page_size
        self.usable = num_pages
        self.run_id = run_id
        self.events: list[Event] = []
        self.comments: dict[int, list[str]] = {}
        self.steps: list[StepRecord] = []
        self.kv_batches: list[Any] = []  # the real KVEventBatch objects, one per step with events
        self.outcomes: dict[str, str] = {}
        self.prefix_hit_tokens: dict[str, int] = {}
        self._seq = 0
        self._step = 0
        self._cur_request: str | None = None
        self._buffer: list[Event] | None = None
        self.waiting: list[_Req] = []
        self.running: dict[str, _Req] = {}

        size = num_pages * page_size
        self.kv_pool = MHATokenToKVPool(size=size, page_size=page_size, dtype=torch.float16,
                                        head_num=1, head_dim=8, layer_num=1, device="cpu",
                                        enable_memory_saver=False)
        self.allocator = PagedTokenToKVPoolAllocator(size=size, page_size=page_size,
                                                     dtype=torch.float16, device="cpu",
                                                     kvcache=self.kv_pool, need_sort=False)
        self.req_to_token = ReqToTokenPool(size=max_running, max_context_len=max_context_len,
                                           device="cpu", enable_memory_saver=False)
        params = CacheInitParams(disable=False, req_to_token_pool=self.req_to_token,
                                 token_to_kv_pool_allocator=self.allocator, page_size=page_size,
                                 eviction_policy=eviction_policy, enable_kv_cache_events=True)
        qualname = tree_cache_cls or (PLUGIN_QUALNAME if plugin else STOCK_QUALNAME)
        self.tree_cls = resolve_tree_cls(qualname)
        self.tree = self.tree_cls(params)
        self.plugin = hasattr(self.tree, "kvclaims_configure")
        self.tree.take_events()  # the construction's AllBlocksCleared (reset of an empty tree)
        self.publisher = None
        if kv_events_endpoint:
            # bind: SGLang binds only wildcard endpoints by default; a loopback one stays local.
            cfg = json.dumps({"publisher": "zmq", "endpoint": kv_events_endpoint,
                              "topic": kv_topic, "bind": True})
            self.publisher = EventPublisherFactory.create(cfg, 0)

        # claim chains: SGLang page hash -> (claim, position)
        self.claim_hashes: dict[str, list[int]] = {}
        self.hash_index: dict[int, tuple[SglClaim, int]] = {}
        for c in self.claims:
            hs = page_hashes(c.tokens, page_size, c.cache_salt)
            self.claim_hashes[c.claim_id] = hs
            for i, h in enumerate(hs):
                self.hash_index.setdefault(h, (c, i))
        self.bound: dict[int, _Bound] = {}  # physical page id -> binding
        self.claim_live: dict[str, _Live] = {c.claim_id: _Live(c) for c in self.claims}
        self.claim_materialized: set[str] = set()
        self._install_observers()
        if self.plugin:
            self.tree.kvclaims_configure(self.claims, self._emit_plugin, usable=self.usable,
                                         options=plugin_options or {})
        else:
            for c in self.claims:
                need = self.required(c)
                self._emit(self.E.accepted, claim_id=c.claim_id, protection_mode=c.mode,
                           prefix_id=c.prefix, resident_blocks_required=need,
                           materialization_predicate=f"leading_prefix_at_least({need})",
                           usable_blocks=self.usable, declared_by="harness")

    # ---- emission ------------------------------------------------------------------------
    def required(self, c: SglClaim) -> int:
        return c.required_pages or len(self.claim_hashes[c.claim_id])

    def _emit(self, kind: str, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        allowed = self.spec.allowed_keys(kind)
        if allowed is None:
            raise KeyError(f"spec/events.toml lacks {kind}")
        bad = sorted(set(fields) - allowed)
        if bad:
            raise KeyError(f"{kind} does not carry {', '.join(bad)} (spec/events.toml)")
        if self._buffer is not None:
            self._buffer.append(Event(kind, fields))
            return
        self._seq += 1
        self.events.append(Event(kind, {"event_sequence": self._seq, **fields}))

    def _emit_plugin(self, kind: str, fields: dict[str, Any]) -> None:
        self._emit(kind, **fields)

    def comment(self, text: str) -> None:
        self.comments.setdefault(len(self.events), []).append(text)

    # ---- observers on the one KVCacheEventRecorder instance ------------------------------
    def _install_observers(self) -> None:
        rec = self.tree.kv_events
        orig_store, orig_remove, orig_enqueue = rec.record_store, rec.record_remove, rec.enqueue
        pending: list[int] = []  # the pages of the node being recorded, in order

        def pages_of(node: Any) -> list[int]:
            v = node.value
            return [int(p) for p in (v[::self.page_size] // self.page_size).tolist()]

        def enqueue(event: Any) -> None:
            kind = type(event).__name__
            hashes = list(getattr(event, "block_hashes", ()) or ())  # before coalescing
            orig_enqueue(event)
            if kind == "BlockStored":
                for h in hashes:
                    self._on_stored(pending.pop(0), h)
            elif kind == "BlockRemoved":
                for h in hashes:
                    self._on_removed(pending.pop(0), h)

        def record_store(node: Any, *args: Any, **kwargs: Any) -> None:
            pending[:] = pages_of(node)
            orig_store(node, *args, **kwargs)

        def record_remove(node: Any, *args: Any, **kwargs: Any) -> None:
            pending[:] = pages_of(node)
            orig_remove(node, *args, **kwargs)

        rec.enqueue = enqueue
        rec.record_store = record_store
        rec.record_remove = record_remove

    def _protected(self, b: _Bound | None) -> bool:
        return bool(b is not None and b.claim_id is not None and self.plugin
                    and self.tree.kvclaims_is_protected(b.claim_id))

    def _on_stored(self, page: int, h: int) -> None:
        hit = self.hash_index.get(h)
        if hit is not None:
            c, pos = hit
            b = _Bound(c.prefix, pos, c.claim_id, h)
        else:
            b = _Bound(f"request:{self._cur_request}", -1, None, h)
        self.bound[page] = b
        self._emit(self.E.block_materialized, physical_block_id=page,
                   logical_block_position=max(b.position, 0), claim_id=b.claim_id,
                   prefix_id=b.prefix_id, block_hash=str(h),
                   is_protected_resident=self._protected(b))
        if b.claim_id is None:
            return
        live = self.claim_live[b.claim_id]
        live.positions.add(b.position)
        c = live.claim
        need = self.required(c)
        if (not self.plugin and c.claim_id not in self.claim_materialized
                and all(p in live.positions for p in range(need))):
            self.claim_materialized.add(c.claim_id)
            self._emit(self.E.materialized, claim_id=c.claim_id, prefix_id=c.prefix,
                       resident_blocks_materialized=len(live.positions),
                       predicate_materialized=True, declared_by="harness")

    def _on_removed(self, page: int, h: int) -> None:
        b = self.bound.pop(page, None)
        protected = self._protected(b)
        if b is not None and b.claim_id is not None:
            self.claim_live[b.claim_id].positions.discard(b.position)
            if self.plugin:  # the plug-in announces a loss it is responsible for first
                self.tree.kvclaims_before_loss(b.claim_id, page, b.position)
        self._emit(self.E.victim, physical_block_id=page, request_id=self._cur_request,
                   victim_reason=self.spec.values["cached_victim_reason"],
                   is_protected_resident=protected, block_hash=str(h))

    # ---- driving -------------------------------------------------------------------------
    def pages_for(self, n_tokens: int) -> int:
        return -(-n_tokens // self.page_size)

    def add_request(self, rid: str, tokens: Sequence[int], max_tokens: int = 1,
                    priority: int = 0) -> None:
        if not tokens:
            raise ValueError("a request needs at least one token")
        self.waiting.append(_Req(rid, list(tokens), max(1, max_tokens), priority))
        self.outcomes[rid] = "waiting"
        # The arrival (docs/model.md §6 R-progress); it is decided from the next step on.
        self._emit(self.E.request_initialized, request_id=rid,
                   active_live_blocks_required=self.pages_for(len(tokens)),
                   usable_blocks=self.usable,
                   scheduler_step=self._step + 1 if self.plugin else None)

    def abort(self, rid: str) -> None:
        for r in self.waiting:
            if r.rid == rid:
                self.waiting.remove(r)
                break
        else:
            r = self.running.pop(rid, None)
            if r is not None:
                self._release(r)  # SGLang caches what an aborted request computed
        self.outcomes[rid] = "aborted"
        self.comment(f"abort {rid}")

    def _admit(self, r: _Req) -> bool:
        """One request through SGLang's tree and allocator; False when it does not fit."""
        t, ps = self.tree, self.page_size
        limit = len(r.tokens) - 1  # Req matches at most input_len - 1 tokens
        m = t.match_prefix(MatchPrefixParams(key=radix_key(r.tokens[:limit])))
        prefix = m.device_prefix_len
        lock = t.lock(m.last_device_node)
        alloc_tokens = self.pages_for(len(r.tokens) - prefix) * ps
        free_before = self.allocator.available_size() // ps
        self._cur_request = r.rid
        self._buffer = []
        try:
            self.allocator.evict_to_free_tokens(t, alloc_tokens)
            idx = self.allocator.alloc(alloc_tokens)
        finally:
            buffered, self._buffer = self._buffer, None
        if idx is None:
            t.unlock(lock)
        else:
            self._emit(self.E.admitted, request_id=r.rid,
                       active_live_blocks_required=self.pages_for(len(r.tokens)),
                       free_blocks_before_allocate=free_before, usable_blocks=self.usable,
                       prefix_cache_hit_blocks=prefix // ps,
                       arbiter_action="sglang_evict_to_free_tokens_alloc")
        evicted = set()
        for ev in buffered:  # victims of the eviction (even when the allocation then failed)
            evicted.add(ev.fields.get("physical_block_id"))
            self._emit(ev.kind, **ev.fields)
        if idx is not None:
            # Every other page the allocation took from the free list: an uncached victim.
            taken = [int(p) for p in (idx[::ps] // ps).tolist()]
            for rank, page in enumerate(taken):
                if page not in evicted:
                    self._emit(self.E.victim, physical_block_id=page, request_id=r.rid,
                               victim_reason=self.spec.values["uncached_victim_reason"],
                               free_queue_rank=rank, is_protected_resident=False)
        self._cur_request = None
        if idx is None:
            return False
        row = self.req_to_token.alloc_rows(1)[0]
        prefix_idx = t.path_device_indices(m.last_device_node).to(torch.int32)
        self.req_to_token.write((row, slice(0, prefix)), prefix_idx)
        self.req_to_token.write((row, slice(prefix, prefix + alloc_tokens)), idx.to(torch.int32))
        r.row, r.lock, r.prefix_len, r.remaining = row, lock, prefix, r.max_tokens
        self.prefix_hit_tokens[r.rid] = prefix
        return True

    def _release(self, r: _Req) -> None:
        """Finish a request as SGLang's cache layer does: insert its prompt, free what the insert
        made duplicate and the partial last page, release the lock and the row."""
        t, ps = self.tree, self.page_size
        n = len(r.tokens)
        aligned = n // ps * ps
        alloc_end = r.prefix_len + self.pages_for(n - r.prefix_len) * ps
        kv = self.req_to_token.req_to_token[r.row, :alloc_end].to(torch.int64)
        self._cur_request = r.rid
        res = t.insert(InsertParams(key=radix_key(r.tokens), value=kv[:aligned].clone(),
                                    priority=r.priority))
        self._cur_request = None
        self.allocator.free(kv[r.prefix_len:res.prefix_len])  # now the tree's own copies
        self.allocator.free(kv[max(aligned, r.prefix_len):alloc_end])  # the partial last page
        t.unlock(r.lock)
        self.req_to_token.free_rows([r.row])
        r.row = r.lock = None

    def step(self) -> StepRecord:
        self._step += 1
        if self.plugin:
            self.tree.kvclaims_on_step(self._step)
        admitted: dict[str, int] = {}
        held: set[str] = set()
        if self.plugin:
            # The claim-aware tree decides every waiting request the claims stand in the way of
            # before the admission round, as a scheduler asks its cache before it allocates.
            for r in list(self.waiting):
                decision = self.tree.kvclaims_arbitrate(r.rid, r.tokens)
                if decision == "refused":
                    self.waiting.remove(r)
                    self.outcomes[r.rid] = "refused"
                elif decision == "deferred":
                    self.outcomes[r.rid] = "deferred"
                    held.add(r.rid)  # set aside this step: the requests behind it go on
        for r in list(self.waiting):
            if len(self.running) >= self.req_to_token.size:
                break
            if r.rid in held:
                continue
            if not self._admit(r):
                break  # SGLang's prefill adder stops at the first request it cannot add
            self.waiting.remove(r)
            self.running[r.rid] = r
            self.outcomes[r.rid] = "running"
            admitted[r.rid] = r.prefix_len
        finished = []
        for rid, r in list(self.running.items()):
            r.remaining -= 1
            if r.remaining <= 0:
                del self.running[rid]
                self._release(r)
                self.outcomes[rid] = "finished"
                finished.append(rid)
        kinds = self._publish()
        rec = StepRecord(self._step, admitted, finished, [r.rid for r in self.waiting],
                         list(self.running), kinds)
        self.steps.append(rec)
        self.comment(rec.comment())
        return rec

    def _publish(self) -> dict[str, int]:
        """The step's KV events as SGLang's scheduler publishes them (one KVEventBatch)."""
        events = self.tree.take_events()
        kinds: dict[str, int] = {}
        for e in events:
            kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
        if events:
            batch = KVEventBatch(ts=time.time(), events=events)
            self.kv_batches.append(batch)
            if self.publisher is not None:
                self.publisher.publish(batch)
        return kinds

    def idle(self) -> bool:
        return not self.waiting and not self.running

    def run_until_idle(self, max_steps: int = 64, patience: int = 3) -> list[StepRecord]:
        """Step until no request is left, or nothing was admitted or finished for `patience`
        steps in a row (a request SGLang leaves waiting for good)."""
        out: list[StepRecord] = []
        quiet = 0
        for _ in range(max_steps):
            if self.idle():
                break
            out.append(self.step())
            quiet = 0 if (out[-1].admitted or out[-1].finished) else quiet + 1
            if quiet >= patience:
                break
        return out

    # ---- results -------------------------------------------------------------------------
    def served_pages(self, tokens: Sequence[int]) -> int:
        """Pages of `tokens` SGLang's tree serves now (a lookup, as a new request would do)."""
        m = self.tree.match_prefix(MatchPrefixParams(key=radix_key(tokens)))
        return m.device_prefix_len // self.page_size

    def still_cached(self, claim_id: str) -> list[int]:
        c = next(c for c in self.claims if c.claim_id == claim_id)
        return list(range(self.served_pages(c.tokens)))

    def provenance(self, workload: str, seed: int | None = None) -> list[str]:
        import platform

        import sglang

        return [
            f"sglang {sglang.__version__} (expected {SGLANG_VERSION}), CPU, no model, no GPU",
            f"tree_cache_cls {self.tree_cls.__module__}.{self.tree_cls.__qualname__}",
            f"page_size {self.page_size}, pages {self.usable}, allocator "
            f"{type(self.allocator).__name__}, pool {type(self.kv_pool).__name__}",
            f"workload {workload}" + (f", seed {seed}" if seed is not None else ""),
            f"python {platform.python_version()}, torch {torch.__version__}",
        ]

    def write_kvt(self, path: str, header: Sequence[str] = ()) -> None:
        from kvclaims.trace.write import kvt_line

        with open(path, "w", encoding="utf-8") as fh:
            fh.write("kvtrace 1\n")
            for line in header:
                fh.write(f"# {line}\n")
            for i, ev in enumerate(self.events):
                for c in self.comments.get(i, ()):
                    fh.write(f"# {c}\n")
                fh.write(kvt_line(ev, self.spec) + "\n")
            for c in self.comments.get(len(self.events), ()):
                fh.write(f"# {c}\n")

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.shutdown()
            self.publisher = None


def installed_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("sglang")
