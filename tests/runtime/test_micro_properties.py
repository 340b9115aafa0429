"""Properties of the MicroRuntime under generated workloads (docs/model.md §6, issue 3 acceptance).

Every correct policy yields conformant traces on every workload; every fault switch, whenever it
fires, yields a violation of the rule it breaks and of no other rule, and leaves the trace
conformant when it does not fire. Example counts stay small by default (CI has 2 cores);
`HYPOTHESIS_PROFILE=thorough` runs many more.
"""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.check.replay import check_events
from kvclaims.check.verdict import CONFORMANT, VIOLATION
from kvclaims.fuzz.strategies import workloads as public_workloads
from kvclaims.runtime import policies as P
from kvclaims.runtime.micro import run
from kvclaims.runtime.workload import (
    ClaimSpec,
    PrefixSpec,
    RequestSpec,
    Workload,
)

SPEC = spec_mod.load()
THOROUGH = os.environ.get("HYPOTHESIS_PROFILE") == "thorough"
EXAMPLES = 400 if THOROUGH else 100
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=not THOROUGH,
                    suppress_health_check=[HealthCheck.too_slow])
OUTCOMES = tuple(SPEC.offload_outcome_events)


@st.composite
def workloads(draw: st.DrawFn) -> Workload:
    # The public strategy (kvclaims.fuzz.strategies), with pools up to 48 blocks here, and an
    # optional `claim_priority` per claim (soft claims give way lowest first, docs/model.md §6 R-yield).
    wl = draw(public_workloads(max_usable=48))
    prefixes = tuple(
        replace(p, claim=replace(p.claim, priority=draw(st.none() | st.integers(0, 3))))
        if p.claim is not None else p for p in wl.prefixes)
    return replace(wl, prefixes=prefixes)


CORRECT = [P.Policy(name) for name in P.POLICIES] + [
    P.Policy(P.HARD_EXCLUDE, defer_attempts=2),
    P.Policy(P.EXPIRING, defer_attempts=1),
    P.Policy(P.SOFT_PRIORITY, free_order=P.HEAD_FIRST),
    P.Policy(P.RESIDENT_RESERVE, reserve_blocks=4),
]


def _violated(report) -> set[str]:
    return {f.rule for f in report.findings if f.status == VIOLATION}


@pytest.mark.parametrize("policy", CORRECT, ids=lambda p: f"{p.name}-{p.defer_attempts}-"
                         f"{p.free_order}-{p.reserve_blocks}")
@SETTINGS
@given(wl=workloads())
def test_correct_policy_is_always_conformant(policy: P.Policy, wl: Workload) -> None:
    result = run(wl, policy)
    report = check_events(SPEC, result.events, "generated")
    assert report.verdict == CONFORMANT, [(f.rule, f.message) for f in report.findings]
    assert not result.fired


FAULT_CASES = [(f, p) for f in P.FAULTS.values() for p in f.policies]

_R = {rid: SPEC.rules[rid].id for rid in SPEC.rules}


@pytest.mark.parametrize("fault,policy", FAULT_CASES, ids=lambda x: getattr(x, "name", x))
@SETTINGS
@given(wl=workloads())
def test_fault_violates_exactly_its_rule(fault: P.Fault, policy: str, wl: Workload) -> None:
    result = run(wl, P.Policy(policy), [fault.name])
    report = check_events(SPEC, result.events, "generated")
    if fault.name in result.fired:
        violated = _violated(report)
        assert fault.rule in violated and violated <= fault.rules, [
            (f.rule, f.message) for f in report.findings]
    else:
        assert report.verdict == CONFORMANT, [(f.rule, f.message) for f in report.findings]


# ---- concrete witnesses of faults whose attribution the checker once got wrong -------------
def _claim_prefix(pid: str, blocks: int, required: int, **kw) -> PrefixSpec:
    return PrefixSpec(pid, blocks, ClaimSpec(f"claim:{pid}", required, **kw))


