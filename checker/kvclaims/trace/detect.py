"""Detect a trace's format from its first bytes (docs/model.md §5 inputs): .kvt, JSON Lines, or a
runtime's recorded KV event stream (`vllm`: a msgpack array; `dynamo`, `trtllm`, `lmcache`: JSON
Lines of their own shape, told apart by kvclaims.trace.formats; decided by kvclaims.kvstream).

Decides only which importer to use; `--input-format` overrides it. A UTF-8 byte-order mark at
the start of a file is skipped (`skip_bom`), with one note on stderr, in either format.
"""

from __future__ import annotations

import sys
from typing import BinaryIO

from kvclaims.trace.model import InputError

FORMATS = ("kvt", "jsonl")
# KV event streams of the runtimes (kvclaims.trace.formats): need a claim manifest (--claims)
STREAM_FORMATS = ("vllm", "sglang", "dynamo", "trtllm", "lmcache")
BOM = b"\xef\xbb\xbf"
_NOTED: set[str] = set()  # files whose mark was already reported (a check may read twice)


def skip_bom(fh: BinaryIO, file: str) -> bool:
    """Consume a UTF-8 byte-order mark at the start of `fh` (a buffered reader), saying so once
    on stderr; line and column numbers are unchanged (the mark is not part of any line)."""
    peek = getattr(fh, "peek", None)
    if peek is None or peek(len(BOM))[:len(BOM)] != BOM:
        return False
    fh.read(len(BOM))
    if file not in _NOTED:
        _NOTED.add(file)
        print(f"{file}: note: skipped a UTF-8 byte-order mark", file=sys.stderr)
    return True


def detect(head: bytes) -> str | None:
    """Return the format of a trace that starts with `head`, or None when unknown."""
    from kvclaims.trace import formats

    stream = formats.detect(head.removeprefix(BOM))
    if stream is not None:
        return stream
    for raw in head.removeprefix(BOM).splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith(b"{"):
            return "jsonl"
        if line.startswith(b"#") or line.startswith(b"kvtrace"):
            return "kvt"
        return None
    return None


def format_of(head: bytes, file: str, input_format: str | None = None) -> str:
    """The format to read `file` with (`--input-format` wins), or a located InputError."""
    fmt = input_format or detect(head)
    if fmt is None:
        if not head.strip():
            raise InputError(file, 1, 1, "empty trace: no events")
        raise InputError(file, 1, 1, "cannot detect the trace format (expected a `kvtrace 1` "
                         "header or JSON objects); use --input-format")
    return fmt
