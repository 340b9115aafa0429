"""Read .kvt traces (spec/trace.lark) into :class:`Event` streams (MODEL.md §5).

Adapts the human-written trace language to the reference telemetry: a parsed line's subject and
verb name an event of spec/events.toml, its keys are kvt aliases of spec/fields.toml (unknown keys
are kept as written), the ID position fills the subject's id field. Every event is validated
against the spec; any problem is an :class:`InputError` with file:line:column. Reading streams one
line at a time. The fast parser is used by default; the Lark parser is the reference and explains
every rejected line.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import IO, Any, Callable, NamedTuple

from kvclaims import spec as spec_mod
from kvclaims.spec import Spec, SpecError
from kvclaims.trace.kvt_fast import parse_raw_fast
from kvclaims.trace.kvt_syntax import (
    RawEvent,
    RawHeader,
    RawLine,
    SyntaxProblem,
    parse_raw_lark,
    terminal_literal,
    terminal_regex,
)
from kvclaims.trace.model import Event, InputError
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


@lru_cache(maxsize=None)
def _vocabulary(spec: Spec) -> _Vocabulary:
    return _Vocabulary(spec)


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
    columns: dict[str, int] = {}
    if raw.seq is not None:
        fields[SEQUENCE_FIELD] = raw.seq
        columns[SEQUENCE_FIELD] = raw.seq_column
    if raw.id_quoted or raw.id_text != ABSENT_ID:
        if not id_field:
            raise fail(raw.id_column, f"subject {raw.subject!r} takes no ID; write {ABSENT_ID}")
        if voc.int_id[raw.subject]:
            if raw.id_quoted or voc.int_re.fullmatch(raw.id_text) is None:
                raise fail(raw.id_column, f"the ID of {raw.subject!r} is {id_field} and must be an "
                                          f"integer, got {raw.id_text!r}")
            fields[id_field] = int(raw.id_text)
        else:
            fields[id_field] = raw.id_text
        columns[id_field] = raw.id_column
    for key, quoted, column, value in raw.pairs:
        name = key
        if not quoted:
            name = voc.field_of_key.get(key, key)
            if name == key and key in voc.alias_of_field:
                raise fail(column, f"write {key} as {voc.alias_of_field[key]}")
        if name == EVENT_KEY:
            raise fail(column, f"{EVENT_KEY!r} is given by SUBJECT and VERB, not as a field")
        if name in fields:
            raise fail(column, f"field {name} given twice")
        fields[name] = value
        columns[name] = column
    problem = voc.validator.check(kind, fields)
    if problem is not None:
        name, message = problem
        where = columns.get(name, raw.id_column if name == id_field else raw.verb_column)
        raise fail(where, message)
    return Event(kind, fields, lineno, 1, text)


def _finish(raw: RawLine, line: str, lineno: int, file: str, spec: Spec | None) -> Event | Header | None:
    if raw is None:
        return None
    if isinstance(raw, RawHeader):
        if raw.errors:
            raise InputError(file, lineno, *min(raw.errors))
        return Header(raw.version, lineno)
    return _event(raw, line, lineno, file, _vocabulary(spec or spec_mod.load()))


def parse_line_lark(line: str, lineno: int, file: str, spec: Spec | None = None) -> Event | Header | None:
    """The reference: one line through the Lark LALR parser (spec/trace.lark)."""
    try:
        raw = parse_raw_lark(line)
    except SyntaxProblem as p:
        raise InputError(file, lineno, p.column, p.message) from None
    return _finish(raw, line, lineno, file, spec)


def parse_line_fast(line: str, lineno: int, file: str, spec: Spec | None = None) -> Event | Header | None:
    """The accelerator; a line it rejects goes to the reference parser, which explains it."""
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
    for lineno, item in enumerate(source, 1):  # type: ignore[arg-type]
        if isinstance(item, bytes):
            if len(item.rstrip(b"\r\n")) > limit:
                raise _too_long(file, lineno, limit)
            yield lineno, _decode(item, file, lineno)
        else:
            text = item.rstrip("\n").removesuffix("\r")
            if len(text) > limit // 4 and len(text.encode("utf-8", "surrogatepass")) > limit:
                raise _too_long(file, lineno, limit)
            yield lineno, text


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
        yield lineno, _decode(content, file, lineno)


def _decode(raw: bytes, file: str, lineno: int) -> str:
    try:
        return raw.decode("utf-8").rstrip("\n").removesuffix("\r")
    except UnicodeDecodeError as e:
        column = len(raw[: e.start].decode("utf-8", "replace")) + 1
        raise InputError(file, lineno, column, "line is not valid UTF-8") from None


def _too_long(file: str, lineno: int, limit: int) -> InputError:
    return InputError(file, lineno, 1, f"line exceeds {limit} bytes")


def read_kvt(source: Source, file: str | None = None, *, spec: Spec | None = None,
             max_line_bytes: int = MAX_LINE_BYTES, fast: bool = True) -> Iterator[Event]:
    """Stream the events of a .kvt trace: a path, a binary/text file, or an iterable of lines."""
    if file is None:
        file = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<kvt>"
    spec = spec or spec_mod.load()
    parse: Callable[[str, int, str, Spec | None], Event | Header | None] = (
        parse_line_fast if fast else parse_line_lark)
    header = terminal_literal("KVTRACE")
    seen_header = False
    for lineno, line in _lines(source, file, max_line_bytes):
        stripped = line.lstrip(" \t")
        if not stripped or stripped[0] == "#":
            continue
        item = parse(line, lineno, file, spec)
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
            yield item
    if not seen_header:
        raise _missing_header(file, header)


def _missing_header(file: str, header: str) -> InputError:
    return InputError(file, 1, 1, f"missing header: the first line must be `{header} {KVT_VERSION}`")
