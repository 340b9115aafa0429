"""Drive vLLM's real Scheduler + KVCacheManager (no model, no GPU) and record a joined trace.

docs/model.md §5 and §8: the trace is in the reference telemetry vocabulary the checker decides.
Nothing of vLLM is copied or re-implemented: the harness builds vLLM's own `VllmConfig`, resolves
the scheduler class through vLLM's own `scheduler_cls` setting, and steps `schedule()` /
`update_from_output()` with a model-free `ModelRunnerOutput`. It observes the real `BlockPool`
from outside by wrapping two methods of that one instance (no vLLM file is edited):

- `get_new_blocks(n)`: every block taken from the head of the free queue becomes an
  `allocation_victim_selected` (`victim_reason` `cached_prefix_reuse` when the block still carried
  a prefix-cache hash, i.e. vLLM evicted it on the spot, else `free_uncached`), attributed to the
  request whose `allocate_slots` is running;
- `cache_full_blocks(...)`: every newly hashed block becomes a `resident_block_materialized`,
  bound to a claim (`claim_id`, `prefix_id`, `logical_block_position`) when its hash is in a
  declared claim's chain (computed with vLLM's own block hasher), else to the storing request.

Scheduler outcomes join in: `active_request_admitted` is written before the blocks of the
allocation that admitted the request (the admission decision precedes the allocation it makes);
finishes, preemptions and requests left waiting are step records (and `.kvt` comments). The KV
events vLLM published each step (`KVEventBatch`) are kept beside the trace, and optionally go out
through vLLM's real `ZmqEventPublisher`.

With stock vLLM the harness itself writes the declared claim's telemetry
(`resident_claim_accepted`, `resident_claim_materialized`, field `declared_by = "harness"`),
because vLLM has no claim interface; with the claim-aware plug-in (scheduler_plugin.py) the
scheduler writes its own claim telemetry into the same trace.
"""

from __future__ import annotations

from kvclaims.runtime.vllm import _env  # noqa: F401  (before vLLM: CPU platform, offline)

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from vllm.config import (
    CacheConfig,
    KVEventsConfig,
    ModelConfig,
    SchedulerConfig,
    VllmConfig,
)
from vllm.sampling_params import SamplingParams
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput  # type only; built by adapter.model_runner_output
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

from kvclaims.runtime.vllm import PLUGIN_QUALNAME, STOCK_QUALNAME, adapter
from kvclaims.trace.model import Event
from kvclaims.trace.vllm_hashes import chain_hashes, external_hash, hash_text, make_block_hasher

SAMPLED_TOKEN = 5


# ---- claims and hashes ------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimDecl:
    """A declared resident claim on a token prefix (full blocks only are claimable)."""

    claim_id: str
    tokens: tuple[int, ...]
    mode: str = "hard_exclude"
    prefix_id: str | None = None
    required_blocks: int | None = None  # default: every full block of `tokens`
    duration_steps: int | None = None  # plug-in: expire after this many engine steps
    on_conflict: str = "refuse"  # plug-in: refuse | defer | demote
    cache_salt: str | None = None
    priority: int | None = None  # claim_priority: soft claims give way lowest first (R-yield)

    @property
    def prefix(self) -> str:
        return self.prefix_id or self.claim_id.split(":", 1)[-1]

    def as_config(self) -> dict[str, Any]:
        """JSON-safe form for `VllmConfig.additional_config["kvclaims"]["claims"]`."""
        return {"claim_id": self.claim_id, "tokens": list(self.tokens), "mode": self.mode,
                "prefix_id": self.prefix, "required_blocks": self.required_blocks,
                "duration_steps": self.duration_steps, "on_conflict": self.on_conflict,
                "cache_salt": self.cache_salt, "priority": self.priority}

    @staticmethod
    def from_config(d: dict[str, Any]) -> ClaimDecl:
        return ClaimDecl(claim_id=d["claim_id"], tokens=tuple(d["tokens"]),
                         mode=d.get("mode", "hard_exclude"), prefix_id=d.get("prefix_id"),
                         required_blocks=d.get("required_blocks"),
                         duration_steps=d.get("duration_steps"),
                         on_conflict=d.get("on_conflict", "refuse"),
                         cache_salt=d.get("cache_salt"), priority=d.get("priority"))


