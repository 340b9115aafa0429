"""Detect a trace's format from its first bytes (MODEL.md §5 inputs): .kvt, JSON Lines.

Decides only which importer to use; `--input-format` overrides it.
"""

from __future__ import annotations

from kvclaims.trace.model import InputError

FORMATS = ("kvt", "jsonl")


def detect(head: bytes) -> str | None:
    """Return the format of a trace that starts with `head`, or None when unknown."""
    for raw in head.splitlines():
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
