"""Import the reference telemetry JSON Lines (MODEL.md §5) into a stream of events.

Adapts both layouts of the corpus: the reference telemetry (`schema_version: 1`, `timestamp_ns`)
and the connector layout (`event_sequence` from 0, `monotonic_ns`, no `schema_version`). It decides
only well-formedness: each line is one JSON object with a string `event`, known fields have their
spec types, required fields are present. Order and gaps are the checker's concern (R-stream).
"""

from __future__ import annotations

import re
from typing import BinaryIO, Iterator

import msgspec

from kvclaims.spec import Spec
from kvclaims.trace.model import Event, InputError
from kvclaims.trace.validate import Validator

SUPPORTED_SCHEMA_VERSIONS = frozenset({1})
DEFAULT_MAX_LINE_BYTES = 1 << 20

_BYTE_RE = re.compile(r"\(byte (\d+)\)")
_decode = msgspec.json.Decoder().decode


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
) -> Iterator[Event]:
    """Yield events line by line; raise InputError at the first malformed line."""
    validate = Validator(spec).check
    lineno = 0
    limit = max_line_bytes + 1
    readline = fh.readline
    decode = _decode
    supported = SUPPORTED_SCHEMA_VERSIONS
    while True:
        raw = readline(limit)
        if not raw:
            break
        lineno += 1
        if len(raw) > max_line_bytes and raw[-1:] != b"\n":
            raise InputError(file, lineno, max_line_bytes + 1,
                             f"line exceeds {max_line_bytes} bytes (raise --max-line-bytes to read it)")
        try:
            obj = decode(raw)
        except msgspec.DecodeError as err:
            if not raw.strip():
                continue  # blank lines are allowed between events
            col, msg = _column_of(err)
            if "truncated" in msg.lower():
                col = len(raw.rstrip(b"\r\n")) + 1
                if not raw.endswith(b"\n"):
                    msg = "truncated last line: " + msg
            raise InputError(file, lineno, col, f"invalid JSON: {msg}") from None
        if type(obj) is not dict:
            raise InputError(file, lineno, 1, f"expected a JSON object, got {type(obj).__name__}")
        kind = obj.pop("event", None)
        if type(kind) is not str or not kind:
            raise InputError(file, lineno, 1, "missing string field 'event'")
        bad = validate(kind, obj)
        if bad is not None:
            field, message = bad
            idx = raw.find(b'"' + field.encode() + b'"')
            raise InputError(file, lineno, idx + 1 if idx >= 0 else 1, message)
        version = obj.get("schema_version")
        if version is not None and version not in supported:
            raise InputError(file, lineno, raw.find(b'"schema_version"') + 1,
                             f"unknown schema_version {version!r} (kvclaims reads version 1)",
                             unknown=True)
        yield Event(kind, obj, lineno, 1, raw)

