"""Lossless conversion between the trace formats (docs/kvt.md, "Converting"; docs/model.md §5).

Decides whether a whole trace (events and skew declarations: every declaration that can change a
verdict) can be written in a target format, and spells it there. What the target cannot express
is refused, named, never dropped: JSON Lines has no skew declaration, and an event outside
spec/events.toml has no .kvt spelling. Batches are fields of their events (`unordered_batch`, or
a runtime's batch field), written as `batch { }` blocks or plain fields, so they survive either
way. The text is built whole before anything is written, so a refusal writes nothing.
"""

from __future__ import annotations

import io

from kvclaims.spec import Spec
from kvclaims.trace import write
from kvclaims.trace.model import PartialTrace

TARGETS = ("kvt", "jsonl")


class Inexpressible(ValueError):
    """The target format cannot express a declaration of the trace that can change a verdict."""


def convert(trace: PartialTrace, to: str, spec: Spec) -> str:
    """`trace` as the text of format `to` (one of TARGETS), or Inexpressible."""
    buf = io.StringIO()
    if to == "kvt":
        try:
            write.write_kvt(trace.events, buf, spec=spec, skews=trace.skews)
        except ValueError as err:
            raise Inexpressible(f".kvt cannot express it: {err}") from None
        return buf.getvalue()
    if to == "jsonl":
        if trace.skews:
            s = trace.skews[0]
            where = f" (line {s.line})" if s.line else ""
            raise Inexpressible(
                f"JSON Lines has no skew declaration, and the trace declares skew {s.source_a} "
                f"{s.source_b} {s.delta_ns}{where}; convert to kvt, or give it as --skew "
                f"{s.source_a}:{s.source_b}:{s.delta_ns} to every command that reads the "
                "JSON Lines copy")
        try:
            write.write_jsonl(trace.events, buf)
        except ValueError as err:
            raise Inexpressible(f"JSON Lines cannot express it: {err}") from None
        return buf.getvalue()
    raise Inexpressible(f"unknown target format {to!r}; one of {', '.join(TARGETS)}")
