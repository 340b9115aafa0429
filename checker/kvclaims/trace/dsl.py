"""Read .kvt traces (spec/trace.lark) into :class:`Event` streams (docs/model.md §5).

Adapts the human-written trace language to the reference telemetry: a parsed line's subject and
verb name an event of spec/events.toml, its keys are kvt aliases of spec/fields.toml (unknown keys
are kept as written), the ID position fills the subject's id field. Every event is validated
against the spec; any problem is an :class:`InputError` with file:line:column. Reading streams one
line at a time. The fast parser is used by default; the Lark parser is the reference and explains
every rejected line.

Partial order (docs/kvt.md): events inside a `batch { }` block get the spec's block field
(`unordered_batch`), numbered 1, 2, 3 ... in file order; `skew A B DELTA_NS` lines become
:class:`Skew` declarations, collected when the caller passes a list (or by read_partial_kvt).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import IO, Any, Callable, NamedTuple

from kvclaims import spec as spec_mod
from kvclaims.spec import Spec, SpecError
from kvclaims.trace.kvt_fast import (
    NOT_PLAIN,
    PLAIN_NAMES,
    PLAIN_VALUES,
    parse_raw_fast,
    plain_name,
    plain_value,
)
from kvclaims.trace.kvt_syntax import (
    RawBatchClose,
    RawBatchOpen,
    RawEvent,
    RawHeader,
    RawLine,
    SyntaxProblem,
    parse_raw_lark,
    terminal_literal,
    terminal_regex,
)
from kvclaims.trace.model import Event, InputError, PartialTrace, Skew
from kvclaims.trace.validate import Validator

MAX_LINE_BYTES = 1 << 20
KVT_VERSION = 1
# Telemetry names the .kvt spelling itself depends on (the spec tables have no column for them):
# the JSON key holding the event name, and the field the `@N` prefix carries.
EVENT_KEY = "event"
SEQUENCE_FIELD = "event_sequence"
ABSENT_ID = "-"

Source = str | os.PathLike[str] | Iterable[str] | Iterable[bytes] | IO[bytes] | IO[str]


class Header(NamedTuple):
    version: int
    line: int


class BatchOpen(NamedTuple):
    """A `batch {` line."""

    line: int
    column: int


class BatchClose(NamedTuple):
    """A `}` line."""

    line: int
    column: int


# What one line says once read: an event, the header, a partial-order line, or nothing.
Line = Event | Header | BatchOpen | BatchClose | Skew | None


class _Vocabulary:
    """The spec's .kvt spellings, compiled for per-line lookups."""

    def __init__(self, spec: Spec):
        if SEQUENCE_FIELD not in spec.fields:
            raise SpecError(f"the .kvt `@N` prefix needs field {SEQUENCE_FIELD} in fields.toml")
        self.validator = Validator(spec)
        self.subjects = dict(spec.subjects)
        self.events = {(e.subject, e.verb): e.name for e in spec.events.values()}
        self.verbs = {s: sorted(e.verb for e in spec.events.values() if e.subject == s)
                      for s in self.subjects}
        self.field_of_key = {f.kvt: f.name for f in spec.fields.values()}
        self.alias_of_field = {f.name: f.kvt for f in spec.fields.values() if f.kvt != f.name}
        self.int_id = {s: bool(f) and spec.fields[f].type == "int" for s, f in self.subjects.items()}
        self.int_re = terminal_regex("INT")
        # Plain (unquoted) key → field name; None marks a field name written instead of its alias.
        self.key_map: dict[str, str | None] = dict(self.field_of_key)
        for key in self.alias_of_field:
            if self.field_of_key.get(key, key) == key:
                self.key_map[key] = None
        # For plain lines (`_plain_event`): subject → verb → event, for NAME-shaped words only,
        # and the key map with every key that would be an error (alias, `event`) mapped to None.
        name_re = terminal_regex("NAME")
        keywords = {terminal_literal(k) for k in ("KVTRACE", "BATCH", "SKEW")}
        self.plain_events: dict[str, dict[str, str]] = {}
        for (subject, verb), kind in self.events.items():
            if subject in self.subjects and subject not in keywords and name_re.fullmatch(subject) \
                    and name_re.fullmatch(verb):
                self.plain_events.setdefault(subject, {})[verb] = kind
        self.plain_key_map = dict(self.key_map)
        self.plain_key_map[EVENT_KEY] = None
        for key, name in self.key_map.items():
            if name == EVENT_KEY:
                self.plain_key_map[key] = None
        self.bare_re = terminal_regex("BARE")


