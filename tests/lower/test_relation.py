"""Lower(d, a, E, m) and the five-step classification: attested rows, fail-closed, over-claims."""

from __future__ import annotations

import dataclasses

import pytest

from kvclaims.lower import primitives
from kvclaims.lower.descriptor import Anchor, Descriptor, Evidence, Mapping_, load_tables
from kvclaims.lower.relation import (
    APPROXIMATE,
    DRIFT,
    NATIVE_SOUND,
    REJECTED,
    SOUND_WITH_ADAPTER,
    UNCHECKED,
    UNKNOWN,
    VERIFIED,
    AnchorCheck,
    anchor_key,
    classify,
)
from kvclaims.lower.table import PUBLIC, build


@pytest.fixture(scope="module")
def table():
    return build()


def test_table_has_no_errors(table):
    assert table.errors == ()


def test_trtllm_soft_priority_is_adapter_policy(table):
    r = table.row("tensorrt-llm", "soft_priority")
    assert (r.cls, r.depth) == (SOUND_WITH_ADAPTER, "policy")
    assert "trtllm-soft-priority-pressure" in dict(r.deciding).values()


def test_sglang_best_effort_is_adapter_observational(table):
    r = table.row("sglang", "best_effort")
    assert (r.cls, r.depth) == (SOUND_WITH_ADAPTER, "observational")


def test_no_public_runtime_is_native_sound(table):
    public = [r for r in table.rows if r.runtime in PUBLIC]
    assert public and all(r.cls != NATIVE_SOUND for r in public)


def test_c1_hard_onto_soft_priority_rejected_soft_itself_approximate(table):
    assert table.row("tensorrt-llm", "hard_protected").cls == REJECTED
    hard_on_soft = table.row("microruntime", "soft_priority-as-hard_protected")
    assert hard_on_soft.cls == REJECTED and hard_on_soft.witness.rule == "R-hard"
    assert ("micro-c1-hard-on-soft", "traces/litmus/C1-hard-on-soft.kvt", "violates R-hard") \
        in hard_on_soft.contradictions
    soft = table.row("microruntime", "soft_priority")
    assert soft.cls == APPROXIMATE and soft.missing == ("O-priority-order",)


def test_sound_lowering_is_native_and_proved(table):
    r = table.row("microruntime", "hard_exclude")
    assert r.cls == NATIVE_SOUND
    (proof,) = r.semantic
    assert proof.status == "proved" and proof.depth >= 1


def test_kv_rm_rows(table):
    # issue 8: the claim rows are native_sound (own traces + the arbiter proof); the rest unknown
    rows = {r.label: r.cls for r in table.rows if r.runtime == "kv-rm"}
    assert rows == {"best_effort": UNKNOWN, "soft_priority": UNKNOWN, "offloadable": UNKNOWN,
                    "hard_protected": "native_sound", "demotable": "native_sound",
                    "expiring": "native_sound"}


def test_every_rejected_witness_is_confirmed(table):
    for r in table.rows:
        if r.witness is not None:
            assert r.witness.confirmed, (r.runtime, r.label)


# ---- fail-closed: evidence that cannot raise a class -------------------------------------------
RULES = ("R-identity", "R-acceptance", "R-order", "R-stream", "R-vocabulary", "O-joinable-reuse")
DOC = Anchor("doc", "https://example.org/study")


def _decide(spec, ev: Evidence, checks=None, mode="best_effort", claimed=None):
    row = Mapping_(mode, mode, (), claimed)
    d = Descriptor("rt", "RT", "1", (mode,), (row,), (ev,))
    return classify(spec, load_tables(), d, row, checks or {})


def _ev(**kw):
    base = {"id": "e", "depth": "observational", "modes": ("best_effort",), "supports": RULES,
                "basis": "experiment", "anchors": (DOC,)}
    base.update(kw)
    return Evidence(**base)


def test_good_observational_evidence_raises(spec):
    r = _decide(spec, _ev())
    assert (r.cls, r.depth) == (SOUND_WITH_ADAPTER, "observational")


@pytest.mark.parametrize("kw, why", [
    ({"anchors": ()}, "unanchored"),
    ({"anchors": (Anchor("issue", "o/r#1"),)}, "unanchored"),
    ({"basis": "issue"}, "never raises"),
    ({"basis": "unverified"}, "never raises"),
    ({"ambiguous": True}, "ambiguous"),
    ({"depth": "policy"}, "without controlled pressure"),
])
def test_fail_closed(spec, kw, why):
    r = _decide(spec, _ev(**kw))
    assert r.cls not in (NATIVE_SOUND, SOUND_WITH_ADAPTER)
    assert any(why in w for _, w in r.excluded)


def test_drifted_source_anchor_never_raises(spec):
    src = Anchor("source", "rt@1:rt/x.py:f")
    ev = _ev(anchors=(DOC, src))
    assert _decide(spec, ev, {anchor_key(src): AnchorCheck(UNCHECKED)}).cls == SOUND_WITH_ADAPTER
    r = _decide(spec, ev, {anchor_key(src): AnchorCheck(DRIFT, "symbol f not defined")})
    assert r.cls == UNKNOWN and "anchor drift" in r.excluded[0][1]


def test_unchecked_trace_anchor_never_raises(spec):
    tr = Anchor("trace", "traces/x.kvt", "conformant")
    r = _decide(spec, _ev(anchors=(tr,), basis="trace", supports=RULES[:-1]))
    assert r.cls not in (NATIVE_SOUND, SOUND_WITH_ADAPTER)


def test_observation_cannot_discharge_enforcement(spec):
    bundle = load_tables().bundle(spec, "hard_protected")
    ev = _ev(modes=("hard_protected",), supports=bundle)
    r = _decide(spec, ev, mode="hard_protected")
    assert r.cls == APPROXIMATE and "R-hard" in r.missing
    native = dataclasses.replace(ev, depth="native")
    assert _decide(spec, native, mode="hard_protected").cls == NATIVE_SOUND


def test_trace_must_witness_what_evidence_claims(spec):
    tr = Anchor("trace", "t.kvt", "conformant")
    passed = {"best_effort": frozenset({"R-identity", "R-acceptance", "R-order", "R-stream"})}
    ev = _ev(anchors=(tr, DOC), basis="trace")
    r = _decide(spec, ev, {anchor_key(tr): AnchorCheck(VERIFIED, passed=passed)})
    assert "R-vocabulary" in r.missing  # claimed, but the trace does not witness it


def test_over_claim_is_an_error(spec):
    r = _decide(spec, _ev(anchors=()), claimed=SOUND_WITH_ADAPTER)
    assert r.errors and "over-claim" in r.errors[0]
    r = _decide(spec, _ev(), claimed=APPROXIMATE)  # under-claiming is allowed
    assert r.errors == ()


def test_over_claimed_depth_is_an_error(spec):
    row = Mapping_("best_effort", "best_effort", (), SOUND_WITH_ADAPTER, "native")
    d = Descriptor("rt", "RT", "1", ("best_effort",), (row,), (_ev(),))
    r = classify(spec, load_tables(), d, row, {})
    assert any("depth native" in e for e in r.errors)


def test_witness_rejects_before_approximate(spec):
    row = Mapping_("hard_protected", "hard_protected", ("ttl_expiry",))
    d = Descriptor("rt", "RT", "1", ("hard_protected",), (row,), ())
    r = classify(spec, load_tables(), d, row, {}, lambda p, m: primitives.check(p, m))
    assert r.cls == REJECTED and r.witness.rule == "R-hard"
