"""An in-process host-tier KV connector for vLLM, loaded through `kv_connector_module_path`.

docs/model.md §4 (offloadable sub-lifecycle) and §6 (offloadable bundle). Configure it with vLLM's own
settings, no vLLM file edited:

    KVTransferConfig(kv_connector="HostTierConnector", kv_role="kv_both",
                     kv_connector_module_path="kvclaims.runtime.vllm.connector",
                     kv_load_failure_policy="fail")

It is a real `KVConnectorBase_V1` with both roles:

- **scheduler role** (inside vLLM's `Scheduler`): `get_num_new_matched_tokens` looks the request's
  block hashes (vLLM's own chain) up in the host tier past the local prefix-cache hit and offers
  them as a *synchronous* external hit; `update_state_after_alloc` plans the load into the blocks
  vLLM allocated; `build_connector_meta` adds write-through store jobs for every full prompt block
  computed this step (as vLLM's `OffloadingConnector` does, `offload_prompt_only`).
- **worker role** (what the model runner drives through `kv_connector_model_runner_mixin`):
  `register_kv_caches` receives the paged KV tensors; `start_load_kv` copies host copies into the
  allocated GPU blocks; `wait_for_save` copies computed blocks to the host tier (a dict of tensor
  copies keyed by vLLM's block hash); `get_block_ids_with_load_errors` reports the blocks whose
  load failed.

A **controlled CPU→GPU load failure** is injected per block hash (`HostTier.inject_load_failure`):
the worker then leaves those blocks unloaded and reports them as invalid, which sends vLLM's real
scheduler down its invalid-KV-load branch (`Scheduler._handle_invalid_blocks`): with
`kv_load_failure_policy="fail"` the request finishes with `FINISHED_ERROR`, with `"recompute"` it is
rescheduled and recomputed.

Both roles live in one process and share one `HostTier` per `engine_id` (`host_tier()`); in a real
deployment the worker role runs in the model-runner process. An observer (the claim-aware
scheduler, `kvclaims_observe`) is told about lookups, planned loads and injected failures, so it
can map them onto claims.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorMetadata,
    KVConnectorRole,
)
from vllm.v1.metrics.cache_hit_source import CacheHitSource

MODULE_PATH = "kvclaims.runtime.vllm.connector"
CONNECTOR_NAME = "HostTierConnector"


# ---- the host tier --------------------------------------------------------------------------
@dataclass
class HostTier:
    """Host copies of KV blocks, keyed by vLLM's block hash (bytes)."""

    blocks: dict[Any, torch.Tensor] = field(default_factory=dict)
    fail_loads: set[Any] = field(default_factory=set)  # hashes whose next loads fail
    stored: int = 0
    loaded: int = 0
    failed: int = 0
    log: list[tuple[str, Any, int]] = field(default_factory=list)  # (op, hash, block id)

    def has(self, h: Any) -> bool:
        return h in self.blocks

    def inject_load_failure(self, hashes: Any) -> None:
        """Controlled CPU→GPU load failure: loads of these hashes fail until cleared."""
        self.fail_loads.update(hashes)

    def clear_failures(self) -> None:
        self.fail_loads.clear()


_TIERS: dict[str, HostTier] = {}


def host_tier(engine_id: str) -> HostTier:
    t = _TIERS.get(engine_id)
    if t is None:
        t = _TIERS[engine_id] = HostTier()
    return t


def drop_host_tier(engine_id: str) -> None:
    _TIERS.pop(engine_id, None)


# ---- metadata (scheduler -> worker) -----------------------------------------------------------
@dataclass
class Job:
    request_id: str
    block_ids: list[int]
    hashes: list[Any]
    positions: list[int]


@dataclass
class HostTierMetadata(KVConnectorMetadata):
    loads: list[Job] = field(default_factory=list)
    stores: list[Job] = field(default_factory=list)