@lru_cache(maxsize=None)
def _vocabulary(spec: Spec) -> _Vocabulary:
    return _Vocabulary(spec)


def _plain_vocabulary(spec: Spec) -> _Vocabulary | None:
    """The vocabulary for `_plain_event`, or None when it cannot be built: then the fast path is
    off and the error surfaces where the parsers need the vocabulary (at the first event)."""
    try:
        return _vocabulary(spec)
    except Exception:
        return None


def _event(raw: RawEvent, text: str, lineno: int, file: str, voc: _Vocabulary) -> Event:
    def fail(column: int, message: str) -> InputError:
        return InputError(file, lineno, column, message)

    if raw.errors:
        raise fail(*min(raw.errors))
    id_field = voc.subjects.get(raw.subject)
    if id_field is None:
        raise fail(raw.subject_column,
                   f"unknown subject {raw.subject!r}; expected one of: {', '.join(sorted(voc.subjects))}")
    kind = voc.events.get((raw.subject, raw.verb))
    if kind is None:
        raise fail(raw.verb_column, f"subject {raw.subject!r} has no verb {raw.verb!r}; "
                                    f"expected one of: {', '.join(voc.verbs[raw.subject])}")
    fields: dict[str, Any] = {}
    if raw.seq is not None:
        fields[SEQUENCE_FIELD] = raw.seq
    id_text = raw.id_text
    if raw.id_quoted or id_text != ABSENT_ID:
        if not id_field:
            raise fail(raw.id_column, f"subject {raw.subject!r} takes no ID; write {ABSENT_ID}")
        if voc.int_id[raw.subject]:
            if raw.id_quoted or not (id_text.isdigit() and id_text.isascii()
                                     or voc.int_re.fullmatch(id_text) is not None):
                raise fail(raw.id_column, f"the ID of {raw.subject!r} is {id_field} and must be an "
                                          f"integer, got {id_text!r}")
            fields[id_field] = int(id_text)
        else:
            fields[id_field] = id_text
    key_map = voc.key_map
    for key, quoted, column, value in raw.pairs:
        if quoted:
            name = key
        else:
            name = key_map.get(key, key)
            if name is None:
                raise fail(column, f"write {key} as {voc.alias_of_field[key]}")
        if name == EVENT_KEY:
            raise fail(column, f"{EVENT_KEY!r} is given by SUBJECT and VERB, not as a field")
        if name in fields:
            raise fail(column, f"field {name} given twice")
        fields[name] = value
    problem = voc.validator.check(kind, fields)
    if problem is not None:
        name, message = problem
        where = _columns(raw, id_field, voc).get(
            name, raw.id_column if name == id_field else raw.verb_column)
        raise fail(where, message)
    return Event(kind, fields, lineno, 1, text)


