"""The typed JSON Lines path reads exactly as the reference path (issue 22 item 2).

kvclaims.trace.jsonl.read_jsonl decides a line with the typed schema generated from spec/
(kvclaims.trace.jsonl_schema) when it accepts it, else with the reference path (the shape-cached
Validator); `typed=True` uses the schema from the first line (by default, from the second chunk
on), `typed=False` reads every line with the reference path. Generated lines of every known
event (and unknown ones), with valid values, values of the wrong type, outside their ranges or
vocabularies, nulls, missing required fields, undeclared keys, repeated keys (at any depth, spaced
or escaped), strings with colons, quotes and backslashes, blank, truncated and non-object lines,
must give the same events (kind, fields, line, column, text) and the same error (line, column,
message, unknown) on both paths.
"""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.trace.jsonl import read_jsonl
from kvclaims.trace.jsonl_schema import EVENT_KEY, typed_events
from kvclaims.trace.model import InputError

SPEC = spec_mod.load()
EVENTS = sorted(SPEC.events)
TEXT = st.text(alphabet=st.sampled_from('ab:" \\\t{}[],é'), max_size=6)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**64), TEXT,
                    st.floats(allow_nan=False, allow_infinity=False))
ANY = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=5)


def _value(draw: Any, name: str, clean: bool = False) -> Any:
    """A value for field `name`: one the spec admits when `clean`, else sometimes a near miss."""
    field = SPEC.fields.get(name)
    if field is None or (not clean and draw(st.integers(0, 9)) == 0):
        return draw(ANY)
    if field.nullable and draw(st.integers(0, 5)) == 0:
        return None
    lo = field.min if field.min is not None else -5
    hi = field.max if field.max is not None else 5
    ints = st.one_of(st.integers(lo, min(hi, lo + 100)), st.sampled_from([lo, hi])) if clean else \
        st.one_of(st.integers(lo, min(hi, lo + 100)), st.sampled_from([lo, hi, lo - 1, hi + 1]))
    if field.type == "int":
        return draw(ints)
    if field.type == "list[int]":
        return draw(st.lists(ints, max_size=3))
    if field.type == "float":
        return draw(st.one_of(st.integers(-5, 5), st.floats(allow_nan=False,
                                                              allow_infinity=False)))
    if field.type == "bool":
        return draw(st.booleans())
    if field.type == "str":
        if field.values:
            vocabulary = st.sampled_from(sorted(field.values))
            return draw(vocabulary if clean else st.one_of(vocabulary, TEXT))
        return draw(TEXT)
    if field.type == "list[str]":
        return draw(st.lists(TEXT, max_size=3))
    if field.type == "list[object]":
        return draw(st.lists(st.dictionaries(TEXT, SCALARS, max_size=2), max_size=2))
    return draw(ANY)


def _near_miss(draw: Any, name: str) -> Any:
    """A value for field `name` that the spec may refuse: of another type, null, just outside
    its range, or a string outside its vocabulary."""
    field = SPEC.fields.get(name)
    if field is None:
        return draw(ANY)
    if field.min is not None and field.max is not None and draw(st.booleans()):
        edge = st.sampled_from([field.min - 1, field.max + 1])
        return draw(edge if field.type == "int" else st.lists(edge, min_size=1, max_size=2))
    return draw(st.one_of(ANY, st.none(), TEXT))


