"""`kvclaims fuzz --runtime sglang[:plugin]`: the fuzzer against SGLang's real radix tree
(kvclaims.runtime.sglang.fuzz_adapter over kvclaims.fuzz.strategies.vllm_workloads).

Stock SGLang with a declared claim is found to lose it silently (R-no-silent-loss) — and, checked
against SGLang's own BlockRemoved events, every generated workload in which SGLang evicted a
claimed page is one the checker flags; the claim-aware tree survives every mode it offers."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from kvclaims.check.state import RuleIds
from kvclaims.fuzz import strategies as kst
from kvclaims.fuzz.driver import EXIT_USAGE, fuzz_command, search
from kvclaims.run import decide_trace
from kvclaims.runtime.interface import RuntimeUnavailable, drive, resolve
from kvclaims.runtime.sglang.fuzz_adapter import SglangAdapter, fuzz_runtime

SEED = 0


def _removed_claimed(adapter: SglangAdapter) -> int:
    """Pages of declared claims that SGLang itself reported evicted (its BlockRemoved events)."""
    h = adapter.last_harness
    claimed = {x for hs in h.claim_hashes.values() for x in hs}
    return sum(len(set(e.block_hashes) & claimed) for b in h.kv_batches for e in b.events
               if type(e).__name__ == "BlockRemoved")


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(wl=kst.vllm_workloads())
def test_stock_loss_is_found_exactly_when_sglang_evicts_a_claimed_page(spec, wl):
    a = fuzz_runtime("stock", mode="soft_priority")
    events = list(drive(a, wl))
    rep = decide_trace(spec, events)
    silent = any(f.rule == RuleIds(spec).silent for f in rep.findings)
    # Claims here are leading_prefix_at_least(required <= blocks): SGLang evicts whole nodes, so
    # a claimed page removed by SGLang is a broken predicate of a claim that was materialized.
    protected_removed = any(
        c.victims for c in rep.claims if c.mode == "soft_priority")
    assert silent == protected_removed
    assert (_removed_claimed(a) > 0) >= protected_removed


@pytest.mark.parametrize("runtime", [
    "sglang:plugin",
    "sglang:plugin,mode=hard_exclude",
    "sglang:plugin,mode=hard_exclude,on_conflict=defer",
    "sglang:plugin,mode=demotable,on_conflict=demote",
])
def test_plugin_survives_the_fuzzer(runtime):
    s = search(runtime, examples=30, seed=SEED)
    assert not s.failures, [(f.rule, f.message) for f in s.failures]


def test_stock_fuzz_finds_silent_loss_and_shrinks_it(tmp_path, spec):
    s = search("sglang", examples=30, seed=SEED, out=tmp_path, max_failures=1)
    rules = {f.rule for f in s.failures}
    assert RuleIds(spec).silent in rules
    f = next(f for f in s.failures if f.rule == RuleIds(spec).silent)
    assert len(f.workload.prefixes) == 1 and len(f.workload.requests) == 1
    assert f.rechecked


def test_runtime_names(tmp_path):
    assert resolve("sglang").name == "sglang"
    with pytest.raises(RuntimeUnavailable):
        resolve("sglang:bogus")
    with pytest.raises(RuntimeUnavailable):
        resolve("sglang:plugin,mode=nope")
    assert fuzz_command("sglang:nope", 1, 0, str(tmp_path)) == EXIT_USAGE