WITNESSES = {
    "harm_without_break-then-post-release-loss": (
        P.HARM_WITHOUT_BREAK, P.SOFT_PRIORITY,
        Workload(23, (PrefixSpec("p0", 1), _claim_prefix("p1", 22, 1)),
                 (RequestSpec("r0", (1, 1, 1)),))),
    "harm_without_break-absorbed-by-later-break": (
        P.HARM_WITHOUT_BREAK, P.SOFT_PRIORITY,
        Workload(10, (_claim_prefix("p0", 10, 5),), (RequestSpec("r0", (3, 5)),))),
    "smear-onto-best-effort-claim": (
        P.SMEARED_ATTRIBUTION, P.HARD_EXCLUDE,
        Workload(20, (_claim_prefix("p0", 10, 10), _claim_prefix("p1", 5, 5, protected=False)),
                 (RequestSpec("r0", (11,)),))),
    "expiry-after-breaking-loss": (
        P.EXPIRY_AFTER_LOSS, P.EXPIRING,
        Workload(80, (_claim_prefix("resident", 60, 60, duration_steps=1),),
                 (RequestSpec("active", (70,)),))),
    "expiry-after-non-breaking-loss": (
        P.EXPIRY_AFTER_LOSS, P.EXPIRING,
        Workload(80, (_claim_prefix("resident", 60, 50, duration_steps=1),),
                 (RequestSpec("active", (25,)),))),
}


@pytest.mark.parametrize("name", sorted(WITNESSES))
def test_fault_witness_violates_exactly_its_rule(name: str) -> None:
    fault, policy, wl = WITNESSES[name]
    result = run(wl, P.Policy(policy), [fault])
    assert fault in result.fired
    report = check_events(SPEC, result.events, name)
    violated = _violated(report)
    assert P.FAULTS[fault].rule in violated and violated <= P.FAULTS[fault].rules


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=__import__("kvclaims.fuzz.strategies", fromlist=["traces"]).traces())
def test_every_runtime_trace_reads_back_under_closed_input(events) -> None:
    """What the MicroRuntime writes (every correct policy, every restore-failure outcome) is read
    back by the strict readers of both formats with no input error: the runtime emits only the
    keys and values spec/ declares for each event (closed input, docs/checking.md)."""
    import io

    from kvclaims.trace.dsl import read_kvt
    from kvclaims.trace.jsonl import read_jsonl
    from kvclaims.trace.write import write_jsonl, write_kvt

    out = io.StringIO()
    write_jsonl(events, out)
    assert len(list(read_jsonl(io.BytesIO(out.getvalue().encode()), "t.jsonl", SPEC))) == \
        len(events)
    out = io.StringIO()
    write_kvt(events, out, spec=SPEC)
    assert len(list(read_kvt(io.StringIO(out.getvalue()), "t.kvt", spec=SPEC))) == len(events)


@pytest.mark.parametrize("outcome", sorted(SPEC.offload_outcome_events))
@pytest.mark.parametrize("usable", [8, 10])
def test_restore_failure_outcomes_read_back_under_closed_input(outcome: str, usable: int) -> None:
    """Each restoration-failure outcome the offloadable policy can write reads back (the events
    of a failure outcome carry offload fields no other run writes)."""
    import io

    from kvclaims.trace.jsonl import read_jsonl
    from kvclaims.trace.write import write_jsonl

    wl = Workload(usable, (PrefixSpec("p0", 4, ClaimSpec("claim:p0", 3, restore_fails=True,
                                                         failure_outcome=outcome)),),
                  (RequestSpec("r0", (6,)), RequestSpec("r1", (1,), reuses="p0")))
    events = run(wl, P.Policy(P.OFFLOADABLE)).events
    out = io.StringIO()
    write_jsonl(events, out)
    back = list(read_jsonl(io.BytesIO(out.getvalue().encode()), "t.jsonl", SPEC))
    assert len(back) == len(events)
    assert check_events(SPEC, back).verdict == CONFORMANT
