"""The MicroRuntime honours R-progress and R-yield (docs/model.md §6; issue 15 item 4).

Generated workloads, every policy: a policy that may defer declares its bound on the trace's first
event and decides every deferred request within it; refusals and deferrals name only claims whose
mode protects, and only when the protecting claims alone leave no room (H + R > usable); soft
claims give way lowest `claim_priority` first. The fault `defer_forever` (R-progress) keeps
deferring past the declared bound and never decides; `over_protection` (R-yield) refuses instead
of letting soft claims give way: the checker must catch both whenever they fire.
"""

from __future__ import annotations

import os
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.check.replay import check_events
from kvclaims.check.state import RuleIds
from kvclaims.check.verdict import CONFORMANT, INCONCLUSIVE, UNKNOWN, VIOLATION
from kvclaims.fuzz.strategies import pressured_workloads, workloads
from kvclaims.runtime import policies as P
from kvclaims.runtime.micro import DEFERRED_OUTCOME, run
from kvclaims.runtime.vocabulary import NAMES as N
from kvclaims.runtime.workload import ClaimSpec, PrefixSpec, RequestSpec, Workload
from kvclaims.trace.model import Event

SPEC = spec_mod.load()
R = RuleIds(SPEC)
THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
SETTINGS = settings(max_examples=300 if THOROUGH else 60, deadline=None,
                    derandomize=not THOROUGH, suppress_health_check=[HealthCheck.too_slow])
BOUND = "defer_bound_steps"

deferring = st.builds(P.Policy, st.sampled_from(sorted(P.DEFERRING)), st.integers(0, 3),
                      st.sampled_from((None, 0, 2)))
any_policy = st.one_of(st.sampled_from([P.Policy(n) for n in P.POLICIES]), deferring)


def _protects(spelling: str) -> bool:
    mode = SPEC.canonical_mode(spelling)
    return mode is not None and SPEC.modes[mode].protects


def _violated(report) -> set[str]:
    return {f.rule for f in report.findings if f.status == VIOLATION}


@SETTINGS
@given(policy=any_policy, wl=workloads(max_usable=32))
def test_bound_is_declared_once_on_the_first_event(policy: P.Policy, wl: Workload) -> None:
    events = run(wl, policy).events
    declared = [i for i, e in enumerate(events) if BOUND in e.fields]
    if policy.name in P.DEFERRING and events:
        assert declared == [0] and events[0].fields[BOUND] == policy.defer_attempts
    else:
        assert declared == []


@SETTINGS
@given(policy=any_policy, wl=workloads(max_usable=32))
def test_every_deferral_is_decided_within_the_bound(policy: P.Policy, wl: Workload) -> None:
    result = run(wl, policy)
    deferrals: dict[str, int] = {}
    for e in result.events:
        if e.kind == N.deferred:
            deferrals[e.fields["request_id"]] = deferrals.get(e.fields["request_id"], 0) + 1
    for rid, n in deferrals.items():
        assert n <= policy.defer_attempts, (rid, n)
        assert result.outcomes[rid] != DEFERRED_OUTCOME
    assert DEFERRED_OUTCOME not in result.outcomes.values()


@SETTINGS
@given(policy=any_policy, wl=workloads(max_usable=32))
def test_only_protecting_claims_block_and_only_when_they_alone_leave_no_room(
        policy: P.Policy, wl: Workload) -> None:
    accepted: dict[str, str] = {}
    for e in run(wl, policy).events:
        if e.kind == N.accepted:
            accepted[e.fields["claim_id"]] = e.fields["protection_mode"]
        if e.kind in (N.deferred, N.refused) and e.fields.get("feasibility") == N.infeasible:
            named = e.fields["blocking_claim_ids"]
            assert named and all(_protects(accepted[c]) for c in named), (named, accepted)
            assert (e.fields["protected_resident_blocks"] + e.fields["active_live_blocks_required"]
                    > e.fields["usable_blocks"])
    if policy.name in (P.SOFT_PRIORITY, P.NATIVE, P.WRITE_NO_ADMIT):
        assert not any(e.kind in (N.deferred, N.refused) for e in run(wl, policy).events
                       if e.fields.get("feasibility") == N.infeasible)


@st.composite
def soft_workloads(draw: st.DrawFn) -> Workload:
    """Two to four soft claims with priorities and requests that must evict some of them."""
    n = draw(st.integers(2, 4))
    sizes = [draw(st.integers(1, 4)) for _ in range(n)]
    usable = sum(sizes) + draw(st.integers(0, 3))
    prefixes = tuple(
        PrefixSpec(f"p{i}", b, ClaimSpec(f"claim:p{i}", draw(st.integers(1, b)),
                                         predicted_value=float(draw(st.integers(1, 3))),
                                         priority=draw(st.integers(0, 3))))
        for i, b in enumerate(sizes))
    reqs = tuple(RequestSpec(f"r{j}", (draw(st.integers(1, usable)),))
                 for j in range(draw(st.integers(1, 3))))
    return Workload(usable, prefixes, reqs)


