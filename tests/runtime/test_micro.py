"""MicroRuntime unit tests: litmus numbers, live-KV model, policies and each fault firing
(docs/model.md §2, §8; papers P1.5, P1.9)."""

from __future__ import annotations

import pytest

from kvclaims import spec as spec_mod
from kvclaims.check.replay import check_events
from kvclaims.check.verdict import CONFORMANT, VIOLATION
from kvclaims.runtime import policies as P
from kvclaims.runtime.micro import run
from kvclaims.runtime.workload import (
    RECOMPUTE,
    SLIDING_WINDOW,
    ClaimSpec,
    PrefixSpec,
    RequestSpec,
    Workload,
    sixty_seventy_eighty,
)

SPEC = spec_mod.load()
CLAIM = ClaimSpec("claim:resident", 60)


def _check(result):
    return check_events(SPEC, result.events, "micro")


def _violated(report):
    return {f.rule for f in report.findings if f.status == VIOLATION}


def test_live_kv_model() -> None:
    full = RequestSpec("a", (20, 20, 20, 10))
    assert full.live_by_step() == (20, 40, 60, 70) and full.max_live == 70
    assert RequestSpec("a", (20, 20, 20, 10), SLIDING_WINDOW, 30).live_by_step() == (
        20, 30, 30, 30)
    assert RequestSpec("a", (20, 20, 20, 10), RECOMPUTE).max_live == 20


def test_chunking_does_not_bound_live_kv_under_full_attention() -> None:
    chunked = _check(run(sixty_seventy_eighty(claim=CLAIM, chunks=(20, 20, 20, 10)),
                         P.HARD_EXCLUDE))
    assert chunked.requests[-1].outcome == "refused"
    recompute = Workload(80, (PrefixSpec("resident", 60, CLAIM),),
                         (RequestSpec("active", (20, 20, 20, 10), RECOMPUTE),))
    report = _check(run(recompute, P.HARD_EXCLUDE))
    assert report.verdict == CONFORMANT and report.requests[-1].outcome == "served"
    assert report.cached_resident_victims == 0


def test_native_free_queue_keeps_positions_0_to_9() -> None:
    report = _check(run(sixty_seventy_eighty(), P.NATIVE))
    (prefix,) = report.prefixes
    assert prefix.lost_positions == tuple(range(10, 60))
    assert report.cached_resident_victims == 50


def test_deferral_is_bounded_then_refused_with_attempts() -> None:
    result = run(sixty_seventy_eighty(claim=CLAIM), P.Policy(P.HARD_EXCLUDE, defer_attempts=2))
    kinds = [e.kind for e in result.events[-3:]]
    assert kinds == ["active_request_deferred"] * 2 + ["active_request_refused"]
    assert result.events[-1].fields["defer_attempts"] == 2
    assert _check(result).verdict == CONFORMANT


def test_deferral_until_expiry_serves() -> None:
    wl = sixty_seventy_eighty(claim=ClaimSpec("claim:resident", 60, duration_steps=2))
    result = run(wl, P.Policy(P.EXPIRING, defer_attempts=3))
    assert result.outcomes["active"] == "served"
    report = _check(result)
    assert report.verdict == CONFORMANT
    assert [r.outcome for r in report.requests if r.request_id == "active"] == ["deferred"]


def test_resident_reserve_rejects_claims_beyond_the_reserve() -> None:
    wl = sixty_seventy_eighty(claim=CLAIM)
    result = run(wl, P.RESIDENT_RESERVE)  # reserve 70 for the active request: 60 cannot fit
    kinds = [e.kind for e in result.events]
    assert "resident_claim_rejected" in kinds and "resident_claim_accepted" not in kinds
    assert result.outcomes["active"] == "served"
    assert _check(result).verdict == CONFORMANT


def test_offload_restore_success_and_failure_outcomes() -> None:
    def wl(fails: bool, outcome: str = "refusal") -> Workload:
        return Workload(20, (PrefixSpec("p0", 15, ClaimSpec("claim:p0", 15, restore_fails=fails,
                                                            failure_outcome=outcome)),),
                        (RequestSpec("r0", (10,)), RequestSpec("r1", (1,), reuses="p0")))
    ok = run(wl(False), P.OFFLOADABLE)
    kinds = [e.kind for e in ok.events if e.kind.startswith("resident_claim")]
    assert kinds[-4:] == ["resident_claim_offloaded", "resident_claim_restore_required",
                          "resident_claim_restored", "resident_claim_reuse_after_restore"]
    assert _check(ok).verdict == CONFORMANT
    for outcome in SPEC.offload_outcome_events:
        failed = run(wl(True, outcome), P.OFFLOADABLE)
        report = _check(failed)
        assert report.verdict == CONFORMANT, (outcome, report.findings)
        answer = SPEC.offload_outcome_events[outcome]
        i = [e.kind for e in failed.events].index("resident_claim_restoration_failed")
        assert failed.events[i + 1].kind == answer


