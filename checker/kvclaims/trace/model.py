"""Event and input-error data shared by every importer and writer (docs/model.md §5).

An :class:`Event` is one line of any trace format after import: the reference telemetry event
name (`kind`), all its fields under their telemetry names (unknown ones kept), and where it came
from. Importers yield events; the deciding core never sees a file. A :class:`PartialTrace` is a
trace whose order is only partly known (batches of unordered events, :class:`Skew` declarations
between merged sources; issue 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from kvclaims import spec as spec_mod
from kvclaims.spec import Spec


class Event(msgspec.Struct, frozen=True, gc=False):
    kind: str
    fields: dict[str, Any]
    line: int = 0
    column: int = 1
    # The source line as read (bytes for JSON Lines, str for .kvt), for quoting in findings.
    text: bytes | str | None = None

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


class InputError(Exception):
    """Bad input: carries file:line:column and a message; never a traceback for the user."""

    def __init__(self, file: str, line: int, column: int, message: str, *, unknown: bool = False):
        super().__init__(f"{file}:{line}:{column}: {message}")
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        # `unknown`: the input is well-formed but of a kind kvclaims does not know (exit 3).
        self.unknown = unknown


# ---- partial order (issue 4; docs/kvt.md "Partial order: batch and skew") ---------------------

BatchKey = tuple[str, Any]  # (batch field, its value): runs of equal keys are batches


@dataclass(frozen=True, slots=True)
class Skew:
    """Events of `source_a` and `source_b` (the spec's source field) whose time fields differ by
    at most `delta_ns` may be in either order; otherwise the written order holds. Events of one
    source always keep their written order. `line`/`column` locate the declaration (0, 0 when it
    came from outside the trace, e.g. a command-line option)."""

    source_a: str
    source_b: str
    delta_ns: int
    line: int = 0
    column: int = 0

    def __post_init__(self) -> None:
        if type(self.delta_ns) is not int or self.delta_ns < 0:
            raise ValueError(f"skew delta must be a non-negative integer of nanoseconds, "
                             f"got {self.delta_ns!r}")
        if not self.source_a or not self.source_b:
            raise ValueError("skew sources must be non-empty")
        if self.source_a == self.source_b:
            raise ValueError(f"a skew relates two different sources, got {self.source_a!r} twice")

    @property
    def sources(self) -> frozenset[str]:
        """The unordered pair of sources (a skew between A and B is one between B and A)."""
        return frozenset((self.source_a, self.source_b))


@dataclass(frozen=True, slots=True)
class PartialTrace:
    """A trace whose order is only partly known: events in written order, with batches (runs of
    consecutive events sharing a batch key, see :meth:`batches`) and skew declarations.

    The written order is the one any total-order reader sees; the deciding code admits every
    order that permutes events inside a batch (the batch keeps its place) and interleaves events
    of two skewed sources within their bound."""

    events: tuple[Event, ...]
    skews: tuple[Skew, ...] = ()

    def __post_init__(self) -> None:
        pairs = [s.sources for s in self.skews]
        if len(set(pairs)) != len(pairs):
            raise ValueError("a pair of sources has two skew declarations")

    def batches(self, spec: Spec | None = None) -> list[tuple[int, int, BatchKey]]:
        """(start, end exclusive, key) of every maximal run of consecutive events with the same
        batch key, singletons included; an event's key is (field, value) of the first field of
        `spec.order.batch_fields` it carries with a non-null value. Events without one are in
        no batch."""
        fields = (spec or spec_mod.load()).order.batch_fields
        runs: list[tuple[int, int, BatchKey]] = []
        start, key = 0, None
        for i, event in enumerate(self.events):
            k = _batch_key(event, fields)
            if k != key:
                if key is not None:
                    runs.append((start, i, key))
                start, key = i, k
        if key is not None:
            runs.append((start, len(self.events), key))
        return runs

    def has_unordered_parts(self, spec: Spec | None = None) -> bool:
        """Whether some order other than the written one is admissible: a batch of two or more
        events, or any skew declaration."""
        return bool(self.skews) or any(end - start > 1 for start, end, _ in self.batches(spec))

    def source_of(self, index: int, spec: Spec | None = None) -> str | None:
        """The recorded source of event `index` (the spec's source field), None when absent."""
        value = self.events[index].fields.get((spec or spec_mod.load()).order.source_field)
        return value if type(value) is str else None

    def time_of(self, index: int, spec: Spec | None = None) -> int | None:
        """The time a skew bound is measured on: the first of the spec's time fields event
        `index` carries, None when it has none (then a skew cannot reorder it)."""
        fields = self.events[index].fields
        for name in (spec or spec_mod.load()).order.time_fields:
            value = fields.get(name)
            if type(value) is int:
                return value
        return None


def _batch_key(event: Event, fields: tuple[str, ...]) -> BatchKey | None:
    for name in fields:
        value = event.fields.get(name)
        if value is not None:
            return name, value
    return None
