"""Which batches' order cannot matter: independent events commute (docs/partial.md, "Batches
decided without the solver").

Decides, for each unordered batch of a trace read in file order, whether every pair of its events
is *independent*: applying them in either order from any state gives the same state and the same
findings. A batch whose events are pairwise independent gives one result in every admissible order
(every order is reached from the written one by swapping adjacent independent events), so its
written order decides it: the replay folds it and no solver sees it. Any other batch *conflicts*
and goes to the Z3 engine whole.

Independence is read from the spec, never from literals:

- only events of the block scope (spec/events.toml `scope`) whose kind belongs to the group of
  block events (check/state.py `EventNames.block_group`) may commute: the timing rule settles a
  group when a non-block event follows it, so reordering a block event with any other event can
  change a decision (docs/checking.md, "Timing rule");
- what an event reads is its required and optional fields (plus the base fields); of those, the
  subjects' id fields (spec/events.toml `[subjects]`: block, claim, request) and `prefix_id` name
  the state it reads and writes, and a pool field (`usable_blocks`) or a progress field (the
  defer bounds and `scheduler_step`, check/progress.py) is state every event may read: an event
  carrying one conflicts with every other;
- a block stands for every claim and prefix it was ever bound to by an event read so far (file
  order, including the batch itself), and a prefix for every claim declared with it: the names
  are joined (union-find), so two events conflict when they name the same request or reach the
  same joined name;
- the written order of each order field (`event_sequence`, the time fields) must already be
  sorted within the batch (R-stream is decided on the batch's sorted values, docs/partial.md), and
  an order field present on some events of the batch but not all conflicts.

When in doubt the batch conflicts: the test over-approximates dependence, never the converse.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kvclaims.check.progress import bound_fields
from kvclaims.check.state import EventNames
from kvclaims.spec import Spec
from kvclaims.trace.model import Event

SEQUENCE_FIELD = "event_sequence"  # the replay's total-order field (docs/checking.md)


def _field(spec: Spec, name: str) -> str:
    if name not in spec.fields:
        raise KeyError(f"spec/fields.toml lacks {name}")
    return name


class Independence:
    """Reads events in file order; :meth:`batch` says whether a batch's events all commute."""

    def __init__(self, spec: Spec, defer_bounds: Sequence[Any] = ()):
        subjects = spec.subjects
        E = EventNames(spec)
        block_scope = spec.events_of_scope(spec.events[E.victim].scope)
        self.block_kinds = frozenset(block_scope & E.block_group)
        self.group_kinds = E.block_group
        self.block_field = subjects[spec.events[E.victim].subject]
        self.claim_field = subjects[spec.events[E.accepted].subject]
        self.request_field = subjects[spec.events[E.admitted].subject]
        self.prefix_field = _field(spec, "prefix_id")
        # State every event may read: the pool and the progress bounds (check/progress.py).
        self.global_fields = (_field(spec, "usable_blocks"), _field(spec, "scheduler_step"),
                              *bound_fields(spec.fields).values())
        self.order_fields = (_field(spec, SEQUENCE_FIELD), *spec.order.time_fields)
        self.bound_fields = tuple(bound_fields(spec.fields).values())
        # Bounded deferral (check/progress.py) reads every event's time and step once a bound
        # is declared: from then on no batch is taken to commute.
        self.progress = bool(defer_bounds)
        self._parent: dict[tuple[int, Any], tuple[int, Any]] = {}

    # ---- joined names (union-find) ---------------------------------------------------------
    def _root(self, x: tuple[int, Any]) -> tuple[int, Any]:
        parent = self._parent
        r = parent.get(x, x)
        if r == x:
            return x
        root = self._root(r)
        parent[x] = root
        return root

    def _join(self, a: tuple[int, Any], b: tuple[int, Any]) -> None:
        ra, rb = self._root(a), self._root(b)
        if ra != rb:
            self._parent[ra] = rb

    def _names(self, ev: Event) -> list[tuple[int, Any]]:
        """The state names an event reads or writes (0 block, 1 claim or prefix)."""
        f = ev.fields
        out = []
        # claims and prefixes share one namespace: the replay names a claim's prefix by the
        # claim id when the event gives none (check/replay.py)
        for tag, name in ((0, self.block_field), (1, self.claim_field), (1, self.prefix_field)):
            v = f.get(name)
            if v is not None:
                out.append((tag, v))
        return out

    def read(self, ev: Event) -> None:
        """Join the names an event binds together (a block to its claim or prefix, a claim to
        its prefix)."""
        if not self.progress and any(ev.fields.get(b) is not None for b in self.bound_fields):
            self.progress = True
        names = self._names(ev)
        for other in names[1:]:
            self._join(names[0], other)

    def read_all(self, events: Iterable[Event]) -> None:
        for ev in events:
            self.read(ev)

    # ---- the batch test --------------------------------------------------------------------
    def batch(self, events: Sequence[Event]) -> bool:
        """Whether the batch's events commute pairwise (then its written order decides it).
        Reads the batch's bindings first (a binding inside the batch joins its names)."""
        self.read_all(events)
        if self.progress or any(ev.kind not in self.block_kinds for ev in events):
            return False
        for name in self.order_fields:
            have = [ev.fields.get(name) for ev in events]
            present = [v for v in have if v is not None]
            if present and (len(present) != len(have) or present != sorted(present)):
                return False
        seen: set[Any] = set()
        for ev in events:
            f = ev.fields
            if any(f.get(g) is not None for g in self.global_fields):
                return False
            mine = {self._root(n) for n in self._names(ev)}
            r = f.get(self.request_field)
            if r is not None:
                mine.add((3, r))
            if not mine or mine & seen:
                return False
            seen |= mine
        return True


    def leaders(self, events: Sequence[Event]) -> list[int]:
        """Of a batch that conflicts, the events (indices into `events`) independent of every
        other event of it: they may come first, in the written order, and only the rest is
        ordered by the solver. None unless every event of the batch is in the group of block
        events (then no order changes where a group ends: the timing rule) and no deferral
        bound is in force. Call after :meth:`batch` (which read the batch's bindings)."""
        if self.progress or any(ev.kind not in self.group_kinds for ev in events):
            return []
        names: list[set[Any]] = []
        for ev in events:
            mine = {self._root(n) for n in self._names(ev)}
            r = ev.fields.get(self.request_field)
            if r is not None:
                mine.add((3, r))
            names.append(mine)
        out = []
        for i, ev in enumerate(events):
            if ev.kind not in self.block_kinds or not names[i]:
                continue
            if any(ev.fields.get(g) is not None for g in self.global_fields):
                continue
            if all(not (names[i] & names[j]) for j in range(len(events)) if j != i):
                out.append(i)
        return out


def batch_leaders(spec: Spec, events: Sequence[Event], batches: Iterable[tuple[int, int]],
                  defer_bounds: Sequence[Any] = ()) -> frozenset[int]:
    """The leaders (Independence.leaders) of the given conflicting batches, as event indices."""
    ind = Independence(spec, defer_bounds)
    out: set[int] = set()
    at = 0
    for start, end in sorted(batches):
        ind.read_all(events[at:start])
        ind.batch(events[start:end])
        out.update(start + i for i in ind.leaders(events[start:end]))
        at = end
    return frozenset(out)


def conflicting(spec: Spec, events: Sequence[Event], batches: Iterable[tuple[int, int]],
                defer_bounds: Sequence[Any] = ()) -> list[tuple[int, int]]:
    """The batches (start, end exclusive) whose events do not all commute: the ones the Z3
    engine must decide. Batches must be disjoint; events between them are read for bindings."""
    ind = Independence(spec, defer_bounds)
    out: list[tuple[int, int]] = []
    at = 0
    for start, end in sorted(batches):
        ind.read_all(events[at:start])
        if not ind.batch(events[start:end]):
            out.append((start, end))
        at = end
    return out