@SETTINGS
@given(wl=soft_workloads(), free_order=st.sampled_from(P.FREE_ORDERS))
def test_soft_claims_give_way_lowest_priority_first(wl: Workload, free_order: str) -> None:
    policy = P.Policy(P.SOFT_PRIORITY, free_order=free_order)
    result = run(wl, policy)
    prio = {p.claim.claim_id: p.claim.priority for p in wl.prefixes if p.claim is not None}
    owner: dict[int, str] = {}
    surviving: dict[str, int] = {c: 0 for c in prio}
    for e in result.events:
        f = e.fields
        if e.kind == N.accepted:
            assert f["claim_priority"] == prio[f["claim_id"]]
        if e.kind == N.block_materialized and f.get("claim_id") in prio:
            owner[f["physical_block_id"]] = f["claim_id"]
            surviving[f["claim_id"]] += 1
        if e.kind == N.victim and f["physical_block_id"] in owner:
            cid = owner.pop(f["physical_block_id"])
            lower = [c for c, n in surviving.items() if n and prio[c] < prio[cid]]
            assert not lower, f"{cid} (priority {prio[cid]}) lost a block while {lower} held some"
            surviving[cid] -= 1
    report = check_events(SPEC, result.events, "soft")
    assert report.verdict == CONFORMANT, [(f.rule, f.message) for f in report.findings]


# ---- the faults ------------------------------------------------------------------------------
def _deferrals_past_bound(events: tuple[Event, ...], bound: int) -> bool:
    count: dict[str, int] = {}
    for e in events:
        if e.kind == N.deferred:
            rid = e.fields["request_id"]
            count[rid] = count.get(rid, 0) + 1
    return any(n - 1 > bound for n in count.values())


@SETTINGS
@given(policy=deferring, wl=pressured_workloads())
def test_defer_forever_is_caught(policy: P.Policy, wl: Workload) -> None:
    """Waits for the checker's R-progress (lead's merge): a deferral past the declared bound is a
    violation of R-progress; with the bound removed from the trace, the open deferral is unknown."""
    result = run(wl, policy, [P.DEFER_FOREVER])
    if P.DEFER_FOREVER not in result.fired:
        assert check_events(SPEC, result.events, "clean").verdict == CONFORMANT
        return
    assert DEFERRED_OUTCOME in result.outcomes.values()
    assert _deferrals_past_bound(result.events, policy.defer_attempts)
    report = check_events(SPEC, result.events, "defer_forever")
    assert _violated(report) == {R.progress}, [(f.rule, f.message) for f in report.findings]
    unbounded = [Event(e.kind, {k: v for k, v in e.fields.items() if k != BOUND}, line=e.line)
                 for e in result.events]
    report = check_events(SPEC, unbounded, "defer_forever-no-bound")
    assert report.verdict == INCONCLUSIVE, [(f.rule, f.message) for f in report.findings]
    assert any(f.rule == R.progress and f.status == UNKNOWN for f in report.findings)


def test_defer_forever_with_a_declared_bound_of_two_is_a_violation() -> None:
    wl = Workload(80, (PrefixSpec("resident", 60, ClaimSpec("claim:resident", 60)),),
                  (RequestSpec("active", (70,)), RequestSpec("next", (10,))))
    policy = P.Policy(P.HARD_EXCLUDE, defer_attempts=2)
    clean = run(wl, policy)
    assert clean.outcomes == {"active": "refused", "next": "served"}
    result = run(wl, policy, [P.DEFER_FOREVER])
    assert result.fired == {P.DEFER_FOREVER}
    # deferred 4 times (elapsed 3 > bound 2), never decided; the request behind it is served
    assert [e.kind for e in result.events].count(N.deferred) == 4
    assert result.outcomes == {"active": DEFERRED_OUTCOME, "next": "served"}
    assert result.events[0].fields[BOUND] == 2
    assert _violated(check_events(SPEC, result.events, "forever")) == {R.progress}


def test_over_protection_names_soft_claims_and_is_caught() -> None:
    wl = Workload(12, (PrefixSpec("p0", 4, ClaimSpec("claim:p0", 4, priority=1)),
                       PrefixSpec("p1", 4, ClaimSpec("claim:p1", 4, priority=0))),
                  (RequestSpec("r0", (8,)),))
    clean = run(wl, P.SOFT_PRIORITY)
    harmed = [e.fields["claim_id"] for e in clean.events if e.kind == N.harmed]
    assert harmed == ["claim:p1"]  # the lower priority gives way (4 free + p1's 4 = 8)
    assert check_events(SPEC, clean.events, "clean").verdict == CONFORMANT
    result = run(wl, P.SOFT_PRIORITY, [P.OVER_PROTECTION])
    assert result.fired == {P.OVER_PROTECTION}
    (refusal,) = [e for e in result.events if e.kind == N.refused]
    assert refusal.fields["blocking_claim_ids"] == ["claim:p0", "claim:p1"]
    assert R.yield_ in _violated(check_events(SPEC, result.events, "over"))


def test_bound_of_a_policy_that_never_defers_is_not_declared() -> None:
    wl = Workload(4, (PrefixSpec("p0", 2, ClaimSpec("claim:p0", 2)),), (RequestSpec("r", (3,)),))
    for name in (P.DEMOTE_ON_CONFLICT, P.SOFT_PRIORITY, P.NATIVE, P.OFFLOADABLE):
        assert all(BOUND not in e.fields for e in run(wl, name).events)
    assert run(wl, replace(P.Policy(P.HARD_EXCLUDE), defer_attempts=1)).events[0].fields[BOUND] == 1