def _plain_event(line: str, lineno: int, voc: _Vocabulary) -> Event | None:
    """The event of a plain line, `SUBJECT ID VERB key=value ...` one space apart with unquoted
    words only, when it is well-formed; None for any other line (the parsers then say what it
    is). Equal to parsing and `_event` by construction (every word is checked against the same
    terminals) and by tests/trace/test_fastpath.py through parse_line_fast."""
    toks = line.split(" ")
    if len(toks) < 3:
        return None
    subject, id_text, verb = toks[0], toks[1], toks[2]
    verbs = voc.plain_events.get(subject)
    if verbs is None:
        return None
    kind = verbs.get(verb)
    if kind is None:
        return None
    fields: dict[str, Any] = {}
    if id_text != ABSENT_ID:
        id_field = voc.subjects[subject]
        if not id_field:
            return None
        if voc.int_id[subject]:
            if not (id_text.isdigit() and id_text.isascii()):
                if voc.int_re.fullmatch(id_text) is None:
                    return None
            try:
                fields[id_field] = int(id_text)
            except ValueError:
                return None
        elif voc.bare_re.fullmatch(id_text) is None:
            return None
        else:
            fields[id_field] = id_text
    names = PLAIN_NAMES
    values = PLAIN_VALUES
    key_map = voc.plain_key_map
    for tok in toks[3:]:
        key, eq, text = tok.partition("=")
        if not eq or key not in names and not plain_name(key):
            return None
        name = key_map.get(key, key)
        if name is None:
            return None
        value = values.get(text, NOT_PLAIN)
        if value is NOT_PLAIN:
            value = plain_value(text)
            if value is NOT_PLAIN:
                return None
        fields[name] = value
    if len(fields) != len(toks) - 3 + (id_text != ABSENT_ID):
        return None  # a field given twice
    if voc.validator.check(kind, fields) is not None:
        return None
    return Event(kind, fields, lineno, 1, line)


def _columns(raw: RawEvent, id_field: str, voc: _Vocabulary) -> dict[str, int]:
    """Field name → column of a well-formed event's line (for a validation error)."""
    columns: dict[str, int] = {}
    if raw.seq is not None:
        columns[SEQUENCE_FIELD] = raw.seq_column
    if raw.id_quoted or raw.id_text != ABSENT_ID:
        columns[id_field] = raw.id_column
    for key, quoted, column, _ in raw.pairs:
        columns[key if quoted else voc.field_of_key.get(key, key)] = column
    return columns


def _finish(raw: RawLine, line: str, lineno: int, file: str, spec: Spec | None) -> Line:
    if raw is None:
        return None
    if isinstance(raw, RawEvent):
        return _event(raw, line, lineno, file, _vocabulary(spec or spec_mod.load()))
    if isinstance(raw, RawHeader):
        if raw.errors:
            raise InputError(file, lineno, *min(raw.errors))
        return Header(raw.version, lineno)
    if isinstance(raw, RawBatchOpen):
        return BatchOpen(lineno, raw.column)
    if isinstance(raw, RawBatchClose):
        return BatchClose(lineno, raw.column)
    if raw.errors:
        raise InputError(file, lineno, *min(raw.errors))
    if raw.source_a == raw.source_b:
        raise InputError(file, lineno, raw.source_b_column,
                         f"a skew relates two different sources, got {raw.source_a!r} twice")
    return Skew(raw.source_a, raw.source_b, raw.delta_ns, lineno, raw.column)


def parse_line_lark(line: str, lineno: int, file: str, spec: Spec | None = None) -> Line:
    """The reference: one line through the Lark LALR parser (spec/trace.lark)."""
    try:
        raw = parse_raw_lark(line)
    except SyntaxProblem as p:
        raise InputError(file, lineno, p.column, p.message) from None
    return _finish(raw, line, lineno, file, spec)


def parse_line_fast(line: str, lineno: int, file: str, spec: Spec | None = None) -> Line:
    """The accelerator; a line it rejects goes to the reference parser, which explains it."""
    voc = _plain_vocabulary(spec or spec_mod.load())
    event = _plain_event(line, lineno, voc) if voc is not None else None
    if event is not None:
        return event
    raw = parse_raw_fast(line)
    if raw is False:
        return parse_line_lark(line, lineno, file, spec)
    return _finish(raw, line, lineno, file, spec)  # type: ignore[arg-type]


