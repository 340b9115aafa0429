"""Reading KV hint envelopes and lowering their actions (kvclaims.lower.hint_envelope).

Generated over spec/kvhints.toml: every kind × outcome lowers to the status the table's semantics
give and to claim events the replay checker reads into the lifecycle state the table names; every
malformed envelope is a located input error, never a traceback; an unanswered hint is unknown.
"""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims.check.replay import check_events
from kvclaims.lower import hint_envelope as E
from kvclaims.lower.descriptor import load_hint_table
from kvclaims.trace.model import InputError

T = load_hint_table()


def _envelope(actions, message_id="m"):
    return {"protocol_version": "0.1", "message_id": message_id, "actions": actions}


def _action(action_id, action_type, payload=None):
    return {"action_id": action_id, "action_type": action_type, "action_version": "1.0",
            "payload": payload if payload is not None else {"block_hashes": [1, 2, 3]}}


def _read(*lines):
    return E.lower_file(io.StringIO("\n".join(json.dumps(x) for x in lines) + "\n"))


@pytest.mark.parametrize("kind", [k for k, v in T.kinds.items() if v.mode is not None])
@pytest.mark.parametrize("outcome", list(T.outcomes))
def test_every_kind_and_outcome_lowers_as_the_table_says(spec, kind, outcome):
    (r,) = _read({"request_id": "r", "kv_hints": _envelope([_action("a", kind)]),
                  "outcomes": {"a": outcome}})
    k, o = T.kinds[kind], T.outcomes[outcome]
    want = E.UNKNOWN if not o.decided else (E.HELD if k.holds else E.ACCEPTED) if o.grants \
        else E.NOT_HELD
    assert (r.kind, r.mode, r.outcome, r.status) == (kind, k.mode, outcome, want)
    # the events are the send and the answer, and the replay lands where the lifecycle says
    assert [e.kind for e in r.events] == [T.send, *o.answer]
    report = check_events(spec, list(r.events), "h.kvt")
    (claim,) = report.claims
    state = spec.claim.initial
    for e in (T.send, *o.answer):
        t = spec.claim.transitions[e]
        state = state if t.target == "same" else t.target
    assert claim.final_state == state and claim.mode == k.mode and claim.verdict != "violation"
    assert r.events[0].get("resident_blocks_required") == 3


def test_an_unanswered_hint_is_unknown_and_a_spelled_type_is_its_kind():
    spelling, kind = next(iter(T.spellings.items()))
    rows = _read(_envelope([_action("f", spelling), _action("x", "kv.teleport")]))
    assert [(r.kind, r.outcome, r.status) for r in rows] == [
        (kind, T.unanswered, E.UNKNOWN), (None, T.unanswered, E.UNKNOWN)]
    assert rows[1].events == () and "kv.teleport" in rows[1].why


def test_a_kind_that_ends_a_hold_is_unknown_without_its_target():
    ender = next(k for k, v in T.kinds.items() if v.ends)
    (r,) = _read({"kv_hints": _envelope([_action("d", ender)]), "outcomes": {"d": "accepted"}})
    assert r.status == E.UNKNOWN and r.events == ()


BAD = [
    ("[1, 2]", "envelope must be a JSON object"),
    ('{"protocol_version": "0.1", "message_id": "m"}', "missing key 'actions'"),
    ('{"protocol_version": "0.1", "message_id": "m", "actions": [], "extra": 1}',
     "unknown key 'extra'"),
    ('{"protocol_version": "0.1", "message_id": "", "actions": []}', "message_id must be"),
    ('{"protocol_version": "0.1", "message_id": "m", "actions": {}}', "actions must be a list"),
    ('{"protocol_version": "0.1", "message_id": "m", "actions": [{"action_id": "a"}]}',
     "missing key 'action_type'"),
    ('{"kv_hints": {"protocol_version": "0.1", "message_id": "m", "actions": []}, '
     '"outcomes": {"a": "maybe"}}', "is not one of"),
    ('{"kv_hints": {"protocol_version": "0.1", "message_id": "m", "actions": []}, '
     '"outcomes": {"a": "accepted"}}', "which the envelope lacks"),
    ('{"protocol_version": "0.1", "message_id": "m", "actions": [{"action_id": "a", '
     '"action_type": "Pin", "action_version": "1", "payload": []}]}', "payload must be"),
    ("{not json", "not JSON"),
]


@pytest.mark.parametrize("text, why", BAD)
def test_malformed_input_is_a_located_error(text, why):
    with pytest.raises(InputError, match=why) as err:
        E.lower_file(io.StringIO("\n" + text + "\n"))
    assert err.value.line == 2 and err.value.column >= 1


def test_an_action_id_twice_is_an_error():
    with pytest.raises(InputError, match="used twice"):
        _read(_envelope([_action("a", "Pin"), _action("a", "Pin")]))


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                        max_size=3),
                     max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["protocol_version", "message_id", "actions", "action_id",
                        "action_type", "action_version", "payload", "kv_hints", "outcomes"]),
       _json)
def test_any_value_in_any_place_reads_or_is_located(key, value):
    rec = {"request_id": "r", "kv_hints": _envelope([_action("a", "Pin")]),
           "outcomes": {"a": "accepted"}}
    for obj in (rec, rec["kv_hints"], rec["kv_hints"]["actions"][0]):
        if key in obj:
            obj[key] = value
    try:
        rows = _read(rec)
    except InputError as err:
        assert err.line == 1 and err.message
        return
    assert all(r.status in (E.HELD, E.NOT_HELD, E.ACCEPTED, E.UNKNOWN) for r in rows)


def test_command_exit_codes(tmp_path):
    decided = tmp_path / "d.jsonl"
    decided.write_text(json.dumps({"kv_hints": _envelope([_action("a", "Pin")]),
                                   "outcomes": {"a": "accepted"}}) + "\n")
    out = io.StringIO()
    kvt = tmp_path / "out.kvt"
    assert E.main([str(decided), "--kvt", str(kvt)], out) == 0
    assert "held" in out.getvalue() and kvt.read_text().startswith("kvtrace 1")
    open_ = tmp_path / "u.jsonl"
    open_.write_text(json.dumps(_envelope([_action("a", "Pin")])) + "\n")
    assert E.main([str(open_)], io.StringIO()) == 3
    bad = tmp_path / "b.jsonl"
    bad.write_text("{}\n")
    assert E.main([str(bad)], io.StringIO()) == 2