# ---- the connector --------------------------------------------------------------------------
class HostTierConnector(KVConnectorBase_V1):
    _cache_hit_source = CacheHitSource.HOST

    def __init__(self, vllm_config: Any, role: KVConnectorRole, kv_cache_config: Any = None):
        super().__init__(vllm_config=vllm_config, role=role, kv_cache_config=kv_cache_config)
        self.block_size = vllm_config.cache_config.block_size
        self.tier = host_tier(self._kv_transfer_config.engine_id)
        # scheduler role
        self._lookups: dict[str, tuple[int, list[Any]]] = {}  # rid -> (first pos, hashes)
        self._loads: dict[str, Job] = {}
        self._requests: dict[str, Any] = {}
        self._stored_upto: dict[str, int] = {}
        self._queued: set[Any] = set()  # hashes with a store job in flight
        self.observer: Any = None
        # worker role
        self.kv_caches: dict[str, torch.Tensor] = {}
        self._load_errors: set[int] = set()
        self._failed_requests: set[str] = set()  # this step's requests with a failed load

    def kvclaims_observe(self, observer: Any) -> None:
        self.observer = observer

    # ---- scheduler role ------------------------------------------------------------------
    def get_num_new_matched_tokens(self, request: Any,
                                   num_computed_tokens: int) -> tuple[int | None, bool]:
        bs = self.block_size
        start = num_computed_tokens // bs
        hashes = list(request.block_hashes)
        n = 0
        while start + n < len(hashes) and self.tier.has(hashes[start + n]):
            n += 1
        # Leave at least one prompt token to compute (vLLM samples from it).
        while n and (start + n) * bs >= request.num_tokens:
            n -= 1
        if n == 0:
            self._lookups.pop(request.request_id, None)
            return 0, False
        hit = hashes[start:start + n]
        self._lookups[request.request_id] = (start, hit)
        if self.observer is not None:
            self.observer.kvclaims_on_lookup(request, start, hit)
        return n * bs, False

    def update_state_after_alloc(self, request: Any, blocks: Any,
                                 num_external_tokens: int) -> None:
        rid = request.request_id
        self._requests[rid] = request
        if num_external_tokens <= 0:
            self._lookups.pop(rid, None)
            return
        start, hit = self._lookups.pop(rid)
        n = num_external_tokens // self.block_size
        ids = blocks.get_block_ids()[0][start:start + n]
        job = Job(rid, list(ids), hit[:n], list(range(start, start + n)))
        self._loads[rid] = job
        self._stored_upto[rid] = start + n  # loaded blocks are already in the host tier
        if self.observer is not None:
            self.observer.kvclaims_on_load_planned(request, job)

    def build_connector_meta(self, scheduler_output: Any) -> KVConnectorMetadata:
        meta = HostTierMetadata(loads=list(self._loads.values()))
        self._loads.clear()
        bs = self.block_size
        for rid, n_sched in scheduler_output.num_scheduled_tokens.items():
            req = self._requests.get(rid)
            if req is None or self._kv_cache_manager is None:
                continue
            # vLLM builds the metadata before it advances num_computed_tokens (schedule()).
            computed = min(req.num_computed_tokens + n_sched, req.num_prompt_tokens)
            full = min(computed // bs, len(req.block_hashes))
            first = self._stored_upto.get(rid, 0)
            if full <= first:
                continue
            ids = self._kv_cache_manager.get_block_ids(rid)[0]
            job = Job(rid, [], [], [])
            for pos in range(first, full):
                h = req.block_hashes[pos]
                if self.tier.has(h) or h in self._queued:
                    continue
                job.block_ids.append(ids[pos])
                job.hashes.append(h)
                job.positions.append(pos)
                self._queued.add(h)
            self._stored_upto[rid] = full
            if job.block_ids:
                meta.stores.append(job)
        return meta

    def update_connector_output(self, connector_output: Any) -> None:
        self._queued.clear()  # wait_for_save completed every store job of the step

    def request_finished(self, request: Any,
                         block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        rid = request.request_id
        self._requests.pop(rid, None)
        self._stored_upto.pop(rid, None)
        self._lookups.pop(rid, None)
        self._loads.pop(rid, None)
        return False, None

    # ---- worker role ---------------------------------------------------------------------
    def register_kv_caches(self, kv_caches: dict[str, torch.Tensor]) -> None:
        self.kv_caches = dict(kv_caches)

    def start_load_kv(self, forward_context: Any, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        assert isinstance(meta, HostTierMetadata)
        for job in meta.loads:
            for bid, h in zip(job.block_ids, job.hashes):
                if h in self.tier.fail_loads or h not in self.tier.blocks:
                    self._load_errors.add(bid)
                    self._failed_requests.add(job.request_id)  # the copy never reaches the GPU block
                    self.tier.failed += 1
                    self.tier.log.append(("load_failed", h, bid))
                    continue
                for name, kv in self.kv_caches.items():
                    kv[bid].copy_(self.tier.blocks[h][name])
                self.tier.loaded += 1
                self.tier.log.append(("loaded", h, bid))

    def wait_for_layer_load(self, layer_name: str) -> None:
        return None

    def save_kv_layer(self, layer_name: str, kv_layer: torch.Tensor, attn_metadata: Any,
                      **kwargs: Any) -> None:
        return None

    def wait_for_save(self) -> None:
        meta = self._get_connector_metadata()
        assert isinstance(meta, HostTierMetadata)
        failed, self._failed_requests = self._failed_requests, set()
        for job in meta.stores:
            if job.request_id in failed:
                continue  # computed on top of KV that never loaded: never write it through
            for bid, h in zip(job.block_ids, job.hashes):
                self.tier.blocks[h] = {name: kv[bid].clone()
                                       for name, kv in self.kv_caches.items()}
                self.tier.stored += 1
                self.tier.log.append(("stored", h, bid))

    def get_block_ids_with_load_errors(self) -> set[int]:
        errors, self._load_errors = self._load_errors, set()
        return errors
