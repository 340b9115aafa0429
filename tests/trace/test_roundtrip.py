"""Round trips: Event → .kvt → Event and Event → JSONL → Event keep kind and fields (MODEL §5)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims.trace import dsl, write
from kvclaims.trace.model import Event

from kvt_strategies import SPEC, events, typed


def _read_jsonl(data: bytes) -> Iterator[Event]:
    try:
        from kvclaims.trace.jsonl import read_jsonl  # type: ignore[attr-defined]
    except ImportError:  # the JSONL importer may not exist yet
        for line in data.splitlines():
            obj = json.loads(line)
            kind = obj.pop(dsl.EVENT_KEY)
            yield Event(kind, obj)
        return
    yield from read_jsonl(io.BytesIO(data), "<jsonl>", SPEC)


def _same(a: list[Event], b: list[Event]) -> None:
    assert [(e.kind, typed(e.fields)) for e in a] == [(e.kind, typed(e.fields)) for e in b]


@settings(max_examples=400, deadline=None)
@given(st.lists(events(), max_size=5))
def test_kvt_round_trip(evs: list[Event]) -> None:
    out = io.StringIO()
    write.write_kvt(evs, out)
    back = list(dsl.read_kvt(io.StringIO(out.getvalue()), "<kvt>"))
    _same(evs, back)
    # and the written form is a fixed point
    again = io.StringIO()
    write.write_kvt(back, again)
    assert again.getvalue() == out.getvalue()


@settings(max_examples=200, deadline=None)
@given(st.lists(events(), max_size=5))
def test_kvt_round_trip_lark(evs: list[Event]) -> None:
    out = io.StringIO()
    write.write_kvt(evs, out)
    _same(evs, list(dsl.read_kvt(io.StringIO(out.getvalue()), "<kvt>", fast=False)))


@settings(max_examples=300, deadline=None)
@given(st.lists(events(), min_size=1, max_size=5))  # the JSONL reader refuses an empty trace
def test_jsonl_round_trip(evs: list[Event]) -> None:
    out = io.StringIO()
    write.write_jsonl(evs, out)
    _same(evs, list(_read_jsonl(out.getvalue().encode("utf-8"))))


def test_file_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    evs = [Event("allocation_victim_selected", {"physical_block_id": n, "victim_reason": "free_uncached"})
           for n in range(100)]
    path = tmp_path / "t.kvt"
    with open(path, "w", encoding="utf-8") as fh:
        write.write_kvt(evs, fh)
    back = list(dsl.read_kvt(path))
    _same(evs, back)
    assert back[0].line == 2 and back[0].text == "block 0 victim reason=free_uncached"
    with open(path, "rb") as bh:
        _same(evs, list(dsl.read_kvt(bh, "t.kvt")))
