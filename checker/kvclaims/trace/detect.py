"""Detect a trace's format from its first bytes (MODEL.md §5 inputs): .kvt, JSON Lines.

Decides only which importer to use; `--input-format` overrides it.
"""

from __future__ import annotations

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