def _lines(source: Source, file: str, limit: int) -> Iterator[tuple[int, str]]:
    """(line number, text without its line ending); never holds more than one line."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fh:
            yield from _binary_lines(fh, file, limit)
        return
    if isinstance(source, (io.BufferedIOBase, io.RawIOBase)):
        yield from _binary_lines(source, file, limit)  # type: ignore[arg-type]
        return
    if isinstance(source, io.TextIOBase):
        yield from _text_lines(source, file, limit)
        return
    # An iterable of lines is read as a file when its lines carry their newlines: a last line
    # without one, after lines with one, is truncated (lines given without newlines are not).
    ended = False
    held: tuple[int, str, bool] | None = None
    for lineno, item in enumerate(source, 1):  # type: ignore[arg-type]
        if isinstance(item, bytes):
            if len(item.rstrip(b"\r\n")) > limit:
                raise _too_long(file, lineno, limit)
            text, newline = _decode(item, file, lineno), item.endswith(b"\n")
        else:
            text = item.rstrip("\n").removesuffix("\r")
            if len(text) > limit // 4 and len(text.encode("utf-8", "surrogatepass")) > limit:
                raise _too_long(file, lineno, limit)
            newline = item.endswith("\n")
        if held is not None:
            yield held[0], held[1]
        ended = ended or newline
        held = (lineno, text, newline)
    if held is not None:
        yield held[0], (_Cut(held[1]) if ended and not held[2] else held[1])


def _text_lines(fh: io.TextIOBase, file: str, limit: int) -> Iterator[tuple[int, str]]:
    # As iterating over `fh`, but a line is read at most `limit` + 2 characters far: a line
    # that long has more than `limit` bytes, whatever its characters (and "\r\n" ending).
    readline = fh.readline
    size = limit + 2
    lineno = 0
    while True:
        item = readline(size)
        if not item:
            return
        lineno += 1
        text = item.rstrip("\n").removesuffix("\r")
        if len(text) > limit // 4 and len(text.encode("utf-8", "surrogatepass")) > limit:
            raise _too_long(file, lineno, limit)
        yield lineno, (text if item.endswith("\n") else _Cut(text))


class _Cut(str):
    """The text of a last line that has no newline after it (docs/kvt.md "Truncated last
    line"). The line is parsed as usual, so its own errors are reported first; when it parses
    (an event, a header, a batch or skew line), read_kvt raises :func:`_truncated` instead of
    using it: the writer was cut mid-line, so the event may be cut mid-value (`required=6` of
    `required=60`) and cannot be trusted. Blank and comment lines are not truncation."""


def _truncated(file: str, lineno: int, text: str) -> InputError:
    return InputError(file, lineno, len(text) + 1,
                      "truncated last line: the file ends inside this line (no newline after "
                      "it), so the event may be cut; a .kvt file ends with a newline")


def _binary_lines(fh: IO[bytes], file: str, limit: int) -> Iterator[tuple[int, str]]:
    readline = fh.readline
    lineno = 0
    while True:
        raw = readline(limit + 2)  # content plus "\r\n"; a longer line is cut here, not read
        if not raw:
            return
        lineno += 1
        content = raw.rstrip(b"\n").removesuffix(b"\r") if raw.endswith(b"\n") else raw
        if len(content) > limit:
            raise _too_long(file, lineno, limit)
        text = _decode(content, file, lineno)
        yield lineno, (_Cut(text) if content is raw else text)


def _decode(raw: bytes, file: str, lineno: int) -> str:
    try:
        return raw.decode("utf-8").rstrip("\n").removesuffix("\r")
    except UnicodeDecodeError as e:
        column = len(raw[: e.start].decode("utf-8", "replace")) + 1
        raise InputError(file, lineno, column, "line is not valid UTF-8") from None


def _too_long(file: str, lineno: int, limit: int) -> InputError:
    return InputError(file, lineno, 1, f"line exceeds {limit} bytes")


class _Order:
    """The partial-order lines of one .kvt file as read (docs/kvt.md): `batch { }` blocks,
    numbered 1, 2, 3 ... in file order, whose events get the spec's block field, and skew
    declarations. Decides the errors a single line cannot show (nesting, an unmatched `}`, a
    block left open or empty, a skew declared twice, a written batch number that would merge
    with a neighbouring block)."""

    def __init__(self, file: str, spec: Spec, skews: list[Skew] | None):
        self.file = file
        self.spec = spec
        self.field = spec.order.block_field
        self.skews = skews
        self.declared: dict[frozenset[str], int] = {}  # source pair → line of its declaration
        self.blocks = 0  # blocks opened so far: the open block is number `blocks`
        self.open_at: BatchOpen | None = None
        self.events_in = 0  # events read in the open block
        self.closed = 0  # number of the block closed just before, until the next event

    def event(self, event: Event) -> bool:
        """Place `event` (read inside a block or just after one); True while events need it."""
        fields = event.fields
        if self.open_at is not None:
            if self.field in fields:
                raise self._at_field(event, f"{self.field} is given by the enclosing `batch {{` "
                                            f"block (number {self.blocks}); do not write it "
                                            f"inside the block")
            fields[self.field] = self.blocks
            self.events_in += 1
            return True
        n, self.closed = self.closed, 0
        if type(fields.get(self.field)) is int and fields[self.field] == n:
            raise self._at_field(event, f"{self.field}={n} would join batch block {n} just "
                                        f"before it (consecutive events with one {self.field} "
                                        f"are one batch); move the event into the block or "
                                        f"write another number")
        return False

    def line(self, item: BatchOpen | BatchClose | Skew, last: Event | None) -> bool:
        """Take a partial-order line; True while events need :meth:`event`."""
        file = self.file
        if isinstance(item, Skew):
            pair = item.sources
            if pair in self.declared:
                raise InputError(file, item.line, item.column,
                                 f"skew between {item.source_a} and {item.source_b} is already "
                                 f"declared at line {self.declared[pair]}")
            self.declared[pair] = item.line
            if self.skews is not None:
                self.skews.append(item)
        elif isinstance(item, BatchOpen):
            if self.open_at is not None:
                raise InputError(file, item.line, item.column,
                                 f"batch blocks do not nest (the block opened at line "
                                 f"{self.open_at.line} is still open)")
            self.blocks += 1
            self.closed = 0
            n = self.blocks
            if last is not None and type(last.fields.get(self.field)) is int \
                    and last.fields[self.field] == n:
                raise InputError(file, item.line, item.column,
                                 f"batch block {n} would join the event before it (line "
                                 f"{last.line}, {self.field}={n}): consecutive events with one "
                                 f"{self.field} are one batch; move that event into the block "
                                 f"or give it another number")
            self.open_at, self.events_in = item, 0
        else:
            if self.open_at is None:
                raise InputError(file, item.line, item.column, "`}` closes no `batch {` block")
            if self.events_in == 0:
                raise InputError(file, self.open_at.line, self.open_at.column,
                                 "empty batch block: a batch holds at least one event")
            self.open_at, self.closed = None, self.blocks
        return self.open_at is not None or self.closed != 0

    def end(self) -> None:
        if self.open_at is not None:
            raise InputError(self.file, self.open_at.line, self.open_at.column,
                             "batch block is not closed: `}` is missing before the end of the "
                             "trace")

    def _at_field(self, event: Event, message: str) -> InputError:
        column = 1
        text = event.text if isinstance(event.text, str) else ""
        raw = parse_raw_fast(text)
        if type(raw) is RawEvent:
            voc = _vocabulary(self.spec)
            column = _columns(raw, voc.subjects.get(raw.subject, ""), voc).get(self.field, 1)
        return InputError(self.file, event.line, column, message)


def read_kvt(source: Source, file: str | None = None, *, spec: Spec | None = None,
             max_line_bytes: int = MAX_LINE_BYTES, fast: bool = True,
             skews: list[Skew] | None = None) -> Iterator[Event]:
    """Stream the events of a .kvt trace: a path, a binary/text file, or an iterable of lines.

    Events inside `batch { }` blocks carry the block's number in the spec's block field. The
    trace's skew declarations are appended to `skews` when given, and otherwise only checked:
    a caller that decides order must collect them (or use :func:`read_partial_kvt`)."""
    if file is None:
        file = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<kvt>"
    spec = spec or spec_mod.load()
    parse: Callable[[str, int, str, Spec | None], Line] = (
        parse_line_fast if fast else parse_line_lark)
    header = terminal_literal("KVTRACE")
    seen_header = False
    voc: _Vocabulary | None = None  # built at the first event, as _finish does
    plain = _plain_vocabulary(spec) if fast else None
    order = _Order(file, spec, skews)
    watch = False  # whether events must pass through `order` (inside a block or just after)
    last: Event | None = None
    for lineno, line in _lines(source, file, max_line_bytes):
        if not line or line[0] in " \t#":
            stripped = line.lstrip(" \t")
            if not stripped or stripped[0] == "#":
                continue
        if fast:
            # parse_line_fast, unrolled for the common case of an event line
            if plain is not None:
                item: Line = _plain_event(line, lineno, plain)
                if item is not None:
                    if not seen_header:
                        raise _missing_header(file, header)
                    if type(line) is _Cut:
                        raise _truncated(file, lineno, line)
                    if watch:
                        watch = order.event(item)  # type: ignore[arg-type]
                    last = item  # type: ignore[assignment]
                    yield item  # type: ignore[misc]
                    continue
            raw = parse_raw_fast(line)
            if type(raw) is RawEvent:
                if voc is None:
                    voc = _vocabulary(spec)
                item = _event(raw, line, lineno, file, voc)
                if not seen_header:
                    raise _missing_header(file, header)
                if type(line) is _Cut:
                    raise _truncated(file, lineno, line)
                if watch:
                    watch = order.event(item)
                last = item
                yield item
                continue
            if raw is False:
                item = parse_line_lark(line, lineno, file, spec)
            else:
                item = _finish(raw, line, lineno, file, spec)  # type: ignore[arg-type]
        else:
            item = parse(line, lineno, file, spec)
        if type(line) is _Cut and item is not None:
            raise _truncated(file, lineno, line)
        if isinstance(item, Header):
            if seen_header:
                raise InputError(file, lineno, 1, f"second header; `{header}` opens the trace once")
            if item.version != KVT_VERSION:
                raise InputError(file, lineno, 1, f"{header} {item.version} is not known; this "
                                                  f"reader reads {header} {KVT_VERSION}", unknown=True)
            seen_header = True
        elif item is not None:
            if not seen_header:
                raise _missing_header(file, header)
            if isinstance(item, Event):
                if watch:
                    watch = order.event(item)
                last = item
                yield item
            else:
                watch = order.line(item, last)
    if not seen_header:
        raise _missing_header(file, header)
    order.end()


def read_partial_kvt(source: Source, file: str | None = None, *, spec: Spec | None = None,
                     max_line_bytes: int = MAX_LINE_BYTES, fast: bool = True) -> PartialTrace:
    """A whole .kvt trace with its batches and skew declarations (docs/kvt.md)."""
    skews: list[Skew] = []
    events = tuple(read_kvt(source, file, spec=spec, max_line_bytes=max_line_bytes, fast=fast,
                            skews=skews))
    return PartialTrace(events, tuple(skews))


def _missing_header(file: str, header: str) -> InputError:
    return InputError(file, 1, 1, f"missing header: the first line must be `{header} {KVT_VERSION}`")
