"""The claim-aware SGLang tree on SGLang's real code, over generated workloads (docs/model.md §6:
R-hard, R-attribution, R-yield, R-progress, R-expiry), against stock SGLang on the same ones."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims.check.state import EventNames, RuleIds
from kvclaims.run import decide_trace
from kvclaims.runtime.sglang.harness import PAGE_SIZE, SglangHarness, SglClaim, page_hashes

SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def tokens(base: int, pages: int) -> tuple[int, ...]:
    return tuple(base + k for k in range(pages * PAGE_SIZE))


def run(plugin: bool, usable: int, claimed: int, active: int, mode: str = "hard_exclude",
        on_conflict: str = "refuse", **kw):
    claim = SglClaim("claim:c", tokens(1000, claimed), mode=mode, prefix_id="c",
                     on_conflict=on_conflict, **kw)
    h = SglangHarness(claims=[claim], plugin=plugin, num_pages=usable)
    h.add_request("owner", claim.tokens)
    h.run_until_idle()
    h.add_request("active", tokens(900_000, active))
    h.run_until_idle(max_steps=8)
    return h


def test_page_hashes_are_sglangs_own():
    # The hashes the harness binds claims with are the ones SGLang's tree publishes.
    h = SglangHarness(num_pages=8)
    t = tokens(7, 3)
    h.add_request("r", t)
    h.step()
    stored = [x for b in h.kv_batches for e in b.events if type(e).__name__ == "BlockStored"
              for x in e.block_hashes]
    assert stored == page_hashes(t) and len(stored) == 3
    assert page_hashes(t, cache_salt="tenant-a") != page_hashes(t)  # the salt is in the hash


@SETTINGS
@given(usable=st.integers(2, 12), data=st.data())
def test_stock_loses_a_protected_prefix_silently_whenever_it_must(spec, usable, data):
    claimed = data.draw(st.integers(1, usable - 1))
    active = data.draw(st.integers(1, usable))
    h = run(False, usable, claimed, active, mode="soft_priority")
    rep = decide_trace(spec, h.events)
    silent = any(f.rule == RuleIds(spec).silent for f in rep.findings)
    # SGLang evicts whole leaves: the claim is lost exactly when the pool cannot hold both.
    assert silent == (claimed + active > usable)
    assert rep.claims[0].victims == (claimed if claimed + active > usable else 0)


@SETTINGS
@given(usable=st.integers(2, 12), data=st.data(),
       on_conflict=st.sampled_from(["refuse", "defer"]))
def test_plugin_protects_hard_claims_with_attributed_refusal(spec, usable, data, on_conflict):
    claimed = data.draw(st.integers(1, usable - 1))
    active = data.draw(st.integers(1, usable))
    h = run(True, usable, claimed, active, on_conflict=on_conflict)
    rep = decide_trace(spec, h.events)
    assert rep.verdict == "conformant", [f.message for f in rep.findings]
    assert rep.claims[0].victims == 0
    assert h.still_cached("claim:c") == list(range(claimed))
    E = EventNames(spec)
    refusals = [e for e in h.events if e.kind == E.refused]
    if claimed + active > usable:
        assert h.outcomes["active"] == "refused" and len(refusals) == 1
        f = refusals[0].fields
        assert f["blocking_claim_ids"] == ["claim:c"]
        assert f["free_blocks_before_allocate"] == usable - claimed
        assert f["capacity_shortfall_blocks"] == active - (usable - claimed)
        if on_conflict == "defer":
            assert f["defer_attempts"] == h.tree.kvclaims_defer_bound  # bounded (R-progress)
    else:
        assert h.outcomes["active"] == "finished" and not refusals


@SETTINGS
@given(usable=st.integers(3, 12), data=st.data())
def test_soft_claims_give_way_lowest_priority_first_with_harm(spec, usable, data):
    a = data.draw(st.integers(1, (usable - 1) // 2))
    b = data.draw(st.integers(1, usable - 1 - a))
    active = data.draw(st.integers(1, usable))
    claims = [SglClaim("claim:lo", tokens(1000, a), mode="soft_priority", priority=1),
              SglClaim("claim:hi", tokens(500_000, b), mode="soft_priority", priority=5)]
    h = SglangHarness(claims=claims, plugin=True, num_pages=usable)
    for c in claims:
        h.add_request(c.claim_id, c.tokens)
        h.run_until_idle()
    h.add_request("active", tokens(900_000, active))
    h.run_until_idle(max_steps=8)
    rep = decide_trace(spec, h.events)
    assert rep.verdict == "conformant", [f.message for f in rep.findings]
    assert h.outcomes["active"] == "finished"  # soft claims never block (R-yield)
    E = EventNames(spec)
    harmed = [e.fields["claim_id"] for e in h.events if e.kind == E.harmed]
    free = usable - a - b
    if active <= free:
        assert harmed == []
    elif active <= free + a:
        assert harmed == ["claim:lo"]  # the lower priority gives way alone
    else:
        assert harmed == ["claim:lo", "claim:hi"]


def test_expiry_is_announced_before_the_loss(spec):
    h = run(True, 4, 3, 3, duration_steps=1)
    rep = decide_trace(spec, h.events)
    assert rep.verdict == "conformant", [f.message for f in rep.findings]
    E = EventNames(spec)
    kinds = [e.kind for e in h.events]
    assert E.expired in kinds and E.refused not in kinds
    assert kinds.index(E.expired) < max(i for i, e in enumerate(h.events)
                                        if e.kind == E.victim and e.fields.get("block_hash"))
    assert h.outcomes["active"] == "finished"


def test_abort_of_a_running_request_caches_its_prompt():
    h = SglangHarness(num_pages=8)
    t = tokens(3, 2)
    h.add_request("r", t, max_tokens=3)
    h.step()
    h.abort("r")
    assert h.outcomes["r"] == "aborted"
    assert h.served_pages(t) == 2  # SGLang keeps what the aborted request computed
    assert h.allocator.available_size() // PAGE_SIZE == 6
