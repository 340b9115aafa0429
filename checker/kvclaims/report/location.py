"""One spelling of where an event is, shared by every view (text, JSON, JUnit, HTML, explain).

An event is named by its place in the input, `file:line:column`, and by ONE number: its 1-based
position among the events read (`event 147` is the 147th event; a `.kvt` line's own `@147`
sequence number agrees with it when the trace numbers its events from 1 without gaps). The
checker keeps 0-based indices internally (Finding.event_index); this module is the only place
that turns one into the number a reader sees (docs/report-format.md, "one location spelling").
"""

from __future__ import annotations


def event_number(event_index: int) -> int:
    """The 1-based event number a reader sees for a 0-based event index."""
    return event_index + 1


def event_label(event_index: int) -> str:
    """`event N`: the one way an event's number is written."""
    return f"event {event_number(event_index)}"


def place(file: str, line: int | None, column: int | None) -> str:
    """`file:line:column` (or just `file` when the location is the whole input)."""
    if line is None:
        return file
    return f"{file}:{line}:{column if column is not None else 1}"


def location(file: str, line: int | None, column: int | None, event_index: int | None) -> str:
    """`file:line:column event N`: the full location of an event, identical in every view."""
    where = place(file, line, column)
    if event_index is None or event_index < 0:
        return where
    return f"{where} {event_label(event_index)}"
