"""The .kvt reader on the issue's examples, its errors and its header rules (docs/model.md §5)."""

from __future__ import annotations

import io

import pytest

from kvclaims.trace import dsl
from kvclaims.trace.model import Event, InputError


def read(text: str, **kw: object) -> list[Event]:
    return list(dsl.read_kvt(io.StringIO(text), "t.kvt", **kw))  # type: ignore[arg-type]


def one(line: str) -> Event:
    (event,) = read("kvtrace 1\n" + line + "\n")
    assert (event.line, event.column, event.text) == (2, 1, line)
    return event


def error(text: str) -> InputError:
    with pytest.raises(InputError) as info:
        read(text)
    return info.value


def test_claim_accepted() -> None:
    e = one("claim claim:resident accepted mode=hard_exclude required=60")
    assert e.kind == "resident_claim_accepted"
    assert e.fields == {"claim_id": "claim:resident", "protection_mode": "hard_exclude",
                        "resident_blocks_required": 60}


def test_block_victim() -> None:
    e = one("block 60 victim request=active reason=cached_prefix_reuse")
    assert e.kind == "allocation_victim_selected"
    assert e.fields == {"physical_block_id": 60, "request_id": "active",
                        "victim_reason": "cached_prefix_reuse"}
    assert type(e.fields["physical_block_id"]) is int


def test_active_refused() -> None:
    e = one("active active refused blocking=[claim:resident] shortfall=50 free=20")
    assert e.kind == "active_request_refused"
    assert e.fields == {"request_id": "active", "blocking_claim_ids": ["claim:resident"],
                        "capacity_shortfall_blocks": 50, "free_blocks_before_allocate": 20}


def test_predicate_call_range_sequence_and_comments() -> None:
    text = ("# a trace\n\nkvtrace 1  # version\n"
            "@12 claim c1 accepted predicate=leading_prefix_at_least(60)  # trailing\n"
            "@13 claim c1 submitted predicate=contiguous_range( 0 ,8)\n"
            "connector r1 store_job_created blocks=0..59 job_id=-3 footprint=60\n")
    a, b, c = read(text)
    assert a.fields == {"event_sequence": 12, "claim_id": "c1",
                        "materialization_predicate": "leading_prefix_at_least(60)"}
    assert a.line == 4
    assert b.fields["materialization_predicate"] == "contiguous_range(0, 8)"
    assert c.fields["block_ids"] == list(range(60))
    assert c.fields["job_id"] == -3


def test_values() -> None:
    # informational keys (events.toml): kept with any value; other undeclared keys are errors
    e = one('generic - blocks_offloaded contract_event=[] hook_scope=[[1, "a b"], {}] '
            'instrumentation_scope={k=1.5, "s p"=null} key_count=true failure_reason=0-8c32530b '
            'failure_mode="\\u00e9\\n" transfer_time=-2.5e3')
    assert e.fields == {"contract_event": [], "hook_scope": [[1, "a b"], {}],
                        "instrumentation_scope": {"k": 1.5, "s p": None}, "key_count": True,
                        "failure_reason": "0-8c32530b", "failure_mode": "é\n",
                        "transfer_time": -2500.0}


def test_absent_id_and_quoted_keys() -> None:
    e = one('claim - rejected "claim_id"="c" "hook_scope"=1')
    assert e.fields == {"claim_id": "c", "hook_scope": 1}  # quoted keys are literal field names
    e = error('kvtrace 1\nclaim - rejected "claim_id"="c" "mode"=1\n')  # `mode` is no field name
    assert (e.line, e.column) == (2, 33) and "does not carry field 'mode'" in e.message


@pytest.mark.parametrize(("line", "column", "words"), [
    ("claim c1 accepted mode=", 24, "expected '[', 'false', 'null', 'true', '{', a float"),
    ("claim c1 accepted required=[1 2]", 31, "unexpected '2'; expected ',', ']'"),
    ("claim c1 accepted required=60 !", 31, "unexpected character '!'; expected a name, a quoted string"),
    ("claim:c1 accepted", 1, "expected '@', 'batch', 'kvtrace', 'skew', '}', a name"),
    ("claim c1", 9, "unexpected end of line; expected a name"),
])
def test_parse_errors(line: str, column: int, words: str) -> None:
    e = error("kvtrace 1\n" + line)
    assert (e.file, e.line, e.column) == ("t.kvt", 2, column)
    assert words in e.message, e.message


def test_unknown_verb_lists_verbs() -> None:
    e = error("kvtrace 1\nblock 3 evicted")
    assert (e.line, e.column) == (2, 9)
    assert "subject 'block' has no verb 'evicted'; expected one of: materialized, victim" == e.message


def test_unknown_subject() -> None:
    e = error("kvtrace 1\n\n  blok 3 victim")
    assert (e.line, e.column) == (3, 3) and "unknown subject 'blok'" in e.message


@pytest.mark.parametrize(("line", "column", "words"), [
    ("block x victim", 7, "must be an integer"),
    ("generic g blocks_offloaded", 9, "takes no ID"),
    ("claim c accepted protection_mode=hard", 18, "write protection_mode as mode"),
    ("claim c accepted mode=a mode=b", 25, "given twice"),
    ("@1 claim c accepted seq=1", 21, "given twice"),
    ("claim c accepted claim=d", 18, "given twice"),
    ("claim c accepted required=x", 18, "must be int"),
    ("claim - accepted", 7, "requires field 'claim_id'"),
    ("claim c accepted blocks=5..1", 25, "range 5..1 is empty"),
    ("claim c accepted event=x", 18, "given by SUBJECT and VERB"),
])
def test_event_errors(line: str, column: int, words: str) -> None:
    e = error("kvtrace 1\n" + line)
    assert (e.line, e.column) == (2, column) and words in e.message, e.message


def test_header_rules() -> None:
    e = error("# c\nclaim c accepted\n")
    assert (e.line, e.column) == (1, 1) and "missing header" in e.message and not e.unknown
    assert error("").line == 1
    e = error("# c\nkvtrace 2\nclaim c accepted\n")
    assert e.unknown and e.line == 2
    assert error("kvtrace 1\nkvtrace 1\n").line == 2
    assert read("kvtrace 1\n") == []


def test_max_line_length() -> None:
    with pytest.raises(InputError, match="line exceeds 64 bytes") as info:
        read("kvtrace 1\nclaim c accepted hook_scope=" + "a" * 60 + "\n", max_line_bytes=64)
    assert info.value.line == 2
    data = ("kvtrace 1\nclaim c accepted hook_scope=\"" + "é" * 40 + "\"\n").encode()
    with pytest.raises(InputError, match="exceeds 64 bytes"):
        list(dsl.read_kvt(io.BytesIO(data), "b.kvt", max_line_bytes=64))
    assert len(list(dsl.read_kvt(io.BytesIO(data), "b.kvt", max_line_bytes=200))) == 1


def test_bad_utf8() -> None:
    with pytest.raises(InputError, match="not valid UTF-8") as info:
        list(dsl.read_kvt(io.BytesIO(b"kvtrace 1\nclaim c\xff accepted\n"), "b.kvt"))
    assert (info.value.line, info.value.column) == (2, 8)


def test_lark_and_fast_readers_agree_on_the_examples() -> None:
    text = "kvtrace 1\n@1 claim c accepted mode=hard_exclude predicate=f(1, x)\nblock 2 victim\n"
    assert read(text) == read(text, fast=False)
