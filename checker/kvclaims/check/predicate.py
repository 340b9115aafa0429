"""The materialization predicate over surviving logical positions (docs/model.md §3).

Decides `leading_prefix_at_least(n)` and `contiguous_range(start, n)` incrementally as positions
materialize and are lost: never over raw counts. `leading(S)` is the largest k with {0..k-1} ⊆ S.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_CALL = re.compile(r"^\s*([a-z_]+)\s*\(\s*(-?\d+)\s*(?:,\s*(-?\d+)\s*)?\)\s*$")

LEADING = "leading_prefix_at_least"
CONTIGUOUS = "contiguous_range"


@dataclass(frozen=True, slots=True)
class Predicate:
    kind: str
    start: int
    n: int

    def spelling(self) -> str:
        if self.kind == LEADING:
            return f"{LEADING}({self.n})"
        return f"{CONTIGUOUS}({self.start}, {self.n})"


def parse_predicate(text: str) -> Predicate | None:
    m = _CALL.match(text)
    if not m:
        return None
    name, a, b = m.group(1), m.group(2), m.group(3)
    if name == LEADING and b is None and int(a) >= 0:
        return Predicate(LEADING, 0, int(a))
    if name == CONTIGUOUS and b is not None and int(a) >= 0 and int(b) >= 0:
        return Predicate(CONTIGUOUS, int(a), int(b))
    return None


def declared_predicate(fields: dict[str, Any]) -> tuple[Predicate | None, bool]:
    """The predicate a claim event declares, and whether it spelled one that is not understood.

    `materialization_predicate` when it parses; otherwise `leading_prefix_at_least(n)` from
    `resident_blocks_required` (or `useful_threshold_blocks`) when the event names no other
    predicate kind. Read the same way by both engines (replay and Z3).
    """
    text = fields.get("materialization_predicate")
    pred = parse_predicate(text) if text else None
    unparsed = bool(text) and pred is None
    if pred is None:
        n = fields.get("resident_blocks_required")
        if n is None:
            n = fields.get("useful_threshold_blocks")
        kind = fields.get("predicate") or LEADING
        if n is not None and kind == LEADING:
            pred = Predicate(LEADING, 0, n)
    return pred, unparsed


class Positions:
    """Surviving logical positions of one claimed object, with its predicate kept current."""

    __slots__ = ("pred", "present", "leading", "in_range")

    def __init__(self, pred: Predicate | None):
        self.pred = pred
        self.present: set[int] = set()
        self.leading = 0
        self.in_range = 0

    def _in(self, pos: int) -> bool:
        p = self.pred
        return p is not None and p.kind == CONTIGUOUS and p.start <= pos < p.start + p.n

    def add(self, pos: int) -> None:
        if pos in self.present:
            return
        self.present.add(pos)
        if self._in(pos):
            self.in_range += 1
        if pos == self.leading:
            present = self.present
            k = pos + 1
            while k in present:
                k += 1
            self.leading = k

    def remove(self, pos: int) -> None:
        if pos not in self.present:
            return
        self.present.discard(pos)
        if not self.present:
            self.present = set()  # a set never shrinks; an emptied prefix keeps no table
        if self._in(pos):
            self.in_range -= 1
        if pos < self.leading:
            self.leading = pos

    def holds(self) -> bool | None:
        p = self.pred
        if p is None:
            return None
        if p.kind == LEADING:
            return self.leading >= p.n
        return self.in_range >= p.n

    @property
    def surviving(self) -> int:
        return len(self.present)