# ---- records ----------------------------------------------------------------------------------
@dataclass
class StepRecord:
    step: int
    scheduled: dict[str, int]
    new: list[str]
    preempted: list[str]
    finished: dict[str, str]
    waiting: list[str]
    running: list[str]
    prefix_hit_tokens: dict[str, int]
    kv_events: dict[str, int]

    def comment(self) -> str:
        parts = [f"step {self.step}:"]
        if self.scheduled:
            parts.append("scheduled=" + ",".join(f"{k}:{v}" for k, v in self.scheduled.items()))
        if self.prefix_hit_tokens:
            parts.append("prefix_hit_tokens=" + ",".join(
                f"{k}:{v}" for k, v in self.prefix_hit_tokens.items()))
        for name in ("preempted", "waiting", "running"):
            v = getattr(self, name)
            if v:
                parts.append(f"{name}=" + ",".join(v))
        if self.finished:
            parts.append("finished=" + ",".join(f"{k}:{v}" for k, v in self.finished.items()))
        if self.kv_events:
            parts.append("kv_events=" + ",".join(f"{k}:{v}" for k, v in self.kv_events.items()))
        return " ".join(parts)


@dataclass
class Bound:
    prefix_id: str
    position: int
    claim_id: str | None
    ext_hash: Any
    key: Any  # vLLM BlockHash (bytes)


@dataclass
class Workload:
    """A scripted workload: ordered actions, each one of
    ("add", request_id, tokens, max_tokens[, priority]) | ("abort", request_id) | ("step",)
    | ("run",) (step until idle) | ("expire_check",)."""

    actions: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, rid: str, tokens: Sequence[int], max_tokens: int = 1,
            priority: int = 0) -> Workload:
        self.actions.append(("add", rid, list(tokens), max_tokens, priority))
        return self

    def abort(self, rid: str) -> Workload:
        self.actions.append(("abort", rid))
        return self

    def step(self) -> Workload:
        self.actions.append(("step",))
        return self

    def run(self) -> Workload:
        self.actions.append(("run",))
        return self


