"""The 60/70/80 probe on vLLM's real Scheduler/KVCacheManager/BlockPool (docs/model.md §8), on
every supported version (0.34.0, 0.33.0), and `kvclaims probe vllm` over it."""

from __future__ import annotations

import vllm
from vllm.v1.core.block_pool import BlockPool
from vllm.v1.core.kv_cache_manager import KVCacheManager
from vllm.v1.core.sched.scheduler import Scheduler

from kvclaims.check.replay import Replay, check_events
from kvclaims.runtime.vllm import PLUGIN_QUALNAME
from kvclaims.runtime.vllm.probe import CLAIM_ID
from kvclaims.runtime.vllm.scheduler_plugin import ClaimAwareScheduler


def test_vllm_version():
    import importlib.metadata

    from kvclaims.runtime.vllm import adapter

    assert vllm.__version__ in adapter.SUPPORTED_VERSIONS
    assert adapter.installed_version() == importlib.metadata.version("vllm") == vllm.__version__


def test_stock_is_vllms_own_code(stock_probe):
    h = stock_probe.harness
    assert type(h.scheduler) is Scheduler
    assert type(h.scheduler.kv_cache_manager) is KVCacheManager
    assert type(h.pool) is BlockPool
    assert h.vllm_config.scheduler_config.scheduler_cls == "vllm.v1.core.sched.scheduler.Scheduler"


def test_stock_probe_numbers_from_vllm(stock_probe):
    # Measured on vLLM's own pool, not taken from the trace.
    assert stock_probe.surviving_positions == list(range(10))
    assert stock_probe.active_outcome == "finished"
    assert stock_probe.rerequest_hit_blocks == 10
    assert stock_probe.kv_batch_kinds[:2] == [{"BlockStored": 1},
                                              {"BlockRemoved": 50, "BlockStored": 1}]


def test_stock_probe_is_unreported_resident_loss(spec, stock_probe):
    rep = check_events(spec, stock_probe.events, "stock")
    assert rep.verdict == "violation"
    (claim,) = rep.claims
    assert claim.claim_id == CLAIM_ID
    assert claim.rules["R-no-silent-loss"] == "violation"
    assert claim.victims == 50
    assert claim.harmed_positions == tuple(range(10, 60))
    silent = [f for f in rep.findings if f.rule == "R-no-silent-loss"]
    assert "unreported resident loss" in silent[0].message
    active = next(r for r in rep.requests if r.request_id == "active")
    assert active.outcome == "served"


def test_stock_checker_state_after_active(spec, stock_probe):
    # Replay up to the end of the active request's step: positions 0-9 survive.
    events = stock_probe.events
    cut = next(i for i, e in enumerate(events)
               if e.kind == "active_request_admitted" and e.fields["request_id"] == "resident-again")
    rp = Replay(spec, "stock")
    for e in events[:cut]:
        rp.feed(e)
    snap = rp.snapshot()["claims"][CLAIM_ID]
    assert snap["leading"] == 10 and snap["surviving"] == 10 and snap["holds"] is False
    again = events[cut]
    assert again.fields["prefix_cache_hit_blocks"] == 10


def test_plugin_loaded_through_scheduler_cls(plugin_probe):
    h = plugin_probe.harness
    assert h.vllm_config.scheduler_config.scheduler_cls == PLUGIN_QUALNAME
    assert type(h.scheduler) is ClaimAwareScheduler
    assert isinstance(h.scheduler, Scheduler)


def test_plugin_probe_conformant_refusal(spec, plugin_probe):
    rep = check_events(spec, plugin_probe.events, "plugin")
    assert rep.verdict == "conformant", [f.message for f in rep.findings]
    (claim,) = rep.claims
    assert claim.victims == 0
    assert claim.rules["R-attribution"] == "pass"
    active = next(r for r in rep.requests if r.request_id == "active")
    assert active.outcome == "refused"
    assert active.blocking_claim_ids == (CLAIM_ID,)
    assert active.capacity_shortfall_blocks == 50
    assert active.free_blocks_before_allocate == 20
    assert active.feasibility == "infeasible_preserve_resident_and_active"
    assert plugin_probe.surviving_positions == list(range(60))
    assert plugin_probe.active_outcome == "refused"
    assert plugin_probe.rerequest_hit_blocks == 59  # vLLM's num_tokens-1 rule
    assert rep.cached_resident_victims == 0


def test_plugin_demotion_and_expiry(spec):
    from kvclaims.runtime.vllm.probe import run_probe

    r = run_probe(plugin=True, mode="demotable", on_conflict="demote", rerequest=False)
    rep = check_events(spec, r.events, "demote")
    assert rep.verdict == "conformant", [f.message for f in rep.findings]
    (claim,) = rep.claims
    assert claim.final_state == "demoted" and claim.lost_after_release == 50
    assert r.active_outcome == "finished" and r.surviving_positions == list(range(10))
    kinds = [e.kind for e in r.events]
    assert kinds.index("resident_claim_demoted") < kinds.index(
        "resident_claim_block_lost_after_release")
    r.harness.close()


def test_plugin_defer_then_expiry_admits(spec):
    from kvclaims.runtime.vllm.harness import ClaimDecl, VllmHarness
    from kvclaims.runtime.vllm.probe import ACTIVE_TOKENS, RESIDENT_TOKENS

    h = VllmHarness(claims=[ClaimDecl(CLAIM_ID, RESIDENT_TOKENS, mode="expiring",
                                      prefix_id="resident", on_conflict="defer",
                                      duration_steps=3)], plugin=True)
    h.add_request("resident", RESIDENT_TOKENS)
    h.step()
    h.add_request("active", ACTIVE_TOKENS)
    h.step()
    assert h.outcomes["active"] == "deferred"
    h.run_until_idle()
    assert h.outcomes["active"] == "finished"
    rep = check_events(spec, h.events, "expiry")
    assert rep.verdict == "conformant", [f.message for f in rep.findings]
    kinds = [e.kind for e in h.events]
    assert kinds.index("active_request_deferred") < kinds.index("resident_claim_expired")
    h.close()
