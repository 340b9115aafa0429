"""The offloadable gate kept as per-claim state updated per event (issue 22 item 4) decides what
the gate decided by recomputing over the recorded history (tests/check/gate_oracle.py).

Generated histories: random events of every kind the gate reads (claim lifecycle, offload
generations, refusals and the other outcome kinds), with claim ids, blocking lists, generations,
tiers, sources, outcome types and identity values drawn from small pools, so repeated and
conflicting values, events before acceptance, several acceptances of one claim and answers for
other claims all occur; and mutations of a witnessing lifecycle (events dropped, duplicated,
inserted and edited), so the passing branches are reached too. Event names and constants are
read from the spec.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.check.gate import GateNames, OffloadGateState, offloadable_missing

from gate_oracle import offloadable_missing_oracle

SPEC = spec_mod.load()
N = GateNames(SPEC)
C = SPEC.offload_constants
CLAIMS = ["a", "b"]
OUTCOMES = sorted(SPEC.offload_outcome_events)

KINDS = [N.accepted, N.materialized, N.offloaded, N.restore_required, N.restored,
         N.restoration_failed, N.reuse_after_restore, *sorted(set(SPEC.offload_outcome_events.values()))]

maybe_bool = st.sampled_from([True, False, None])
FIELDS = {
    "claim_id": st.sampled_from([None, *CLAIMS]),
    "blocking_claim_ids": st.lists(st.sampled_from(CLAIMS), max_size=3),
    "offload_generation": st.sampled_from([None, 1, 2]),
    "cache_tier_from": st.sampled_from([None, C["gpu_tier"], C["host_tier"], "disk"]),
    "cache_tier_to": st.sampled_from([None, C["gpu_tier"], C["host_tier"], "disk"]),
    "restoration_source": st.sampled_from([None, C["restore_source"], "recompute"]),
    "restored_from_offload_tier": maybe_bool,
    "predicate_satisfied": maybe_bool,
    "predicate_materialized": maybe_bool,
    "controlled_restoration_unavailable": maybe_bool,
    "injected_restoration_failure": maybe_bool,
    "claim_scoped_outcome_type": st.sampled_from([None, "bogus", *OUTCOMES]),
    "outcome_claim_id": st.sampled_from([None, *CLAIMS]),
    "claim_registration": st.sampled_from([SPEC.values["post_hoc_registration"], "pre_registered"]),
    "materialization_predicate": st.sampled_from([None, "leading_prefix_at_least(2)", "nonsense("]),
    "reusable_object_id": st.sampled_from([None, "o1", "o2"]),
    "cache_identity": st.sampled_from([None, "c1", "c2"]),
    "request_token_map_id": st.sampled_from([None, "t1", "t2"]),
}

event = st.tuples(st.sampled_from(KINDS), st.fixed_dictionaries({}, optional=FIELDS))


def _witness(cid: str) -> list[tuple[str, dict[str, Any]]]:
    """A lifecycle that witnesses every offloadable requirement for `cid`."""
    ident = {"reusable_object_id": "o1", "cache_identity": "c1", "request_token_map_id": "t1"}
    return [
        (N.accepted, {"claim_id": cid, "claim_registration": "pre_registered",
                      "materialization_predicate": "leading_prefix_at_least(2)", **ident}),
        (N.materialized, {"claim_id": cid, "predicate_materialized": True}),
        (N.offloaded, {"claim_id": cid, "offload_generation": 1,
                       "cache_tier_from": C["gpu_tier"], "cache_tier_to": C["host_tier"]}),
        (N.restore_required, {"claim_id": cid, "offload_generation": 1}),
        (N.restored, {"claim_id": cid, "offload_generation": 1,
                      "cache_tier_from": C["host_tier"], "restoration_source": C["restore_source"],
                      "restored_from_offload_tier": True}),
        (N.reuse_after_restore, {"claim_id": cid, "offload_generation": 1,
                                 "predicate_satisfied": True}),
        (N.offloaded, {"claim_id": cid, "offload_generation": 2,
                       "cache_tier_from": C["gpu_tier"], "cache_tier_to": C["host_tier"]}),
        (N.restore_required, {"claim_id": cid, "offload_generation": 2}),
        (N.restoration_failed, {"claim_id": cid, "offload_generation": 2,
                                "claim_scoped_outcome_type": "refusal", "outcome_claim_id": cid,
                                "controlled_restoration_unavailable": True}),
        (N.refused, {"claim_id": cid, "blocking_claim_ids": [cid], "outcome_claim_id": cid}),
    ]


def _records(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, str, dict[str, Any]]]:
    return [(i + 1, k, f) for i, (k, f) in enumerate(events)]


def _agree(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    recs = _records(events)
    want = offloadable_missing_oracle(SPEC, recs)
    assert offloadable_missing(SPEC, recs) == want
    return want


@settings(max_examples=400, deadline=None)
@given(st.lists(event, max_size=30))
def test_random_histories_agree(events: list[tuple[str, dict[str, Any]]]) -> None:
    _agree(events)


@st.composite
def mutated_witness(draw: st.DrawFn) -> list[tuple[str, dict[str, Any]]]:
    events = _witness("a") + (_witness("b") if draw(st.booleans()) else [])
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["drop", "dup", "insert", "edit", "swap"]))
        if not events:
            break
        j = draw(st.integers(0, len(events) - 1))
        if op == "drop":
            del events[j]
        elif op == "dup":
            events.insert(draw(st.integers(0, len(events))), events[j])
        elif op == "insert":
            events.insert(j, draw(event))
        elif op == "edit":
            name = draw(st.sampled_from(sorted(FIELDS)))
            events[j] = (events[j][0], {**events[j][1], name: draw(FIELDS[name])})
        else:
            k = draw(st.integers(0, len(events) - 1))
            events[j], events[k] = events[k], events[j]
    return events


@settings(max_examples=400, deadline=None)
@given(mutated_witness())
def test_mutated_witnesses_agree(events: list[tuple[str, dict[str, Any]]]) -> None:
    _agree(events)


def test_witness_passes_and_state_is_per_event() -> None:
    """The unmutated lifecycle passes (so the generated cases reach the passing branches), and
    the state fed one event at a time decides after every prefix what the oracle decides."""
    events = _witness("a") + _witness("b")
    assert _agree(events) == []
    state = OffloadGateState(SPEC)
    for n, (i, k, f) in enumerate(_records(events), start=1):
        state.add(i, k, f)
        assert state.missing() == offloadable_missing_oracle(SPEC, _records(events[:n]))
