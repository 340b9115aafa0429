"""Detect a trace's format from its first bytes (MODEL.md §5 inputs): .kvt, JSON Lines, or a
recorded vLLM KV event stream (`vllm`: a msgpack array, decided by kvclaims.kvstream).

Decides only which importer to use; `--input-format` overrides it.
"""

from __future__ import annotations

from kvclaims.trace.model import InputError

FORMATS = ("kvt", "jsonl")
STREAM_FORMATS = ("vllm",)  # KV event record files: need a claim manifest (--claims)


def detect(head: bytes) -> str | None:
    """Return the format of a trace that starts with `head`, or None when unknown."""
    from kvclaims.trace.kv_records import looks_like_records

    if looks_like_records(head):
        return "vllm"
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