def _offload(fails: bool) -> Workload:
    return Workload(30, (PrefixSpec("p0", 15, ClaimSpec("claim:p0", 15, restore_fails=fails)),
                         PrefixSpec("p1", 5, ClaimSpec("claim:p1", 5))),
                    (RequestSpec("r0", (20,)), RequestSpec("r1", (1,), reuses="p0")))


# One workload per fault on which it fires, with the rule the checker reports.
FIRING = {
    P.SILENT_LOSS: (P.SOFT_PRIORITY, sixty_seventy_eighty(claim=CLAIM)),
    P.HARM_TWICE: (P.SOFT_PRIORITY, sixty_seventy_eighty(claim=CLAIM)),
    P.HARM_WITHOUT_BREAK: (P.SOFT_PRIORITY, Workload(
        10, (PrefixSpec("p0", 10, ClaimSpec("claim:p0", 5)),), (RequestSpec("r0", (3,)),))),
    P.SMEARED_ATTRIBUTION: (P.EXPIRING, Workload(
        40, (PrefixSpec("p0", 10, ClaimSpec("claim:p0", 10, duration_steps=1)),
             PrefixSpec("p1", 20, ClaimSpec("claim:p1", 20))), (RequestSpec("r0", (25,)),))),
    P.WRONG_SHORTFALL: (P.HARD_EXCLUDE, sixty_seventy_eighty(claim=CLAIM)),
    P.WRONG_FREE: (P.HARD_EXCLUDE, sixty_seventy_eighty(claim=CLAIM)),
    P.POST_HOC_ACCEPTANCE: (P.HARD_EXCLUDE, sixty_seventy_eighty(claim=CLAIM)),
    P.EXPIRY_AFTER_LOSS: (P.EXPIRING, sixty_seventy_eighty(
        claim=ClaimSpec("claim:resident", 60, duration_steps=1))),
    P.RESTORE_FROM_RECOMPUTE: (P.OFFLOADABLE, _offload(False)),
    P.WRONG_CLAIM_OUTCOME: (P.OFFLOADABLE, _offload(True)),
    P.DEFER_FOREVER: (P.HARD_EXCLUDE, sixty_seventy_eighty(claim=CLAIM)),
    P.OVER_PROTECTION: (P.SOFT_PRIORITY, sixty_seventy_eighty(claim=CLAIM)),
}


def test_every_fault_has_a_firing_workload() -> None:
    assert set(FIRING) == set(P.FAULTS)


@pytest.mark.parametrize("fault", sorted(FIRING))
def test_fault_fires_and_is_a_violation_of_its_rule(fault: str) -> None:
    policy, wl = FIRING[fault]
    clean = run(wl, policy)
    assert _check(clean).verdict == CONFORMANT and not clean.fired
    result = run(wl, policy, [fault])
    assert fault in result.fired
    violated = _violated(_check(result))
    assert P.FAULTS[fault].rule in violated and violated <= P.FAULTS[fault].rules


def test_runs_are_deterministic() -> None:
    wl = sixty_seventy_eighty(claim=CLAIM)
    assert run(wl, P.SOFT_PRIORITY).events == run(wl, P.SOFT_PRIORITY).events


def test_bad_workloads_and_policies_are_rejected() -> None:
    with pytest.raises(ValueError):
        run(Workload(10, (PrefixSpec("p", 11),), ()), P.NATIVE)
    with pytest.raises(ValueError):
        run(Workload(10, (), (RequestSpec("r", (11,)),)), P.NATIVE)
    with pytest.raises(ValueError):
        P.Policy("lru")
    with pytest.raises(ValueError):
        run(sixty_seventy_eighty(), P.NATIVE, ["typo"])


def test_jsonl_and_kvt_writers_round_trip_the_same_verdict() -> None:
    import io

    from kvclaims.trace.dsl import read_kvt
    from kvclaims.trace.jsonl import read_jsonl
    from kvclaims.trace.write import write_jsonl, write_kvt

    result = run(sixty_seventy_eighty(claim=CLAIM), P.HARD_EXCLUDE)
    direct = _check(result)
    jl, kvt = io.StringIO(), io.StringIO()
    write_jsonl(result.events, jl)
    write_kvt(result.events, kvt, spec=SPEC)
    for events in (read_jsonl(io.BytesIO(jl.getvalue().encode()), "run.jsonl", spec=SPEC),
                   read_kvt(io.StringIO(kvt.getvalue()), "run.kvt", spec=SPEC)):
        report = check_events(SPEC, events, "run")
        assert (report.verdict, report.requests, report.claims) == (
            direct.verdict, direct.requests, direct.claims)