# ---- the harness ------------------------------------------------------------------------------
class VllmHarness:
    """One vLLM scheduler instance plus the recorder. `plugin=True` loads the claim-aware
    scheduler through `scheduler_cls`; `claims` are declared before the first request."""

    def __init__(self, *, claims: Iterable[ClaimDecl] = (), plugin: bool = False,
                 scheduler_cls: str | None = None, num_blocks: int = 81, block_size: int = 16,
                 policy: str = "fcfs", max_model_len: int = 4096,
                 max_num_batched_tokens: int = 8192, max_num_seqs: int = 16,
                 kv_events_endpoint: str | None = None, kv_events_replay: str | None = None,
                 kv_topic: str = "kv", kv_transfer_config: Any = None,
                 hash_algo: str = "sha256", plugin_options: dict[str, Any] | None = None,
                 connector: bool = False, kv_load_failure_policy: str = "fail",
                 generic_counters: bool = False, run_id: str = "vllm-harness"):
        from vllm.config import KVTransferConfig  # noqa: F401  (type only)

        self.claims = list(claims)
        self.block_size = block_size
        self.usable = num_blocks - 1  # block 0 is vLLM's null block
        self.run_id = run_id
        self.hasher = make_block_hasher(block_size, hash_algo)
        self.events: list[Event] = []
        self.comments: dict[int, list[str]] = {}
        self.steps: list[StepRecord] = []
        self.kv_batches: list[Any] = []  # the real KVEventBatch objects vLLM published
        self.outcomes: dict[str, str] = {}
        self.requests: dict[str, Request] = {}
        self._seq = 0
        self._cur_request: str | None = None
        self._buffer: list[Event] | None = None
        self._admitted: set[str] = set()
        self._step = 0

        qualname = scheduler_cls or (PLUGIN_QUALNAME if plugin else STOCK_QUALNAME)
        cfg_claims = [c.as_config() for c in self.claims]
        additional = {"kvclaims": {"claims": cfg_claims, **(plugin_options or {})}}
        mc = ModelConfig(model=_env.tiny_model_dir(), skip_tokenizer_init=True,
                         max_model_len=max_model_len, dtype="float16")
        cc = CacheConfig(block_size=block_size, enable_prefix_caching=True,
                         prefix_caching_hash_algo=hash_algo)
        sc = SchedulerConfig(max_num_seqs=max_num_seqs,
                             max_num_batched_tokens=max_num_batched_tokens,
                             max_model_len=max_model_len, is_encoder_decoder=False,
                             policy=policy, scheduler_cls=qualname, async_scheduling=False)
        kv = KVEventsConfig(enable_kv_cache_events=True,
                            publisher="zmq" if kv_events_endpoint else "null",
                            endpoint=kv_events_endpoint or "tcp://*:5557",
                            replay_endpoint=kv_events_replay, topic=kv_topic)
        kw: dict[str, Any] = {}
        if connector and kv_transfer_config is None:
            # The host-tier connector (connector.py), through vLLM's own module-path loading.
            from vllm.config import KVTransferConfig

            from kvclaims.runtime.vllm.connector import CONNECTOR_NAME, MODULE_PATH

            kv_transfer_config = KVTransferConfig(
                kv_connector=CONNECTOR_NAME, kv_role="kv_both",
                kv_connector_module_path=MODULE_PATH, engine_id=f"kvclaims-{run_id}",
                kv_load_failure_policy=kv_load_failure_policy)
            sc.disable_hybrid_kv_cache_manager = True  # one KV cache group, as the probe
        if kv_transfer_config is not None:
            kw["kv_transfer_config"] = kv_transfer_config
        with adapter.platform_setup():
            vc = VllmConfig(model_config=mc, cache_config=cc, scheduler_config=sc,
                            kv_events_config=kv, additional_config=additional, **kw)
        cc.num_gpu_blocks = num_blocks
        spec = FullAttentionSpec(block_size=block_size, num_kv_heads=1, head_size=64,
                                 dtype=torch.float16)
        kcfg = KVCacheConfig(num_blocks=num_blocks, kv_cache_tensors=[],
                             kv_cache_groups=[KVCacheGroupSpec(["layer.0"], spec)])
        self.vllm_config = vc
        # vLLM's own resolution of the `scheduler_cls` setting (what EngineCore does).
        cls = vc.scheduler_config.get_scheduler_cls()
        self.scheduler_cls = cls
        self.scheduler = cls(vllm_config=vc, kv_cache_config=kcfg,
                             structured_output_manager=StructuredOutputManager(vc),
                             block_size=block_size, hash_block_size=block_size,
                             log_stats=True)
        self.pool = self.scheduler.kv_cache_manager.block_pool
        self.plugin = hasattr(self.scheduler, "kvclaims_attach")
        self.generic_counters = generic_counters
        self.worker_connector: Any = None
        self.kv_caches: dict[str, torch.Tensor] = {}
        self.restore_checks: list[tuple[str, int, int]] = []  # (request, block, 1 ok / 0 bad)
        self.load_errors: list[tuple[str, list[int]]] = []
        if self.scheduler.connector is not None:
            self._init_worker_connector(vc, kcfg, num_blocks, block_size)

        # claim chains: vLLM BlockHash -> (claim, position)
        self.claim_hashes: dict[str, list[Any]] = {}
        self.hash_index: dict[Any, tuple[ClaimDecl, int]] = {}
        for c in self.claims:
            hs = chain_hashes(c.tokens, self.hasher, c.cache_salt)
            self.claim_hashes[c.claim_id] = hs
            for i, h in enumerate(hs):
                self.hash_index.setdefault(h, (c, i))
        self.bound: dict[int, Bound] = {}  # physical block id -> binding
        self.bound_key: dict[Any, int] = {}  # BlockHash -> bound physical block id
        self.claim_live: dict[str, set[int]] = {c.claim_id: set() for c in self.claims}
        self.claim_materialized: set[str] = set()

        self._install_observers()
        if self.plugin:
            self.scheduler.kvclaims_attach(self._emit_plugin, usable=self.usable)
        else:
            for c in self.claims:
                self._emit("resident_claim_accepted", claim_id=c.claim_id,
                           protection_mode=c.mode, prefix_id=c.prefix,
                           resident_blocks_required=self._required(c),
                           materialization_predicate=(
                               f"leading_prefix_at_least({self._required(c)})"),
                           usable_blocks=self.usable, declared_by="harness")

    # ---- emission ------------------------------------------------------------------------
    def _required(self, c: ClaimDecl) -> int:
        return c.required_blocks or len(self.claim_hashes.get(c.claim_id) or
                                        chain_hashes(c.tokens, self.hasher, c.cache_salt))

    def _emit(self, kind: str, **fields: Any) -> None:
        fields = {k: v for k, v in fields.items() if v is not None}
        if self._buffer is not None:
            self._buffer.append(Event(kind, fields))
            return
        self._seq += 1
        self.events.append(Event(kind, {"event_sequence": self._seq, **fields}))

    def _emit_plugin(self, kind: str, fields: dict[str, Any]) -> None:
        self._emit(kind, **fields)

    def comment(self, text: str) -> None:
        self.comments.setdefault(len(self.events), []).append(text)

    # ---- observers on the one BlockPool instance -----------------------------------------
    def _install_observers(self) -> None:
        pool = self.pool
        orig_get_new = pool.get_new_blocks
        orig_cache = pool.cache_full_blocks
        mgr = self.scheduler.kv_cache_manager
        orig_alloc = mgr.allocate_slots
        publisher = self.scheduler.kv_event_publisher
        orig_publish = publisher.publish

        def get_new_blocks(num_blocks: int) -> list[Any]:
            q = pool.free_block_queue
            peek: list[tuple[int, Any]] = []
            node = q.fake_free_list_head.next_free_block
            for _ in range(min(num_blocks, q.num_free_blocks)):
                peek.append((node.block_id, node.block_hash))
                node = node.next_free_block
            ret = orig_get_new(num_blocks)
            for rank, blk in enumerate(ret):
                bid, had_hash = peek[rank] if rank < len(peek) else (blk.block_id, None)
                self._on_taken(blk.block_id, rank, had_hash is not None, had_hash)
            return ret

        def cache_full_blocks(request: Request, blocks: list[Any], num_cached_blocks: int,
                              num_full_blocks: int, block_size: int, kv_cache_group_id: int,
                              *args: Any, **kwargs: Any) -> None:
            orig_cache(request, blocks, num_cached_blocks, num_full_blocks, block_size,
                       kv_cache_group_id, *args, **kwargs)
            for i in range(num_cached_blocks, min(num_full_blocks, len(blocks))):
                blk = blocks[i]
                if blk.is_null or blk.block_hash is None or i >= len(request.block_hashes):
                    continue
                self._on_cached(request, i, blk)

        def allocate_slots(request: Request, *args: Any, **kwargs: Any) -> Any:
            outer = self._buffer
            self._cur_request = request.request_id
            free_before = pool.get_num_free_blocks()
            self._buffer = []
            try:
                result = orig_alloc(request, *args, **kwargs)
            finally:
                buffered, self._buffer = self._buffer, outer
                self._cur_request = None
            if result is not None and request.request_id not in self._admitted:
                self._admitted.add(request.request_id)
                n_new_computed = kwargs.get("num_new_computed_tokens", 0)
                self._emit("active_request_admitted", request_id=request.request_id,
                           active_live_blocks_required=-(-request.num_tokens // self.block_size),
                           free_blocks_before_allocate=free_before,
                           usable_blocks=self.usable,
                           prefix_cache_hit_blocks=n_new_computed // self.block_size,
                           arbiter_action="vllm_allocate_slots")
            for ev in buffered:
                self._emit(ev.kind, **ev.fields)
            return result

        def publish(batch: Any) -> None:
            self.kv_batches.append(batch)
            orig_publish(batch)

        pool.get_new_blocks = get_new_blocks
        pool.cache_full_blocks = cache_full_blocks
        mgr.allocate_slots = allocate_slots
        publisher.publish = publish

    def _on_taken(self, block_id: int, rank: int, cached: bool, had_hash: Any) -> None:
        b = self.bound.pop(block_id, None)
        ext = None
        if b is not None:
            ext = b.ext_hash
            if self.bound_key.get(b.key) == block_id:
                del self.bound_key[b.key]
            if b.claim_id is not None:
                self.claim_live[b.claim_id].discard(b.position)
        protected = bool(b is not None and b.claim_id is not None and self.plugin
                         and self.scheduler.kvclaims_is_protected(b.claim_id))
        if self.plugin and b is not None and b.claim_id is not None:
            # The plug-in announces a loss of a released claim's block before the victim.
            self.scheduler.kvclaims_before_loss(b.claim_id, block_id, b.position)
        self._emit("allocation_victim_selected", physical_block_id=block_id,
                   request_id=self._cur_request,
                   victim_reason="cached_prefix_reuse" if cached else "free_uncached",
                   free_queue_rank=rank, is_protected_resident=protected, block_hash=ext,
                   usable_blocks=self.usable if not self.events else None)

    def _on_cached(self, request: Request, index: int, blk: Any) -> None:
        key = request.block_hashes[index]
        if blk.block_id in self.bound:
            return
        hit = self.hash_index.get(key)
        ext = hash_text(external_hash(key))
        if hit is not None and key not in self.bound_key:
            c, pos = hit
            b = Bound(c.prefix, pos, c.claim_id, ext, key)
        elif hit is not None:
            # A second cached copy of a claimed hash (e.g. skip_reading_prefix_cache): vLLM keeps
            # serving the first copy; this one is recorded as an unclaimed copy.
            b = Bound(f"{hit[0].prefix}~copy", hit[1], None, ext, key)
        else:
            b = Bound(f"request:{request.request_id}", index, None, ext, key)
        self.bound[blk.block_id] = b
        if b.claim_id is not None:
            self.bound_key[key] = blk.block_id
        protected = bool(b.claim_id is not None and self.plugin
                         and self.scheduler.kvclaims_is_protected(b.claim_id))
        self._emit("resident_block_materialized", physical_block_id=blk.block_id,
                   logical_block_position=b.position, claim_id=b.claim_id,
                   prefix_id=b.prefix_id, block_hash=ext, ref_count=blk.ref_cnt,
                   is_protected_resident=protected, request_id=request.request_id)
        if b.claim_id is not None:
            live = self.claim_live[b.claim_id]
            live.add(b.position)
            c = self.hash_index[key][0]
            need = self._required(c)
            if (not self.plugin and c.claim_id not in self.claim_materialized
                    and all(p in live for p in range(need))):
                self.claim_materialized.add(c.claim_id)
                self._emit("resident_claim_materialized", claim_id=c.claim_id,
                           prefix_id=c.prefix, resident_blocks_materialized=len(live),
                           predicate_materialized=True, declared_by="harness")

    # ---- driving -------------------------------------------------------------------------
    def add_request(self, rid: str, tokens: Sequence[int], max_tokens: int = 1,
                    priority: int = 0, **kw: Any) -> Request:
        req = Request(rid, list(tokens), SamplingParams(max_tokens=max_tokens, ignore_eos=True,
                                                        **kw.pop("sampling", {})),
                      None, priority=priority, block_hasher=self.hasher, **kw)
        self.requests[rid] = req
        self.outcomes[rid] = "waiting"
        # The arrival (docs/model.md §6 R-progress): a request left waiting from here with no event while
        # claims hold the blocks it needs is deferred without saying so. vLLM's engine loop adds
        # the requests that came in before the step whose schedule() first sees them
        # (EngineCore: process the input queue, then step), so the arrival belongs to the next
        # scheduler step.
        self._emit("request_initialized", request_id=rid,
                   active_live_blocks_required=-(-req.num_tokens // self.block_size),
                   usable_blocks=self.usable,
                   scheduler_step=self._step + 1 if self.plugin else None)
        self.scheduler.add_request(req)
        return req

    def abort(self, rid: str) -> None:
        from vllm.v1.request import RequestStatus

        self.scheduler.finish_requests(rid, RequestStatus.FINISHED_ABORTED)
        self.outcomes[rid] = "aborted"
        self.comment(f"abort {rid}")

    def step(self) -> StepRecord:
        s = self.scheduler
        self._step += 1
        n_batches = len(self.kv_batches)
        so = s.schedule()
        ids = list(so.num_scheduled_tokens)
        sampled = []
        for rid in ids:
            req = s.requests.get(rid)
            done_prefill = req is not None and req.num_computed_tokens >= req.num_tokens
            sampled.append([SAMPLED_TOKEN] if done_prefill else [])
        mro = adapter.model_runner_output(ids, sampled)
        mro = self._model_output_hook(so, mro)
        eco = s.update_from_output(so, mro)
        finished: dict[str, str] = {}
        for outs in eco.values():
            for o in outs.outputs:
                if o.finish_reason is not None:
                    finished[o.request_id] = o.finish_reason.name.lower()
        if self.plugin:
            decided = self.scheduler.kvclaims_outcomes()
            for rid, outcome in decided.items():
                if self.outcomes.get(rid) in ("waiting", "deferred", "refused"):
                    self.outcomes[rid] = outcome
        for rid, why in finished.items():
            self.outcomes[rid] = "errored" if why == "error" else "finished"
        for rid in so.num_scheduled_tokens:
            if rid not in finished:
                self.outcomes[rid] = "running"
        if self.plugin:
            for rid, outcome in decided.items():
                if outcome == "refused" and rid in finished:
                    self.outcomes[rid] = "refused"  # the plug-in's fail-closed outcome
        for rid in so.preempted_req_ids or ():
            self.outcomes[rid] = "preempted"
        kinds: dict[str, int] = {}
        for b in self.kv_batches[n_batches:]:
            for e in b.events:
                kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
        rec = StepRecord(
            step=self._step, scheduled=dict(so.num_scheduled_tokens),
            new=[r.req_id for r in so.scheduled_new_reqs],
            preempted=sorted(so.preempted_req_ids or ()), finished=finished,
            waiting=[r.request_id for r in s.waiting],
            running=[r.request_id for r in s.running],
            prefix_hit_tokens={r.req_id: r.num_computed_tokens for r in so.scheduled_new_reqs},
            kv_events=kinds)
        self.steps.append(rec)
        self.comment(rec.comment())
        return rec

    def _model_output_hook(self, so: Any, mro: ModelRunnerOutput) -> ModelRunnerOutput:
        if self.worker_connector is None:
            return mro
        return self._worker_step(so, mro)

    # ---- the worker side of a KV connector, without a model ------------------------------
    # vLLM's model runner drives the worker-role connector from
    # v1/worker/kv_connector_model_runner_mixin.py (`_get_kv_connector_output`): bind the
    # step's metadata, start the loads (before the forward when the step has synchronous
    # loads), run the forward, wait for saves, then collect the transfer results and
    # `get_block_ids_with_load_errors()` into `KVConnectorOutput`. The model runner needs a
    # model and a device; this does the same calls in the same order on CPU tensors, and the
    # "forward" writes a deterministic content per block hash into the blocks it computes.
    def _init_worker_connector(self, vc: Any, kcfg: Any, num_blocks: int,
                               block_size: int) -> None:
        from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory
        from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorRole

        w = KVConnectorFactory.create_connector(config=vc, role=KVConnectorRole.WORKER,
                                                kv_cache_config=kcfg)
        self.kv_caches = {"layer.0": torch.zeros(num_blocks, block_size, 8)}
        w.register_kv_caches(self.kv_caches)
        self.worker_connector = w

    def block_content(self, h: Any) -> torch.Tensor:
        """What the 'model' writes into a full block with vLLM block hash `h`."""
        g = torch.Generator().manual_seed(int(external_hash(h)) % (2 ** 31))
        return torch.randn(self.block_size, 8, generator=g)

    def _worker_step(self, so: Any, mro: ModelRunnerOutput) -> ModelRunnerOutput:
        from vllm.v1.outputs import KVConnectorOutput

        w = self.worker_connector
        meta = so.kv_connector_metadata
        tier = w.tier
        before = (tier.stored, tier.loaded, tier.failed)
        w.bind_connector_metadata(meta)
        if so.has_sync_kv_loads:
            w.start_load_kv(None)
        self._forward(so)
        if not so.has_sync_kv_loads:
            w.start_load_kv(None)
        w.wait_for_save()
        res = w.get_transfer_results(so.finished_req_ids)
        out = KVConnectorOutput(finished_sending=res.finished_sending,
                                finished_recving=res.finished_recving,
                                failed_recving=res.failed_recving,
                                invalid_block_ids=w.get_block_ids_with_load_errors())
        w.clear_connector_metadata()
        kv = self.kv_caches["layer.0"]
        for job in meta.loads:
            bad = [b for b in job.block_ids if b in out.invalid_block_ids]
            if bad:
                self.load_errors.append((job.request_id, bad))
            for b, h in zip(job.block_ids, job.hashes):
                if b not in out.invalid_block_ids:
                    ok = bool(torch.equal(kv[b], self.block_content(h)))
                    self.restore_checks.append((job.request_id, b, int(ok)))
        if meta.loads or meta.stores:
            self.comment("connector: " + "; ".join(
                [f"store {j.request_id} blocks={j.block_ids}" for j in meta.stores]
                + [f"load {j.request_id} blocks={j.block_ids}" for j in meta.loads]
                + [f"invalid_block_ids={sorted(out.invalid_block_ids)}"
                   if out.invalid_block_ids else ""]).rstrip("; "))
        if self.generic_counters:
            stored, loaded, failed = (tier.stored - before[0], tier.loaded - before[1],
                                      tier.failed - before[2])
            if stored:
                self._emit("generic_kv_blocks_offloaded", blocks=stored)
            if loaded:
                self._emit("generic_kv_blocks_onboarded", blocks=loaded)
            if failed:
                self._emit("generic_kv_transfer_failed_counter", blocks=failed)
        mro.kv_connector_output = out
        return mro

    def _forward(self, so: Any) -> None:
        kv = self.kv_caches["layer.0"]
        bs = self.block_size
        for rid, n in so.num_scheduled_tokens.items():
            req = self.scheduler.requests.get(rid)
            if req is None:
                continue
            end = req.num_computed_tokens  # schedule() already advanced it by n
            ids = self.scheduler.kv_cache_manager.get_block_ids(rid)[0]
            for pos in range((end - n) // bs, min(end // bs, len(req.block_hashes))):
                kv[ids[pos]].copy_(self.block_content(req.block_hashes[pos]))

    def idle(self) -> bool:
        return not self.scheduler.has_requests() if hasattr(self.scheduler, "has_requests") \
            else sum(self.scheduler.get_request_counts()) == 0

    def run_until_idle(self, max_steps: int = 64, patience: int = 8) -> list[StepRecord]:
        """Step until no request is left, or nothing was scheduled for `patience` steps in a
        row (a request vLLM leaves waiting for good)."""
        out: list[StepRecord] = []
        idle = 0
        for _ in range(max_steps):
            running, waiting = self.scheduler.get_request_counts()
            if running + waiting == 0:
                break
            out.append(self.step())
            idle = 0 if out[-1].scheduled else idle + 1
            if idle >= patience:
                break
        return out

    def run(self, workload: Workload) -> VllmHarness:
        for act in workload.actions:
            op = act[0]
            if op == "add":
                self.add_request(act[1], act[2], act[3], *(act[4:5] or ()))
            elif op == "abort":
                self.abort(act[1])
            elif op == "step":
                self.step()
            elif op == "run":
                self.run_until_idle()
            else:
                raise ValueError(f"unknown workload action {op!r}")
        return self

    # ---- results -------------------------------------------------------------------------
    def still_cached(self, claim_id: str) -> list[int]:
        """Positions of a claim's chain that vLLM's prefix cache can still serve."""
        return [i for i, h in enumerate(self.claim_hashes[claim_id])
                if self.pool.get_cached_block(h, [0]) is not None]

    def provenance(self, workload: str, seed: int | None = None) -> list[str]:
        import platform

        import vllm

        return [
            f"vllm {vllm.__version__}, CPU, no model, no GPU",
            f"scheduler_cls {self.scheduler_cls.__module__}.{self.scheduler_cls.__qualname__}",
            f"block_size {self.block_size}, num_gpu_blocks {self.usable + 1} "
            f"(usable {self.usable}), prefix caching sha256",
            f"workload {workload}" + (f", seed {seed}" if seed is not None else ""),
            f"python {platform.python_version()}, torch {torch.__version__}",
        ]

    def write_kvt(self, path: str, header: Sequence[str] = ()) -> None:
        from kvclaims import spec as spec_mod
        from kvclaims.trace.write import kvt_line

        spec = spec_mod.load()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("kvtrace 1\n")
            for line in header:
                fh.write(f"# {line}\n")
            for i, ev in enumerate(self.events):
                for c in self.comments.get(i, ()):
                    fh.write(f"# {c}\n")
                fh.write(kvt_line(ev, spec) + "\n")
            for c in self.comments.get(len(self.events), ()):
                fh.write(f"# {c}\n")

    def close(self) -> None:
        if self.scheduler.connector is not None:
            from kvclaims.runtime.vllm.connector import drop_host_tier

            drop_host_tier(self.vllm_config.kv_transfer_config.engine_id)
        try:
            self.scheduler.shutdown()
        except Exception:  # pragma: no cover - best effort
            pass


def now_ns() -> int:
    return time.time_ns()
