"""The 60/70/80 probe on SGLang 0.5.23's real RadixCache + allocator + KV pool (docs/model.md §8)."""

from __future__ import annotations

import sglang
from sglang.srt.mem_cache.allocator.paged import PagedTokenToKVPoolAllocator
from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, ReqToTokenPool
from sglang.srt.mem_cache.radix_cache import RadixCache

from kvclaims.check.state import EventNames, RuleIds
from kvclaims.run import decide_trace
from kvclaims.runtime.sglang import SGLANG_VERSION
from kvclaims.runtime.sglang.plugin import ClaimAwareRadixCache
from kvclaims.runtime.sglang.probe import CLAIM_ID, RESIDENT_PAGES, probe_facts, run_probe


def test_sglang_version():
    assert sglang.__version__ == SGLANG_VERSION


def test_stock_is_sglangs_own_code(stock_probe):
    h = stock_probe.harness
    assert type(h.tree) is RadixCache
    assert type(h.allocator) is PagedTokenToKVPoolAllocator
    assert type(h.kv_pool) is MHATokenToKVPool
    assert type(h.req_to_token) is ReqToTokenPool
    assert h.tree.token_to_kv_pool_allocator is h.allocator


def test_plugin_is_a_radix_cache_subclass(plugin_probe):
    tree = plugin_probe.harness.tree
    assert type(tree) is ClaimAwareRadixCache and isinstance(tree, RadixCache)
    # No SGLang method is replaced on the class: evict, the locks and match are SGLang's own.
    for name in ("evict", "inc_lock_ref", "dec_lock_ref", "match_prefix", "_insert_helper"):
        assert getattr(ClaimAwareRadixCache, name) is getattr(RadixCache, name)


def test_stock_probe_numbers_from_sglang(stock_probe):
    # Measured on SGLang's own tree: the whole 60-page leaf goes at once, nothing survives.
    assert stock_probe.surviving_positions == []
    assert stock_probe.active_outcome == "finished"
    assert stock_probe.rerequest_hit_blocks == 0
    # One BlockRemoved with all 60 hashes for the resident node, then the active's 70 pages.
    assert stock_probe.removed_batch_sizes == [RESIDENT_PAGES, 70]


def test_stock_probe_is_unreported_resident_loss(spec, stock_probe):
    rep = decide_trace(spec, stock_probe.events, file="stock")
    R = RuleIds(spec)
    assert rep.verdict == "violation"
    (claim,) = rep.claims
    assert claim.claim_id == CLAIM_ID and claim.victims == RESIDENT_PAGES
    violated = {f.rule for f in rep.findings if f.status == "violation"}
    assert R.silent in violated and R.hard in violated


def test_plugin_probe_conformant(spec, plugin_probe):
    rep = decide_trace(spec, plugin_probe.events, file="plugin")
    assert rep.verdict == "conformant", [f.message for f in rep.findings]
    (claim,) = rep.claims
    assert claim.victims == 0
    assert plugin_probe.surviving_positions == list(range(RESIDENT_PAGES))
    assert plugin_probe.active_outcome == "refused"
    assert plugin_probe.rerequest_hit_blocks == RESIDENT_PAGES - 1  # Req matches len - 1 tokens


def test_probe_facts_consistent_with_the_pool():
    stock = probe_facts(False)
    assert (stock.runtime, stock.verdict, stock.victims, stock.rerequest_hit_blocks) == (
        "sglang", "violation", RESIDENT_PAGES, 0)
    assert stock.surviving_positions == () and stock.shortfall_blocks is None
    plug = probe_facts(True)
    assert (plug.verdict, plug.victims) == ("conformant", 0)
    # The pool is 80 pages: 60 held by the claim, the rest free; the active needs 70.
    assert plug.free_blocks == 80 - RESIDENT_PAGES
    assert plug.shortfall_blocks == 70 - plug.free_blocks
    assert plug.runtime_version == SGLANG_VERSION


def test_demotable_claim_demoted_then_evicted(spec):
    r = run_probe(True, mode="demotable", on_conflict="demote")
    try:
        rep = decide_trace(spec, r.events, file="demote")
        assert rep.verdict == "conformant", [f.message for f in rep.findings]
        assert rep.claims[0].final_state == "demoted"
        assert r.active_outcome == "finished" and r.surviving_positions == []
        E = EventNames(spec)
        kinds = [e.kind for e in r.events]
        demoted = kinds.index(E.demoted)
        first_loss = next(i for i, e in enumerate(r.events) if e.kind == E.victim
                          and e.fields.get("victim_reason") == spec.values["cached_victim_reason"])
        assert demoted < first_loss  # announced before any page can be lost
    finally:
        r.harness.close()
