"""Partial-order input (issue 4): `.kvt` `batch { }` blocks and `skew` lines, batch keys in JSON
Lines, PartialTrace, the `--skew A:B:NS` parser and format-detecting read_partial."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest

from kvclaims import spec as spec_mod
from kvclaims.spec import OrderSpec
from kvclaims.trace import dsl, write
from kvclaims.trace.jsonl import read_jsonl, read_partial_jsonl
from kvclaims.trace.model import Event, InputError, PartialTrace, Skew
from kvclaims.trace.partial_input import parse_skew_option, read_partial

SPEC = spec_mod.load()
SRC = Path(__file__).resolve().parents[2] / "checker" / "kvclaims"


def kvt(*lines: str) -> str:
    return "\n".join(("kvtrace 1", *lines)) + "\n"


def read(text: str, *, fast: bool = True) -> PartialTrace:
    return dsl.read_partial_kvt(io.StringIO(text), "t.kvt", fast=fast)


def error(text: str) -> InputError:
    """The error of `text`, the same from the fast path and from Lark alone."""
    found = []
    for fast in (True, False):
        with pytest.raises(InputError) as info:
            read(text, fast=fast)
        found.append(info.value)
    fast_e, lark_e = found
    assert (fast_e.file, fast_e.line, fast_e.column, fast_e.message, fast_e.unknown) == \
        (lark_e.file, lark_e.line, lark_e.column, lark_e.message, lark_e.unknown)
    return fast_e


# ---- the spec's [order] table ---------------------------------------------------------------


def test_order_table() -> None:
    assert SPEC.order == OrderSpec(batch_fields=("unordered_batch", "kv_batch_seq"),
                                   block_field="unordered_batch", source_field="source",
                                   time_fields=("timestamp_ns", "monotonic_ns"))
    for name in (*SPEC.order.batch_fields, *SPEC.order.time_fields):
        assert SPEC.fields[name].type == "int"
    # `source` is the .kvt key of restoration_source, so the source field is spelled `origin`
    assert SPEC.fields["source"].kvt == "origin"
    assert SPEC.fields["restoration_source"].kvt == "source"
    assert SPEC.fields["unordered_batch"].kvt == "unordered_batch"


def test_every_order_entry_is_used_by_code() -> None:
    # as tests/test_spec.py does for rules and events: a table entry no code reads is an error
    used: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) \
                    and node.value.attr == "order" and path.name != "docs.py":
                used.add(node.attr)
    assert set(OrderSpec.__dataclass_fields__) <= used, set(OrderSpec.__dataclass_fields__) - used


def test_bad_order_tables_are_refused(tmp_path: Path) -> None:
    root = Path(spec_mod.spec_root())
    for name in root.iterdir():
        if name.is_file():
            (tmp_path / name.name).write_bytes(name.read_bytes())
    fields = (root / "fields.toml").read_text()
    for old, new, words in [
        ('source_field = "source"', 'source_field = "nope"', "unknown field nope"),
        ('block_field = "unordered_batch"', 'block_field = "timestamp_ns"', "not a batch field"),
        ('time_fields = ["timestamp_ns", "monotonic_ns"]', 'time_fields = ["run_id"]',
         "must have type int"),
    ]:
        (tmp_path / "fields.toml").write_text(fields.replace(old, new))
        with pytest.raises(spec_mod.SpecError, match=words):
            spec_mod.load.__wrapped__(tmp_path)


# ---- batch blocks ---------------------------------------------------------------------------


def test_batches_are_numbered_in_file_order() -> None:
    t = read(kvt("block 1 victim",
                 "batch {",
                 "  block 2 victim",
                 "",
                 "  # a comment inside",
                 "  block 3 victim  # trailing",
                 "}",
                 "batch{  # no blank needed",
                 "block 4 victim",
                 "}",
                 "  batch {",
                 "  block 5 victim",
                 "  }",
                 "block 6 victim"))
    assert [e.get("unordered_batch") for e in t.events] == [None, 1, 1, 2, 3, None]
    assert [e.line for e in t.events] == [2, 4, 7, 10, 13, 15]
    assert t.events[1].text == "  block 2 victim"
    assert t.batches() == [(1, 3, ("unordered_batch", 1)), (3, 4, ("unordered_batch", 2)),
                           (4, 5, ("unordered_batch", 3))]
    assert t.has_unordered_parts()
    assert t.skews == ()
    assert read(kvt("batch {", "block 1 victim", "}", "block 2 victim")).has_unordered_parts() \
        is False  # a batch of one event has one order
    assert read(kvt("block 1 victim", "block 2 victim")).has_unordered_parts() is False


def test_read_kvt_streams_events_with_the_batch_field() -> None:
    text = kvt("batch {", "block 1 victim", "block 2 victim", "}")
    events = list(dsl.read_kvt(io.StringIO(text), "t.kvt"))
    assert [e.fields for e in events] == [{"physical_block_id": 1, "unordered_batch": 1},
                                          {"physical_block_id": 2, "unordered_batch": 1}]
    # without a batch the events are exactly those of before (no new field)
    plain = list(dsl.read_kvt(io.StringIO(kvt("block 1 victim")), "t.kvt"))
    assert plain[0].fields == {"physical_block_id": 1}


def test_explicit_batch_field_outside_blocks() -> None:
    t = read(kvt("block 1 victim unordered_batch=7", "block 2 victim unordered_batch=7",
                 'block 3 victim "unordered_batch"=8', "batch {", "block 4 victim", "}",
                 "block 5 victim unordered_batch=9"))
    assert [e.get("unordered_batch") for e in t.events] == [7, 7, 8, 1, 9]
    assert [b[:2] for b in t.batches()] == [(0, 2), (2, 3), (3, 4), (4, 5)]


@pytest.mark.parametrize(("lines", "line", "column", "words"), [
    (("batch {", "block 1 victim", "  batch {", "}", "}"), 4, 3,
     "batch blocks do not nest (the block opened at line 2 is still open)"),
    (("block 1 victim", "  }"), 3, 3, "`}` closes no `batch {` block"),
    (("batch {", "block 1 victim", "}", "}"), 5, 1, "`}` closes no `batch {` block"),
    (("block 1 victim", " batch {", "block 2 victim"), 3, 2,
     "batch block is not closed: `}` is missing before the end of the trace"),
    (("batch {", "# nothing", "}"), 2, 1, "empty batch block: a batch holds at least one event"),
    (("batch {", "block 1 victim reason=free_uncached unordered_batch=1", "}"), 3, 37,
     "unordered_batch is given by the enclosing `batch {` block (number 1)"),
    (("batch {", 'block 1 victim "unordered_batch"=4', "}"), 3, 16,
     "unordered_batch is given by the enclosing `batch {` block"),
    (("batch {", "block 1 victim", "}", "block 2 victim unordered_batch=1"), 5, 16,
     "unordered_batch=1 would join batch block 1 just before it"),
    (("batch {", "block 1 victim", "}", "skew a b 1", "# c", "block 2 victim unordered_batch=1"),
     7, 16, "unordered_batch=1 would join batch block 1 just before it"),
    (("block 0 victim unordered_batch=1", "# c", "batch {", "block 1 victim", "}"), 4, 1,
     "batch block 1 would join the event before it (line 2, unordered_batch=1)"),
    (("batch {", "block 1 victim", "}", "batch {", "block 2 victim unordered_batch=2", "}"), 6, 16,
     "unordered_batch is given by the enclosing `batch {` block (number 2)"),
    (("batch", "}"), 2, 6, "unexpected end of line; expected '{'"),
    (("batch { block 1 victim", "}"), 2, 9, "unexpected 'block'; expected end of line"),
    (("} block 1 victim",), 2, 3, "unexpected 'block'; expected end of line"),
    (("@1 batch {",), 2, 10, "unexpected '{'; expected a quoted string, a word"),
])
def test_batch_errors(lines: tuple[str, ...], line: int, column: int, words: str) -> None:
    e = error(kvt(*lines))
    assert (e.file, e.line, e.column) == ("t.kvt", line, column), e
    assert words in e.message, e.message
    assert not e.unknown


def test_batch_before_the_header_is_a_missing_header() -> None:
    e = error("batch {\nblock 1 victim\n}\nkvtrace 1\n")
    assert (e.line, e.column) == (1, 1) and "missing header" in e.message
    e = error("# c\nskew a b 1\nkvtrace 1\n")
    assert (e.line, e.column) == (1, 1) and "missing header" in e.message


def test_errors_after_events_already_streamed() -> None:
    # read_kvt streams: events before the bad line are delivered, then the located error
    it = dsl.read_kvt(io.StringIO(kvt("block 1 victim", "}")), "t.kvt")
    assert next(it).fields == {"physical_block_id": 1}
    with pytest.raises(InputError) as info:
        next(it)
    assert (info.value.line, info.value.column) == (3, 1)


# ---- skew lines -----------------------------------------------------------------------------


def test_skew_declarations() -> None:
    t = read(kvt("skew sched kv 2000000", "block 1 victim origin=sched t=5",
                 "batch {", "  skew dp0 dp:1 0  # inside a block: still global", "block 2 victim",
                 "}", "\tskew true 12 7"))
    assert t.skews == (Skew("sched", "kv", 2_000_000, 2, 1), Skew("dp0", "dp:1", 0, 5, 3),
                       Skew("true", "12", 7, 8, 2))
    assert t.events[0].fields == {"physical_block_id": 1, "source": "sched", "timestamp_ns": 5}
    assert t.source_of(0) == "sched" and t.time_of(0) == 5
    assert t.source_of(1) is None and t.time_of(1) is None
    assert t.has_unordered_parts()
    assert read(kvt("skew a b 1")).has_unordered_parts()  # a skew alone: partly ordered
    # read_kvt without a list checks the lines and drops them; with one, it fills it
    text = kvt("skew a b 1", "block 1 victim")
    assert len(list(dsl.read_kvt(io.StringIO(text), "t.kvt"))) == 1
    got: list[Skew] = []
    list(dsl.read_kvt(io.StringIO(text), "t.kvt", skews=got))
    assert got == [Skew("a", "b", 1, 2, 1)]


@pytest.mark.parametrize(("line", "column", "words"), [
    ("skew a b -5", 10, "unexpected '-5'; expected a non-negative integer"),
    ("skew a b 1.5", 10, "unexpected '1.5'; expected a non-negative integer"),
    ("skew a b", 9, "unexpected end of line; expected a non-negative integer"),
    ("skew a b 5 6", 12, "unexpected '6'; expected end of line"),
    ('skew "a" b 5', 6, "expected a word"),
    ("skew a a 5", 8, "a skew relates two different sources, got 'a' twice"),
    ("skew a b " + "9" * 5000, 10, "integer literal of 5000 characters is too long"),
])
def test_skew_errors(line: str, column: int, words: str) -> None:
    e = error(kvt(line))
    assert (e.line, e.column) == (2, column), e
    assert words in e.message, e.message


def test_skew_declared_twice() -> None:
    e = error(kvt("skew a b 5", "block 1 victim", "  skew b a 6"))
    assert (e.line, e.column) == (4, 3)
    assert e.message == "skew between b and a is already declared at line 2"


def test_skew_and_partial_trace_invariants() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Skew("a", "b", -1)
    with pytest.raises(ValueError, match="two different sources"):
        Skew("a", "a", 1)
    with pytest.raises(ValueError, match="two skew declarations"):
        PartialTrace((), (Skew("a", "b", 1), Skew("b", "a", 2)))
    assert Skew("a", "b", 1).sources == Skew("b", "a", 9).sources


def test_batches_use_the_first_batch_field_present() -> None:
    evs = [Event("allocation_victim_selected", f) for f in (
        {"kv_batch_seq": 4}, {"kv_batch_seq": 4}, {"kv_batch_seq": 4, "unordered_batch": 4},
        {"unordered_batch": 4}, {}, {"kv_batch_seq": 4}, {"kv_batch_seq": 5})]
    assert PartialTrace(tuple(evs)).batches() == [
        (0, 2, ("kv_batch_seq", 4)), (2, 4, ("unordered_batch", 4)), (5, 6, ("kv_batch_seq", 4)),
        (6, 7, ("kv_batch_seq", 5))]
    assert PartialTrace(tuple(evs)).has_unordered_parts()
    assert PartialTrace(()).batches() == [] and not PartialTrace(()).has_unordered_parts()
    t = PartialTrace((Event("x", {"monotonic_ns": 3, "timestamp_ns": None}),))
    assert t.time_of(0) == 3


# ---- writer ---------------------------------------------------------------------------------


def test_writer_blocks_and_skews() -> None:
    evs = [Event("allocation_victim_selected", {"physical_block_id": n, **f}) for n, f in enumerate((
        {}, {"unordered_batch": 1}, {"unordered_batch": 1, "kv_batch_seq": 3},
        {"unordered_batch": 5}, {"unordered_batch": 2}, {"kv_batch_seq": 3}, {"source": "kv"}))]
    out = io.StringIO()
    write.write_kvt(evs, out, skews=[Skew("sched", "kv", 10)])
    assert out.getvalue() == kvt(
        "skew sched kv 10",
        "block 0 victim",
        "batch {",
        "  block 1 victim",
        "  block 2 victim kv_batch_seq=3",
        "}",
        "block 3 victim unordered_batch=5",
        "batch {",
        "  block 4 victim",
        "}",
        "block 5 victim kv_batch_seq=3",
        "block 6 victim origin=kv")
    back = read(out.getvalue())
    assert [e.fields for e in back.events] == [e.fields for e in evs]
    assert back.skews == (Skew("sched", "kv", 10, 2, 1),)
    with pytest.raises(ValueError, match="not a .kvt word"):
        write.skew_line(Skew("a b", "c", 1))


# ---- JSON Lines -----------------------------------------------------------------------------


def _jsonl(*objs: dict[str, object]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(o) + "\n" for o in objs).encode())


def test_jsonl_batch_fields_are_validated_ints() -> None:
    ok = _jsonl({"event": "allocation_victim_selected", "physical_block_id": 1,
                 "unordered_batch": 1, "kv_batch_seq": 9, "source": "kv"},
                {"event": "allocation_victim_selected", "physical_block_id": 2,
                 "unordered_batch": 1})
    t = read_partial_jsonl(ok, "t.jsonl", SPEC, skews=[Skew("kv", "sched", 5)])
    assert t.batches() == [(0, 2, ("unordered_batch", 1))] and t.skews == (Skew("kv", "sched", 5),)
    for field, value in [("unordered_batch", "1"), ("kv_batch_seq", 1.5),
                         ("unordered_batch", None), ("source", 3)]:
        line = json.dumps({"event": "allocation_victim_selected", "physical_block_id": 1,
                           field: value}).encode()
        with pytest.raises(InputError) as info:
            list(read_jsonl(io.BytesIO(line), "t.jsonl", SPEC))
        assert (info.value.line, info.value.column) == (1, line.find(f'"{field}"'.encode()) + 1)
        assert f"field {field!r} must be" in info.value.message


def test_jsonl_to_kvt_keeps_explicit_numbers() -> None:
    data = _jsonl(*({"event": "allocation_victim_selected", "physical_block_id": n,
                     "unordered_batch": b} for n, b in enumerate((3, 3, 1, 1, 2))))
    t = read_partial_jsonl(data, "t.jsonl", SPEC)
    out = io.StringIO()
    write.write_kvt(t.events, out)
    assert out.getvalue() == kvt("block 0 victim unordered_batch=3",
                                 "block 1 victim unordered_batch=3", "batch {",
                                 "  block 2 victim", "  block 3 victim", "}", "batch {",
                                 "  block 4 victim", "}")
    assert [e.fields for e in read(out.getvalue()).events] == [e.fields for e in t.events]


# ---- --skew A:B:NS and read_partial ---------------------------------------------------------


def test_parse_skew_option() -> None:
    assert parse_skew_option("sched:kv_events:2000000") == Skew("sched", "kv_events", 2_000_000)
    assert parse_skew_option("dp0:dp1:0") == Skew("dp0", "dp1", 0, 0, 0)


@pytest.mark.parametrize(("text", "words"), [
    ("a:b", "expected A:B:NS"),
    ("a:b:c:1", "expected A:B:NS"),
    ("a:b:-1", "'-1' is not a non-negative integer of nanoseconds"),
    ("a:b:1e3", "'1e3' is not a non-negative integer"),
    ("a:b:", "'' is not a non-negative integer"),
    ("a b:c:1", "source 'a b' is not a word"),
    (":c:1", "source '' is not a word"),
    ("a:a:1", "a skew relates two different sources"),
])
def test_parse_skew_option_errors(text: str, words: str) -> None:
    with pytest.raises(ValueError, match="skew ") as info:
        parse_skew_option(text)
    assert words in str(info.value), info.value


def test_read_partial_detects_the_format(tmp_path: Path) -> None:
    kvt_path = tmp_path / "t.kvt"
    kvt_path.write_text(kvt("skew a b 5", "batch {", "block 1 victim", "block 2 victim", "}"))
    t = read_partial(kvt_path, None, SPEC, skews=[parse_skew_option("c:d:1")])
    assert t.skews == (Skew("a", "b", 5, 2, 1), Skew("c", "d", 1))
    assert t.batches() == [(0, 2, ("unordered_batch", 1))]
    assert t.events[0].line == 4
    jsonl_path = tmp_path / "t.jsonl"
    jsonl_path.write_bytes(_jsonl({"event": "allocation_victim_selected", "physical_block_id": 1,
                                   "kv_batch_seq": 0}).getvalue())
    with open(jsonl_path, "rb") as fh:
        t = read_partial(fh, "t.jsonl", SPEC, skews=(Skew("a", "b", 1),))
    assert [e.fields for e in t.events] == [{"physical_block_id": 1, "kv_batch_seq": 0}]
    assert t.skews == (Skew("a", "b", 1),)
    # a stream without peek (BytesIO), and the format given explicitly
    t = read_partial(io.BytesIO(kvt_path.read_bytes()), "x", SPEC, input_format="kvt")
    assert len(t.events) == 2


def test_read_partial_errors(tmp_path: Path) -> None:
    kvt_path = tmp_path / "t.kvt"
    kvt_path.write_text(kvt("block 1 victim", "skew a b 5"))
    with pytest.raises(InputError) as info:
        read_partial(kvt_path, None, SPEC, skews=[Skew("b", "a", 1)])
    assert (info.value.file, info.value.line, info.value.column) == (str(kvt_path), 3, 1)
    assert "declared both here and by the caller" in info.value.message
    with pytest.raises(ValueError, match="given two skews"):
        read_partial(kvt_path, None, SPEC, skews=[Skew("c", "d", 1), Skew("d", "c", 1)])
    for data, words in [(b"", "empty trace"), (b"  \n", "empty trace"),
                        (b"hello\n", "cannot detect the trace format")]:
        with pytest.raises(InputError, match=words) as info:
            read_partial(io.BytesIO(data), "x", SPEC)
        assert (info.value.line, info.value.column) == (1, 1)
    with pytest.raises(InputError, match="unknown input format 'csv'"):
        read_partial(io.BytesIO(b"kvtrace 1\n"), "x", SPEC, input_format="csv")
    with pytest.raises(InputError) as info:  # .kvt errors keep their location
        read_partial(io.BytesIO(kvt("batch {").encode()), "x", SPEC)
    assert (info.value.file, info.value.line, info.value.column) == ("x", 2, 1)
    with pytest.raises(InputError) as info:  # bad UTF-8 is located, never a traceback
        read_partial(io.BytesIO(b"kvtrace 1\nblock 1 vict\xffim\n"), "x", SPEC)
    assert (info.value.line, info.value.column) == (2, 13)


def test_the_docs_example_reads() -> None:
    doc = (SRC.parents[1] / "docs" / "kvt.md").read_text()
    section = doc[doc.index("## Partial order: batch and skew"):]
    example = section.split("```")[1].removeprefix("\n")
    t = read(example)
    assert t.skews == (Skew("sched", "kv", 2_000_000, 2, 1),)
    assert [e.get("unordered_batch") for e in t.events] == [None, 1, 1, None]
    assert [t.source_of(i) for i in range(4)] == ["sched", "kv", "kv", "sched"]
    assert t.batches() == [(1, 3, ("unordered_batch", 1))]
