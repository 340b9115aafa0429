"""Import the reference telemetry JSON Lines (docs/model.md §5) into a stream of events.

Adapts both layouts of the corpus: the reference telemetry (`schema_version: 1`, `timestamp_ns`)
and the connector layout (`event_sequence` from 0, `monotonic_ns`, no `schema_version`). It decides
only well-formedness: each line is one JSON object with a string `event`, known fields have their
spec types, ranges and closed vocabularies, required fields are present, no key is undeclared
(kvclaims.trace.validate) and no key is written twice in one object (msgspec would keep the last
silently: `_duplicate_key`, an exact test that costs one byte count on most lines). Order and gaps
are the checker's concern (R-stream).
Partial order (issue 4): batch keys (`unordered_batch`, `kv_batch_seq`) are ordinary int fields;
skew declarations have no JSONL spelling and come from the caller (read_partial_jsonl).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from io import BytesIO
from operator import itemgetter
from typing import Any, BinaryIO, Iterator

import msgspec

from kvclaims.spec import Spec
from kvclaims.trace.jsonl_schema import EVENT_KEY, typed_decoder
from kvclaims.trace.model import Event, InputError, PartialTrace, Skew
from kvclaims.trace.validate import Validator

SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
DEFAULT_MAX_LINE_BYTES = 1 << 20
_KNOWN_SHAPES = 4096  # shapes remembered with their tests (a speed limit, not a cap)
CHUNK_BYTES = 1 << 20

_BYTE_RE = re.compile(r"\(byte (\d+)\)")
_decode = msgspec.json.Decoder().decode
# Every JSON string of a line, in order (each match starts at an opening quote: matches are
# consumed left to right), with the colon after it when it is an object key.
_STRING_RE = re.compile(rb'"([^"\\]*(?:\\.[^"\\]*)*)"([ \t\r\n]*:)?')
# A key's closing quote, then blanks, then its colon (`"a" : 1`).
_SPACED_COLON_RE = re.compile(rb'"[ \t\r\n]+:')


def _column_of(err: msgspec.DecodeError) -> tuple[int, str]:
    msg = str(err)
    m = _BYTE_RE.search(msg)
    col = int(m.group(1)) + 1 if m else 1
    return col, _BYTE_RE.sub("", msg).strip()


def read_jsonl(
    fh: BinaryIO,
    file: str,
    spec: Spec,
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    typed: bool | None = None,
) -> Iterator[Event]:
    """Yield events line by line; raise InputError at the first malformed line.

    Reads chunks of up to CHUNK_BYTES and splits them into lines; at most one chunk plus one
    unfinished line of at most `max_line_bytes` is held, so a longer line is refused unread.

    A line may first be decoded against the spec's typed schema (kvclaims.trace.jsonl_schema):
    a line it accepts passes the field checks, so only the duplicate-key and schema-version tests
    remain for it; a line it refuses takes the reference path below (the shape-cached
    Validator), which decides and locates the error. Both give the same events and the same
    errors (tests/trace/test_jsonl_typed.py compares them). `typed` None (the default) uses the
    schema from the second chunk on (building it costs ~30 ms once, more than a small file
    gains), True from the first line, False never.
    """
    typed_decode = None
    want_typed = typed is not False
    spaced_colon = _SPACED_COLON_RE.search
    validator = Validator(spec)
    shapes_get = validator.shapes.get
    check_shape = validator.check_shape
    lineno = 0
    limit = max_line_bytes + 1  # a line with its newline
    read = getattr(fh, "read1", None) or fh.read
    decode = _decode
    decode_error = msgspec.DecodeError
    supported = SUPPORTED_SCHEMA_VERSIONS
    known: dict[tuple[Any, ...], tuple[Any, Any]] = {}  # shape -> (value tests, string fields)
    known_get = known.get
    tail = b""
    while True:
        chunk = read(CHUNK_BYTES)
        if want_typed and chunk and (typed or lineno > 0):
            want_typed = False
            checked = typed_decoder(spec)
            typed_decode = checked.decode if checked is not None else None
        if chunk:
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\n") + 1
            if cut == len(data):
                block, tail = data, b""
            else:
                block, tail = data[:cut], data[cut:]
            last = False
        else:
            block, tail, last = tail, b"", True  # the last line, without a newline
        for raw in BytesIO(block):
            lineno += 1
            if len(raw) > limit:
                raise _too_long(file, lineno, max_line_bytes)
            if typed_decode is not None:
                try:
                    typed_decode(raw)
                except (decode_error, UnicodeDecodeError):
                    pass  # the reference path below decides and locates the error
                else:
                    obj = decode(raw)
                    # Duplicate keys, exactly: the written keys are at most the `":` and `"  :`
                    # spellings when no backslash escapes a quote, and at least the decoded keys
                    # (every depth), themselves at least the top-level ones; so when the first
                    # count equals the last, no key is repeated. Otherwise the exact count.
                    keys = len(obj)
                    if raw.count(b":") != keys and (
                            b"\\" in raw or raw.count(b'":') != keys or spaced_colon(raw)):
                        dup = _duplicate_key(raw, obj)
                        if dup is not None:
                            raise InputError(file, lineno, dup[0], dup[1])
                    kind = obj.pop(EVENT_KEY)
                    version = obj.get("schema_version")
                    if version is not None and version not in supported:
                        raise _unknown_version(file, lineno, raw, version)
                    yield Event(kind, obj, lineno, 1, raw)
                    continue
            try:
                obj = decode(raw)
            except decode_error as err:
                if not raw.strip():
                    continue  # blank lines are allowed between events
                raise _invalid_json(file, lineno, raw, err) from None
            except UnicodeDecodeError:
                raise _not_utf8(file, lineno, raw) from None
            if type(obj) is not dict:
                raise InputError(file, lineno, 1, f"expected a JSON object, got {type(obj).__name__}")
            colons, keys = raw.count(b":"), len(obj)
            kind = obj.pop("event", None)
            if type(kind) is not str or not kind:
                raise InputError(file, lineno, 1, "missing string field 'event'")
            # Validator.check, with the tests of a shape seen valid run directly (one dict lookup
            # per line gives them and the shape's string fields, for the duplicate-key test)
            shape = (kind, *obj, *map(type, obj.values()))
            entry = known_get(shape)
            # Duplicate keys (msgspec keeps the last one silently). Every written key has a
            # colon after it, so a line with no more colons than decoded keys repeats none;
            # else the colons of the decoded strings are added (`_string_fields`), and only a
            # line that still has more colons is counted exactly.
            if colons != keys:
                strings = entry[1] if entry is not None else False
                if strings is False or b"\\" in raw or colons != keys + kind.count(":") + \
                        "".join(strings(obj)).count(":"):
                    dup = _duplicate_key(raw, {"event": kind, **obj})
                    if dup is not None:
                        raise InputError(file, lineno, dup[0], dup[1])
            if entry is None:
                bad = check_shape(kind, obj, shape, None)
                tests = shapes_get(shape)
                if bad is None and tests is not None and len(known) < _KNOWN_SHAPES:
                    entry = known[shape] = (tests, _string_fields(shape, len(obj)))
            else:  # the value tests of a shape seen valid (ranges, vocabularies, containers)
                bad = None
                for test in entry[0]:
                    if not test(obj):
                        bad = check_shape(kind, obj, shape, entry[0])
                        break
            if bad is not None:
                field, message = bad
                idx = raw.find(b'"' + field.encode() + b'"')
                raise InputError(file, lineno, idx + 1 if idx >= 0 else 1, message)
            version = obj.get("schema_version")
            if version is not None and version not in supported:
                raise _unknown_version(file, lineno, raw, version)
            yield Event(kind, obj, lineno, 1, raw)
        if last:
            return
        if len(tail) > max_line_bytes:  # the next line is already too long without its end
            raise _too_long(file, lineno + 1, max_line_bytes)


def read_partial_jsonl(
    fh: BinaryIO,
    file: str,
    spec: Spec,
    *,
    skews: Iterable[Skew] = (),
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> PartialTrace:
    """A whole JSON Lines trace as a :class:`PartialTrace`, with the caller's skews (e.g. from
    `--skew A:B:NS`, see kvclaims.trace.partial_input.parse_skew_option)."""
    events = tuple(read_jsonl(fh, file, spec, max_line_bytes=max_line_bytes))
    return PartialTrace(events, tuple(skews))


def _string_fields(shape: tuple[Any, ...], n: int) -> Any:
    """For a shape (kind, n keys, their n value types) without nested objects or lists: a
    function giving the event's string values, whose colons with the keys' own colons are
    all a line without a backslash may have besides one per key; False for other shapes.

    Exact: without a backslash every decoded string is its raw spelling, so the raw colons are
    at least one per written key plus the decoded strings' colons; as many as that means no
    key was written twice (a repeated key's dropped value can only add colons)."""
    keys, types = shape[1:1 + n], shape[1 + n:]
    if any(t is dict or t is list for t in types) or any(":" in k for k in keys):
        return False
    names = [k for k, t in zip(keys, types) if t is str]
    if not names:
        return lambda obj: ()
    get = itemgetter(*names)
    if len(names) == 1:
        return lambda obj: (get(obj),)
    return get


def _decoded_keys(value: Any) -> int:
    """Keys of `value`'s objects at any depth, as decoded (a repeated key counted once)."""
    n = 0
    if type(value) is dict:
        n = len(value)
        value = value.values()
    for v in value:
        t = type(v)
        if t is dict or t is list:
            n += _decoded_keys(v)
    return n


def _duplicate_key(raw: bytes, obj: dict[str, Any]) -> tuple[int, str] | None:
    """(column, message) of a key written twice in one object of the line, else None.

    Exact: the keys written (strings followed by a colon, at any depth) outnumber the keys
    decoded exactly when some object repeats a key. Without a backslash in the line a quote is
    always a string's delimiter, so every written key ends in `":` or `"`, blanks, `:`; counting
    those bounds the written keys from above (a string that starts with a colon adds one), and
    equality with the decoded keys settles it; otherwise the keys are counted by the string
    grammar. The repeated key is then named by a pairs-keeping parse (only on this error path)
    and located at its second spelling."""
    decoded = _decoded_keys(obj)
    if b"\\" not in raw and raw.count(b'":') + len(_SPACED_COLON_RE.findall(raw)) == decoded:
        return None
    keys = [m for m in _STRING_RE.finditer(raw) if m.group(2)]
    if len(keys) == decoded:
        return None
    seen: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [k for k, _ in items]
        for k in names:
            if names.count(k) > 1 and not seen:
                seen.append(k)
        return dict(items)

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except ValueError:
        pass
    name = seen[0] if seen else ""
    spellings = [m for m in keys if not seen or _unescape(m.group(1)) == name]
    at = spellings[1] if len(spellings) > 1 else (spellings[0] if spellings else None)
    column = len(raw[: at.start()].decode("utf-8", "replace")) + 1 if at is not None else 1
    return column, f"key {name!r} given twice in one object (JSON Lines keeps no duplicate keys)"


def _unescape(key: bytes) -> str:
    try:
        return json.loads(b'"' + key + b'"')  # type: ignore[no-any-return]
    except ValueError:
        return key.decode("utf-8", "replace")


def _unknown_version(file: str, lineno: int, raw: bytes, version: Any) -> InputError:
    return InputError(file, lineno, raw.find(b'"schema_version"') + 1,
                      f"unknown schema_version {version!r} (kvclaims reads version 1)",
                      unknown=True)


def _not_utf8(file: str, lineno: int, raw: bytes) -> InputError:
    """Invalid UTF-8 inside a JSON string: located at the first bad byte's character column."""
    try:
        raw.decode("utf-8")
        col = 1
    except UnicodeDecodeError as e:
        col = len(raw[: e.start].decode("utf-8", "replace")) + 1
    return InputError(file, lineno, col, "line is not valid UTF-8")


def _too_long(file: str, lineno: int, max_line_bytes: int) -> InputError:
    return InputError(file, lineno, max_line_bytes + 1,
                      f"line exceeds {max_line_bytes} bytes (raise --max-line-bytes to read it)")


def _invalid_json(file: str, lineno: int, raw: bytes, err: msgspec.DecodeError) -> InputError:
    col, msg = _column_of(err)
    if "truncated" in msg.lower():
        col = len(raw.rstrip(b"\r\n")) + 1
        if not raw.endswith(b"\n"):
            msg = "truncated last line: " + msg
    return InputError(file, lineno, col, f"invalid JSON: {msg}")
