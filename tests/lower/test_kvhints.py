"""KV hints lowered onto claims (spec/kvhints.toml; kvclaims.lower.kvhints).

Generated over the table: the spec lowering of every kind in its own mode has no violating run;
every way of reading an outcome that does not grant a hold as `accepted` (for the kind that holds)
is rejected with a witness the replay checker confirms; dropping or delaying the event of every
outcome that cuts an accepted hold, or of the Demote that ends one, is rejected the same way; every
kind that does not hold is rejected in every mode that promises something at a loss.
"""

from __future__ import annotations

import io

import pytest

from kvclaims.check.replay import check_events
from kvclaims.lower import kvhints as H
from kvclaims.lower.descriptor import DescriptorError, load_hint_table, load_tables
from kvclaims.lower.primitives import witness_kvt
from kvclaims.lower.prove import run_case
from kvclaims.trace.dsl import read_kvt

T = load_hint_table()
HOLDING = [k for k, v in T.kinds.items() if v.mode is not None and v.holds]
NOT_HOLDING = [k for k, v in T.kinds.items() if v.mode is not None and not v.holds]
NOT_GRANTING = [o for o, v in T.outcomes.items() if not v.grants]
CUTTING = [o for o, v in T.outcomes.items() if v.cuts]
GRANT = next(o for o, v in T.outcomes.items() if v.grants)


def _replays_to(spec, result) -> set[str]:
    """The witness written as .kvt, read back and checked: the rules it violates."""
    text = witness_kvt(result.events, spec)
    events = list(read_kvt(io.StringIO(text), "w.kvt", spec=spec))
    report = check_events(spec, events, "w.kvt")
    return {f.rule for f in report.findings if f.status == "violation"}


def _rejected(spec, low):
    r = H.search(low).result
    assert r.status == "witness" and r.confirmed, (low, r)
    assert r.rule in _replays_to(spec, r)
    assert len(r.events) <= 8
    return r


def test_the_table_names_every_kind_and_outcome_of_the_rfc():
    assert set(T.kinds) == {"Share", "Prefetch", "Demote", "Pin", "Retain"}
    assert set(T.outcomes) == {"accepted", "clipped", "deferred", "rejected", "missing"}
    assert set(T.answers["rfc"]) == set(T.outcomes)
    assert HOLDING and NOT_HOLDING and CUTTING and NOT_GRANTING


@pytest.mark.parametrize("kind", HOLDING)
@pytest.mark.parametrize("mode", ["hard_protected", "demotable"])
def test_the_spec_lowering_of_a_hold_is_proved(kind, mode):
    r = H.search(H.spec_lowering(kind, mode)).result
    assert r.status == "proved" and set(r.rules_checked) == {"R-hard", "R-no-silent-loss"}


@pytest.mark.parametrize("kind", HOLDING)
@pytest.mark.parametrize("outcome", NOT_GRANTING)
def test_an_outcome_that_grants_nothing_read_as_accepted_is_rejected(spec, kind, outcome):
    low = H.override(H.spec_lowering(kind), outcome=outcome,
                     answer=T.outcomes[GRANT].answer)
    assert _rejected(spec, low).rule == "R-hard"


@pytest.mark.parametrize("kind", HOLDING)
@pytest.mark.parametrize("outcome", CUTTING)
def test_a_cut_with_no_event_or_after_the_loss_is_rejected(spec, kind, outcome):
    base = H.spec_lowering(kind)
    for low in (H.override(base, outcome=outcome, later=()), H.override(base, late_cuts=True)):
        r = _rejected(spec, low)
        assert f"{outcome} later" in H.search(low).steps


@pytest.mark.parametrize("kind", HOLDING)
def test_a_demote_with_no_event_is_rejected(spec, kind):
    r = H.search(H.override(H.spec_lowering(kind), on_accept=()))
    assert r.result.rule == "R-hard" and r.result.confirmed
    assert any(s.endswith(f"{GRANT}") and s.split()[0] != "answer" for s in r.steps)


@pytest.mark.parametrize("kind", NOT_HOLDING)
def test_a_kind_that_holds_nothing_is_rejected_wherever_a_loss_counts(spec, kind):
    tables = load_tables()
    for mode in spec.modes:
        bundle = set(tables.bundle(spec, mode))
        low = H.spec_lowering(kind, mode)
        if bundle & set(H.ENCODED):
            assert _rejected(spec, low).rule in bundle
        else:
            assert H.search(low).result.status == "not_modelled"


def test_a_runtime_that_answers_nothing_accepts_no_claim(spec):
    low = H.spec_lowering("Pin", answers="vllm")
    assert low.answers == ("missing",)
    assert {s for s, _ in H.reachable(spec, low)} <= {spec.claim.initial, "submitted"}
    # ... and read as accepted, it is a witness even there
    bad = H.override(low, outcome="missing", answer=T.outcomes[GRANT].answer)
    assert _rejected(spec, bad).rule == "R-hard"


def test_the_decoder_matches_the_model(spec):
    # every witness's decoded trace ends with the loss the model flagged, in a responsible state
    r = H.search(H.override(H.spec_lowering("Pin"), late_cuts=True)).result
    kinds = [e.kind for e in r.events]
    assert kinds[-1] == "resident_claim_relaxed"  # emitted after the victim: too late
    assert kinds[-2] == "allocation_victim_selected"


def test_a_bad_hint_case_names_its_errors(tmp_path):
    bad = {
        "hint = \"Nope\"": "not a hint kind",
        "hint = \"Demote\"": "not a hint kind",
        "hint = \"Pin\"\n[lowering]\noutcome = \"maybe\"": "unknown outcome",
        "hint = \"Pin\"\n[lowering]\nanswer = [\"resident_claim_pinned\"]": "not a claim transition",
        "hint = \"Pin\"\n[lowering]\nwhatever = 1": "unknown key",
    }
    for body, why in bad.items():
        case = tmp_path / "c.toml"
        case.write_text('name = "x"\nkind = "hint"\nmode = "hard_protected"\n'
                        'expected_class = "rejected"\nexpected_rule = "R-hard"\n' + body + "\n")
        with pytest.raises(DescriptorError, match=why):
            run_case(case)


def test_the_spec_lowering_offered_as_a_bad_case_fails_prove(tmp_path):
    case = tmp_path / "good.toml"
    case.write_text('name = "the spec lowering"\nkind = "hint"\nhint = "Pin"\n'
                    'mode = "hard_protected"\nexpected_class = "rejected"\n'
                    'expected_rule = "R-hard"\n')
    r = run_case(case)
    assert not r.ok and r.decision.cls != "rejected"


def test_the_table_refuses_events_outside_the_lifecycle(spec):
    import tomllib

    from kvclaims.lower.descriptor import _hint_table
    from kvclaims.spec import spec_root

    with open(spec_root() / "kvhints.toml", "rb") as fh:
        t = tomllib.load(fh)
    t["outcomes"]["accepted"]["answer"] = ["resident_claim_pinned"]
    with pytest.raises(DescriptorError, match="not a claim transition"):
        _hint_table(t, spec)
