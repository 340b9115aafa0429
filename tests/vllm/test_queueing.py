"""Requests queued behind claims on vLLM 0.33.0's real scheduler (docs/model.md §6 R-progress, R-yield;
issue 15 item 4; kvclaims.runtime.vllm.queueing).

Soft and best-effort claims give way (evicted by vLLM, best effort first, then lowest
`claim_priority`, harm before the predicate-breaking loss); a request that a hard claim blocks is
deferred within the declared bound and then refused, or unblocked by the claim's expiry; the
requests queued behind it are scheduled in the same step (no FCFS stall). Generated workloads
through the fuzz adapter check the same for every plug-in mode.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from kvclaims.check.replay import check_events
from kvclaims.check.state import RuleIds
from kvclaims.fuzz.strategies import vllm_workloads
from kvclaims.runtime.interface import drive, resolve
from kvclaims.runtime.vllm.queueing import first_scheduled, run_defer, run_yield
from kvclaims.runtime.vllm.scheduler_plugin import DEFAULT_DEFER_BOUND_STEPS

BOUND, STEP = "defer_bound_steps", "scheduler_step"
PLUGIN_KINDS = ("resident_claim_", "active_request_deferred", "active_request_refused")


def _violated(rep) -> set[str]:
    return {f.rule for f in rep.findings if f.status == "violation"}


def _claim_blocks(h, claim_id: str) -> set[int]:
    return {e.fields["physical_block_id"] for e in h.events
            if e.kind == "resident_block_materialized" and e.fields.get("claim_id") == claim_id}


@pytest.fixture(scope="module")
def yielded():
    h = run_yield()
    yield h
    h.close()


def test_soft_claims_give_way_best_effort_first_then_lowest_priority(spec, yielded) -> None:
    h = yielded
    # measured on vLLM's own prefix cache: c (best effort) and a (priority 0) evicted, b kept
    assert h.still_cached("claim:c") == [] and h.still_cached("claim:a") == []
    assert h.still_cached("claim:b") == [0, 1, 2, 3]
    blocks = {c: _claim_blocks(h, c) for c in ("claim:a", "claim:b", "claim:c")}
    victims = [e.fields["physical_block_id"] for e in h.events
               if e.kind == "allocation_victim_selected"
               and e.fields["victim_reason"] == "cached_prefix_reuse"]
    owners = [c for b in victims for c, bs in blocks.items() if b in bs][:6]
    assert owners == ["claim:c"] * 2 + ["claim:a"] * 4


def test_soft_harm_comes_just_before_the_loss_that_breaks_it(spec, yielded) -> None:
    ev = yielded.events
    harms = [i for i, e in enumerate(ev) if e.kind == "resident_claim_harmed"]
    assert [ev[i].fields["claim_id"] for i in harms] == ["claim:a"]  # best effort reports none
    (i,) = harms
    a_blocks = _claim_blocks(yielded, "claim:a")
    first_loss = next(j for j, e in enumerate(ev) if e.kind == "allocation_victim_selected"
                      and e.fields["physical_block_id"] in a_blocks
                      and e.fields["victim_reason"] == "cached_prefix_reuse")
    assert first_loss == i + 1
    assert ev[first_loss].fields["physical_block_id"] == ev[i].fields["physical_block_id"]
    assert ev[i].fields["claim_priority"] == 0


def test_queued_requests_run_without_a_stall_and_nothing_is_refused(spec, yielded) -> None:
    h = yielded
    assert not any(e.kind in ("active_request_deferred", "active_request_refused")
                   for e in h.events)
    steps = first_scheduled(h)
    assert steps["r1"] == steps["r2"] and steps["r3"] == steps["r1"] + 1
    assert {h.outcomes[r] for r in ("r1", "r2", "r3")} == {"finished"}
    rep = check_events(spec, h.events, "yield")
    assert rep.verdict == "conformant", [(f.rule, f.message) for f in rep.findings]


@pytest.mark.parametrize("bound", [0, 1, 2, 3])
def test_hard_claim_defers_within_the_bound_then_refuses(spec, bound: int) -> None:
    h = run_defer(defer_bound_steps=bound)
    try:
        ev = h.events
        assert ev[0].fields[BOUND] == bound
        assert [i for i, e in enumerate(ev) if BOUND in e.fields] == [0]
        assert all(STEP in e.fields for e in ev if e.kind.startswith(PLUGIN_KINDS))
        (deferral,) = [e for e in ev if e.kind == "active_request_deferred"]
        (refusal,) = [e for e in ev if e.kind == "active_request_refused"]
        assert deferral.fields["request_id"] == refusal.fields["request_id"] == "r1"
        assert refusal.fields[STEP] - deferral.fields[STEP] == bound
        assert refusal.fields["defer_attempts"] == bound
        assert refusal.fields["blocking_claim_ids"] == ["claim:h"]
        assert refusal.fields["protected_resident_blocks"] == 10
        steps = first_scheduled(h)
        assert steps["r2"] == steps["r3"] == deferral.fields[STEP]  # the queue behind it ran
        assert h.outcomes["r1"] == "refused" and h.outcomes["r2"] == h.outcomes["r3"] == "finished"
        assert h.still_cached("claim:h") == list(range(10))
        rep = check_events(spec, ev, f"defer-{bound}")
        assert rep.verdict == "conformant", [(f.rule, f.message) for f in rep.findings]
    finally:
        h.close()


def test_default_bound_is_declared(spec) -> None:
    h = run_defer()
    try:
        assert h.events[0].fields[BOUND] == DEFAULT_DEFER_BOUND_STEPS
    finally:
        h.close()


def test_expiry_unblocks_the_deferred_request(spec) -> None:
    h = run_defer(duration_steps=2)
    try:
        kinds = [(e.kind, e.fields.get("request_id") or e.fields.get("claim_id"))
                 for e in h.events if e.kind in ("active_request_deferred", "resident_claim_expired",
                                                 "active_request_admitted")]
        i = kinds.index(("active_request_deferred", "r1"))
        assert kinds[i + 1:].index(("resident_claim_expired", "claim:h")) < \
            kinds[i + 1:].index(("active_request_admitted", "r1"))
        assert not any(e.kind == "active_request_refused" for e in h.events)
        assert h.outcomes["r1"] == "finished"
        rep = check_events(spec, h.events, "expiry")
        assert rep.verdict == "conformant", [(f.rule, f.message) for f in rep.findings]
    finally:
        h.close()


def test_refusal_lets_the_queue_behind_run_in_the_same_step(spec) -> None:
    h = run_defer(on_conflict="refuse")
    try:
        (refusal,) = [e for e in h.events if e.kind == "active_request_refused"]
        assert "defer_attempts" not in refusal.fields
        steps = first_scheduled(h)
        assert steps["r2"] == steps["r3"] == refusal.fields[STEP]
        assert check_events(spec, h.events, "refuse").verdict == "conformant"
    finally:
        h.close()


def test_defer_forever_control_is_an_unbounded_deferral(spec) -> None:
    """Waits for the checker's R-progress (lead's merge)."""
    h = run_defer(defer_forever=True)
    try:
        steps = [e.fields[STEP] for e in h.events if e.kind == "active_request_deferred"]
        assert steps[-1] - steps[0] > DEFAULT_DEFER_BOUND_STEPS
        assert h.outcomes["r1"] == "deferred"
        assert first_scheduled(h)["r2"] == steps[0]
        rep = check_events(spec, h.events, "forever")
        assert _violated(rep) == {RuleIds(spec).progress}, [(f.rule, f.message)
                                                            for f in rep.findings]
    finally:
        h.close()


# ---- generated workloads, every plug-in mode ---------------------------------------------------
RUNTIMES = ["vllm:plugin", "vllm:plugin,mode=none", "vllm:plugin,mode=hard_exclude",
            "vllm:plugin,mode=hard_exclude,on_conflict=defer",
            "vllm:plugin,mode=demotable,on_conflict=demote"]


@pytest.mark.parametrize("runtime", RUNTIMES)
@settings(max_examples=25, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(wl=vllm_workloads(max_prefixes=1))
def test_generated_queues_progress_and_never_block_on_soft_claims(spec, runtime, wl) -> None:
    adapter = resolve(runtime).factory()
    events = list(drive(adapter, wl))
    # nothing is left waiting behind claims: every request ran or was refused
    left = {r: o for r, o in adapter.last_harness.outcomes.items()
            if o in ("waiting", "deferred")}
    assert not left, left
    modes = {e.fields["claim_id"]: e.fields["protection_mode"] for e in events
             if e.kind == "resident_claim_accepted"}
    bound = events[0].fields.get(BOUND) if events else None
    opened: dict[str, int] = {}
    decided: set[str] = set()
    for e in events:
        f = e.fields
        if e.kind in ("active_request_deferred", "active_request_refused"):
            assert all(modes[c] in ("hard_exclude", "demotable") for c in f["blocking_claim_ids"])
        if e.kind == "active_request_deferred":
            opened.setdefault(f["request_id"], f[STEP])
        if e.kind in ("active_request_refused", "active_request_admitted") \
                and f["request_id"] in opened:
            if STEP in f:
                assert f[STEP] - opened[f["request_id"]] <= bound
            decided.add(f["request_id"])
        if e.kind in ("resident_claim_expired", "resident_claim_demoted"):
            decided.update(opened)
    assert set(opened) <= decided, (opened, decided)
    rep = check_events(spec, events, runtime)
    assert rep.verdict == "conformant", [(f.rule, f.message) for f in rep.findings]


def test_soft_claims_that_never_give_way_stall_the_queue_and_are_not_conformant(spec) -> None:
    """The control `no_give_way` (the plug-in as it was before R-yield): vLLM's waiting loop stops
    at r1 and the whole queue behind it waits, with no event; the harness's arrival events let the
    checker see the unreported deferral: never conformant (R-progress unknown: open at the end)."""
    h = run_yield(no_give_way=True)
    try:
        assert {h.outcomes[r] for r in ("r1", "r2", "r3")} == {"waiting"}
        assert not any(e.kind in ("active_request_deferred", "active_request_refused",
                                  "resident_claim_harmed") for e in h.events)
        rep = check_events(spec, h.events, "stall")
        assert rep.verdict == "inconclusive", [(f.rule, f.message) for f in rep.findings]
        progress = [f for f in rep.findings if f.rule == RuleIds(spec).progress]
        assert progress and {f.status for f in progress} == {"unknown"}
        assert {f.request_id for f in progress} == {"r1"}
    finally:
        h.close()


def test_every_request_arrival_is_written(spec, yielded) -> None:
    arrivals = [e.fields for e in yielded.events if e.kind == "request_initialized"]
    assert [a["request_id"] for a in arrivals] == ["a", "b", "c", "r1", "r2", "r3"]
    assert [a["active_live_blocks_required"] for a in arrivals] == [4, 4, 2, 10, 2, 3]
    # r1..r3 arrive for the step whose schedule() first sees them (vLLM's engine loop)
    assert [a[STEP] for a in arrivals[3:]] == [4, 4, 4]
