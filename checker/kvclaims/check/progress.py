"""Deferral bounds (docs/model.md §6 R-progress): a deferral is a promise to decide later, not a decision.

Decides, for the replay checker, whether each deferred active request is admitted, refused or
unblocked by a release of a claim it names within every declared deferral bound. Bounds come from
events (`defer_bound_steps`, `defer_bound_ns` on any event: the trace's first event is its header,
a claim's acceptance its manifest) and from the caller (`kvclaims check --max-defer-steps/-ns`);
every bound is checked, so a user's bound can tighten a runtime's promise but never loosen it.
Steps are the events' `scheduler_step` when the first deferral carries one, else one step per
further deferral of the request; time is `timestamp_ns`, else `monotonic_ns`. A deferral still
open at the end of the trace, with no bound yet passed, is `unknown`: never a pass
(docs/checking.md, "R-progress").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kvclaims.check.rules.concrete import progress as rule
from kvclaims.check.rules.ops import PY
from kvclaims.check.verdict import UNKNOWN, VIOLATION
from kvclaims.trace.model import Event

if TYPE_CHECKING:
    from kvclaims.check.context import ReplayContext

STEPS = "steps"
NS = "ns"


@dataclass(frozen=True, slots=True)
class DeferBound:
    """One declared bound: `unit` is steps or ns; `where` says who declared it."""

    unit: str
    value: int
    where: str

    def spelling(self) -> str:
        return f"{self.value} {'scheduler steps' if self.unit == STEPS else 'ns'} ({self.where})"


def bound_fields(spec_fields: Any) -> dict[str, str]:
    """The event fields that declare a bound, by unit (names checked against spec/fields.toml)."""
    out = {STEPS: "defer_bound_steps", NS: "defer_bound_ns"}
    for name in out.values():
        if name not in spec_fields:
            raise KeyError(f"spec/fields.toml lacks {name}")
    return out


class Deferral:
    """An open deferral of one request (the first deferral event starts it)."""

    __slots__ = ("event", "index", "step0", "ns0", "count", "blocking", "steps", "ns", "silent")

    def __init__(self, ev: Event, index: int, step0: int | None, ns0: int | None):
        self.event = ev
        self.index = index
        self.step0 = step0
        self.ns0 = ns0
        self.count = 1
        self.blocking: set[str] = set()
        self.steps = 0  # elapsed steps seen so far
        self.ns = 0     # elapsed time seen so far
        self.silent = False  # waiting since its arrival with no event (no deferral reported)


class Progress:
    """R-progress state of one replay: the bounds in force and the open deferrals."""

    def __init__(self, rp: ReplayContext, bounds: tuple[DeferBound, ...] = ()):
        self.rp = rp
        self.bounds: list[DeferBound] = list(bounds)
        self.open: dict[str, Deferral] = {}
        self.late: set[str] = set()  # requests past a bound, until admitted or refused
        self.fields = bound_fields(rp.spec.fields)

    @staticmethod
    def _time(f: dict[str, Any]) -> int | None:
        t = f.get("timestamp_ns")
        if t is None:
            t = f.get("monotonic_ns")
        return t if isinstance(t, int) else None

    def declare(self, ev: Event) -> None:
        """Bounds an event declares (called for events carrying a bound field)."""
        f = ev.fields
        for unit, name in self.fields.items():
            v = f.get(name)
            if isinstance(v, int) and not isinstance(v, bool):
                where = f"declared by {name} at line {ev.line}"
                if all(b.unit != unit or b.value != v for b in self.bounds):
                    self.bounds.append(DeferBound(unit, v, where))

    def on_deferred(self, ev: Event, rid: str) -> None:
        if rid in self.late:
            return  # the same deferral, already decided a violation
        f = ev.fields
        d = self.open.get(rid)
        step = f.get("scheduler_step")
        if d is None:
            d = self.open[rid] = Deferral(ev, self.rp.index, step if isinstance(step, int)
                                          else None, self._time(f))
        else:
            d.count += 1
            if d.step0 is None:
                d.steps = d.count - 1
        for bid in f.get("blocking_claim_ids") or ():
            if isinstance(bid, str):
                d.blocking.add(bid)
        self._check(ev, [rid])

    def on_waiting(self, ev: Event, rid: str, holders: list[str]) -> None:
        """A request arrived while claims hold the blocks it needs: an unreported deferral
        starts here, waiting on every claim that holds blocks."""
        if rid in self.open or rid in self.late:
            return
        f = ev.fields
        step = f.get("scheduler_step")
        d = self.open[rid] = Deferral(ev, self.rp.index, step if isinstance(step, int) else None,
                                      self._time(f))
        d.silent = True
        d.blocking.update(holders)

    def on_decided(self, rid: str) -> None:
        """The request was admitted or refused: its deferral is settled."""
        self.late.discard(rid)
        d = self.open.pop(rid, None)
        if d is not None:
            self._settled(d)

    def on_release(self, cid: str, responsible_before: bool) -> None:
        """A claim was released: deferrals that named it as blocking are unblocked."""
        for rid in [r for r, d in self.open.items()
                    if rule.unblocks(PY, responsible_before, cid in d.blocking)]:
            self._settled(self.open.pop(rid))

    def _settled(self, d: Deferral) -> None:
        rp = self.rp
        for cid in d.blocking:
            c = rp.claims.get(cid)
            if c is not None:
                rp._pass(c, rp.R.progress)

    def advance(self, ev: Event) -> None:
        """Elapsed steps and time as of this event (before it is applied: a decision that comes
        after a bound passed does not withdraw the violation), and any bound they pass."""
        f = ev.fields
        step = f.get("scheduler_step")
        now = self._time(f)
        for d in self.open.values():
            if isinstance(step, int) and d.step0 is not None:
                d.steps = rule.elapsed(PY, step, d.step0, d.steps)
            if now is not None and d.ns0 is not None:
                d.ns = rule.elapsed(PY, now, d.ns0, d.ns)
        self._check(ev, list(self.open))

    def _check(self, ev: Event, rids: list[str]) -> None:
        for rid in rids:
            d = self.open[rid]
            for b in self.bounds:
                if rule.past_bound(PY, d.steps if b.unit == STEPS else d.ns, b.value):
                    del self.open[rid]
                    self.late.add(rid)
                    elapsed = (f"{d.steps} scheduler steps" if b.unit == STEPS
                               else f"{d.ns} ns")
                    self._file(VIOLATION, ev, rid, d, rule.PAST_BOUND.format(
                        request=rid, since=f", {_since(d)},", elapsed=f" {elapsed} later,",
                        bound=f"the bound of {b.spelling()}"))
                    break

    def finish(self) -> None:
        for rid, d in self.open.items():
            why = ("no deferral bound is declared" if not self.bounds else
                   "the trace ends before any declared bound passed")
            self._file(UNKNOWN, d.event, rid, d, rule.STILL_OPEN.format(
                request=rid, since=f", {_since(d)},", why=why), index=d.index)
        self.open.clear()

    def _file(self, status: str, ev: Event, rid: str, d: Deferral, message: str,
              index: int | None = None) -> None:
        rp = self.rp
        rp._find(status, rp.R.progress, ev, message, None, request_id=rid, index=index)
        # R-progress is about the request (every bundle has it); the claims it waited on carry
        # the status too, so their rows do not read as a pass.
        for cid in sorted(d.blocking):
            c = rp.claims.get(cid)
            if c is not None:
                rp._mark(c, rp.R.progress, status)


def _since(d: Deferral) -> str:
    if d.silent:
        return (f"waiting with no event since it arrived at line {d.event.line} while claims "
                "held the blocks it needs")
    return f"deferred at line {d.event.line}"