@st.composite
def lines(draw: Any) -> bytes:
    """A valid event line of a known event, then at most one defect (or none)."""
    kind: Any = draw(st.sampled_from(EVENTS))
    allowed = sorted(SPEC.allowed_keys(kind) or ())
    required = sorted(SPEC.events[kind].required)
    obj: dict[str, Any] = {EVENT_KEY: kind}
    for name in draw(st.lists(st.sampled_from(allowed), max_size=6, unique=True)) + required:
        obj[name] = _value(draw, name, clean=True)
    defect = draw(st.sampled_from(range(19)))
    if defect == 0 and len(obj) > 1:  # one value the spec may refuse
        name = draw(st.sampled_from(sorted(set(obj) - {EVENT_KEY})))
        obj[name] = _near_miss(draw, name)
    elif defect == 1 and required:  # a required field missing or null
        obj.pop(draw(st.sampled_from(required)))
    elif defect == 2:  # an undeclared key
        obj[draw(TEXT)] = draw(SCALARS)
    elif defect == 3:  # another event name, or none
        other = draw(st.one_of(st.just("no_such_event"), TEXT, SCALARS))
        if draw(st.booleans()):
            obj[EVENT_KEY] = other
        else:
            obj.pop(EVENT_KEY)
    elif defect == 4:  # a field with a random value
        obj[draw(st.sampled_from(sorted(SPEC.fields)))] = draw(ANY)
    elif defect in (10, 11):  # a ranged int or a closed string of the event, just outside
        bounded = sorted(k for k in obj if k in SPEC.fields and (
            SPEC.fields[k].min is not None if defect == 10 else SPEC.fields[k].values))
        if bounded:
            name = draw(st.sampled_from(bounded))
            obj[name] = _near_miss(draw, name) if defect == 10 else \
                draw(st.sampled_from(sorted(SPEC.fields[name].values or ()))) + draw(TEXT)
    text = json.dumps(obj, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")])))
    if defect == 5:  # a repeated key, first or last, with its own value
        key = draw(st.sampled_from(sorted(obj)))
        pair = json.dumps({key: _value(draw, key, clean=draw(st.booleans()))})[1:-1]
        text = ("{" + pair + "," + text[1:]) if draw(st.booleans()) \
            else (text[:-1] + "," + pair + "}")
    elif defect == 6:  # a repeated key one level down
        text = text[:-1] + ', "blocks":[{"a":1,"a":2}]}'
    elif defect == 7:
        text = text[: draw(st.integers(0, len(text)))]  # truncated
    elif defect == 8:
        text = draw(st.sampled_from(["", "  ", "[1]", "3", "null", '"x"', "{"]))
    elif defect == 9:
        text = text[:-1] + f', "schema_version": {draw(st.integers(0, 3))}}}'
    return text.encode("utf-8")


def _read(data: bytes, typed: bool) -> tuple[list[tuple[Any, ...]], tuple[Any, ...] | None]:
    events: list[tuple[Any, ...]] = []
    try:
        for ev in read_jsonl(io.BytesIO(data), "t.jsonl", SPEC, typed=typed):
            events.append((ev.kind, ev.fields, ev.line, ev.column, ev.text))
    except InputError as err:
        return events, (err.line, err.column, err.message, err.unknown)
    return events, None


@settings(max_examples=800, deadline=None, suppress_health_check=list(HealthCheck))
@given(lines(), st.booleans())
def test_typed_path_reads_a_line_as_the_reference(line: bytes, newline: bool) -> None:
    data = line + (b"\n" if newline else b"")
    assert _read(data, typed=True) == _read(data, typed=False)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(lines(), min_size=2, max_size=4), st.booleans())
def test_typed_path_reads_lines_as_the_reference(batch: list[bytes], last_newline: bool) -> None:
    """Line numbers, blank lines between events and the error of a later line."""
    data = b"\n".join(batch) + (b"\n" if last_newline else b"")
    assert _read(data, typed=True) == _read(data, typed=False)


def test_the_typed_schema_decides_the_reference_events() -> None:
    """The differential above compares something: the typed path decides most known events, and
    every line of a generated reference trace is accepted by it unchanged."""
    decided = typed_events(SPEC)
    assert len(decided) >= len(SPEC.events) - 2
    line = json.dumps({EVENT_KEY: "allocation_victim_selected", "physical_block_id": 3,
                       "request_id": "r:1", "claim_id": None})
    assert "allocation_victim_selected" in decided
    typed, ref = _read(line.encode() + b"\n", True), _read(line.encode() + b"\n", False)
    assert typed == ref and typed[1] is None and len(typed[0]) == 1


def test_a_repeated_key_is_found_on_the_typed_path() -> None:
    """A key written twice with two valid values passes the typed schema (msgspec keeps the
    last): the duplicate-key test must still refuse it, at the second spelling."""
    line = (b'{"event":"allocation_victim_selected","physical_block_id":3,'
            b'"request_id":"a:b","physical_block_id":4}\n')
    events, err = _read(line, typed=True)
    assert events == [] and err is not None
    assert err[:2] == (1, line.index(b'"physical_block_id":4') + 1)
    assert "given twice" in err[2]


def test_the_default_reads_small_files_without_building_the_schema(monkeypatch: Any) -> None:
    """By default the schema is built at the second chunk (it costs more than a small file
    gains), and a file read across chunks still reads as the reference."""
    from kvclaims.trace import jsonl

    built: list[int] = []
    real = jsonl.typed_decoder

    def counting(spec: Any) -> Any:
        built.append(1)
        return real(spec)

    monkeypatch.setattr(jsonl, "typed_decoder", counting)
    lines = [json.dumps({EVENT_KEY: "allocation_victim_selected", "physical_block_id": i,
                         "request_id": f"r:{i}"}).encode() for i in range(40)]
    data = b"\n".join(lines[:20] + [lines[20][:-1] + b', "physical_block_id": 7}'] + lines[21:])
    small = b"\n".join(lines[:3]) + b"\n"
    assert _read(small, typed=None) == _read(small, typed=False) and built == []
    monkeypatch.setattr(jsonl, "CHUNK_BYTES", 128)
    reference = _read(data, typed=False)
    assert _read(data, typed=None) == reference and built == [1]
    assert reference[1] is not None and reference[1][0] == 21 and "given twice" in reference[1][2]
