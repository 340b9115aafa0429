"""The timeline of a trace: the replayed pool, claims, requests and victims sampled per event.

Feeds the replay checker (docs/model.md §6) one event at a time and samples its state after each event:
pool occupancy (free, active, resident, protected; docs/model.md §1), each claim's lifecycle state (§4) and
the leading prefix its materialization predicate measures (§3), each active request's admission and
outcome (§7), every allocation victim, and the findings pinned at their event. Pure data in, data
out: no I/O and no drawing; the renderers in kvclaims.report draw it.

Long traces are downsampled, never silently truncated: every event that changes a claim's state,
decides a request, loses a resident block or carries a finding is kept, the pool series keeps the
extremes of each bucket, and the timeline says how many events it shows (`Timeline.notes`).
"""

from __future__ import annotations

from array import array
from itertools import islice
from dataclasses import dataclass
from typing import Any, Iterable

from kvclaims.check.replay import Replay
from kvclaims.check.verdict import Finding, InputProblem, Report
from kvclaims.report.location import event_label
from kvclaims.spec import Spec
from kvclaims.trace.model import Event

DEFAULT_MAX_POINTS = 2000
DEFAULT_MAX_VICTIMS = 5000


@dataclass(frozen=True, slots=True)
class PoolSample:
    """The pool after event `index`: `protected` is part of `resident`; the four bands of a
    picture are protected, resident - protected, active and free."""

    index: int
    line: int
    kind: str
    usable: int
    free: int
    active: int
    resident: int
    protected: int
    # the protected blocks by the claim's protection mode (docs/model.md §5), sorted by mode
    protected_modes: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ClaimPoint:
    """A claim's replayed state from event `index` until the next point (a step function)."""

    index: int
    state: str
    leading: int | None
    surviving: int | None
    required: int | None
    holds: bool | None
    silent: bool
    # the offloadable sub-lifecycle's state (docs/model.md §4: offloaded, restore_required,
    # restored, failed); None while the claim was never offloaded
    offload: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimTrack:
    claim_id: str
    mode: str | None
    final_state: str
    verdict: str
    first_index: int
    points: tuple[ClaimPoint, ...]
    victims: int


@dataclass(frozen=True, slots=True)
class RequestMark:
    """A decision or admission event of a request (not its block allocations)."""

    index: int
    line: int
    kind: str  # the event name
    verb: str  # the spec's verb for it: admitted, deferred, refused, ...
    blocking_claim_ids: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RequestLane:
    request_id: str
    first_index: int
    last_index: int
    first_allocation: int | None
    last_allocation: int | None
    allocated: int
    outcome: str
    blocking_claim_ids: tuple[str, ...]
    marks: tuple[RequestMark, ...]


@dataclass(frozen=True, slots=True)
class Victim:
    """An allocation victim; `resident` when the block held a prefix position (a loss)."""

    index: int
    line: int
    block: Any
    resident: bool
    claim_id: str | None
    request_id: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Timeline:
    file: str
    verdict: str
    events: int  # events read
    pool: tuple[PoolSample, ...]  # every event, or the kept ones when downsampled
    claims: tuple[ClaimTrack, ...]
    requests: tuple[RequestLane, ...]
    victims: tuple[Victim, ...]
    victims_total: int
    resident_victims_total: int
    findings: tuple[Finding, ...]
    finding_counts: dict[str, int]
    downsampled: bool
    notes: tuple[str, ...]
    report: Report
    states: tuple[str, ...] = ()  # lifecycle states in spec order, for stable colors
    responsible: frozenset[str] = frozenset()  # states under responsibility (docs/model.md §4)
    released: frozenset[str] = frozenset()
    harmed_state: str = ""
    error: InputProblem | None = None
    window: tuple[int, int] | None = None  # the first and last event index drawn (0-based)
    offload_states: tuple[str, ...] = ()  # the offload sub-lifecycle, spec order
    offload_initial: str = ""

    @property
    def first_index(self) -> int:
        return self.window[0] if self.window is not None else 0

    @property
    def last_index(self) -> int:
        if self.window is not None:
            return self.window[1]
        return max(0, self.events - 1)

    def claim(self, claim_id: str) -> ClaimTrack | None:
        for c in self.claims:
            if c.claim_id == claim_id:
                return c
        return None

    def sample_at(self, index: int) -> PoolSample | None:
        """The pool sample in effect at `index` (the last kept sample at or before it)."""
        lo, hi, best = 0, len(self.pool) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.pool[mid].index <= index:
                best, lo = self.pool[mid], mid + 1
            else:
                hi = mid - 1
        return best

    def only_claim(self, claim_id: str) -> Timeline:
        """The same timeline restricted to one claim, its findings and the requests naming it."""
        from dataclasses import replace

        claims = tuple(c for c in self.claims if c.claim_id == claim_id)
        findings = tuple(f for f in self.findings if f.claim_id in (claim_id, None))
        victims = tuple(v for v in self.victims if v.claim_id in (claim_id, None))
        return replace(self, claims=claims, findings=findings, victims=victims)


class _Columns:
    """Per-event pool series in compact arrays, so 10^6 events cost megabytes, not objects."""

    __slots__ = ("index", "line", "usable", "free", "active", "resident", "protected", "kinds",
                 "kind_ids", "modes")

    def __init__(self) -> None:
        self.index = array("q")
        self.line = array("q")
        self.usable = array("q")
        self.free = array("q")
        self.active = array("q")
        self.resident = array("q")
        self.protected = array("q")
        self.kinds: list[str] = []
        self.kind_ids = array("H")
        self.modes: dict[str, array] = {}  # protection mode -> protected blocks per sample

    def add(self, index: int, line: int, kind: str, s: dict[str, Any], kind_of: dict[str, int]
            ) -> None:
        self.index.append(index)
        self.line.append(line)
        self.usable.append(s["usable"])
        self.free.append(s["free"])
        self.active.append(s["active"])
        self.resident.append(s["resident"])
        self.protected.append(min(s["protected"], s["resident"]) if s["resident"] else
                              s["protected"])
        k = kind_of.get(kind)
        if k is None:
            k = kind_of[kind] = len(self.kinds)
            self.kinds.append(kind)
        self.kind_ids.append(k)
        by_mode = s.get("modes")
        if by_mode:
            for mode, v in by_mode.items():
                col = self.modes.get(mode)
                if col is None:
                    col = self.modes[mode] = array("q", [0] * (len(self.index) - 1))
                col.append(v)
        for mode, col in self.modes.items():
            if len(col) < len(self.index):
                col.append(0)

    def sample(self, i: int) -> PoolSample:
        return PoolSample(index=self.index[i], line=self.line[i],
                          kind=self.kinds[self.kind_ids[i]], usable=self.usable[i],
                          free=self.free[i], active=self.active[i], resident=self.resident[i],
                          protected=self.protected[i],
                          protected_modes=tuple((m, col[i]) for m, col in sorted(self.modes.items())
                                                if col[i]))


def _claim_sample(c: Any) -> dict[str, Any]:
    """One claim's entry of Replay.snapshot()["claims"], for one claim only."""
    tracked = c.tracked
    return {"state": c.state, "silent": c.silent,
            "leading": c.positions.leading if tracked else None,
            "surviving": c.positions.surviving if tracked else None,
            "required": c.positions.pred.n if c.positions.pred else c.declared_required,
            "holds": c.positions.holds() if tracked else None,
            "offload": c.off_state or None}


def _point(index: int, c: dict[str, Any]) -> ClaimPoint:
    return ClaimPoint(index=index, state=c["state"], leading=c["leading"],
                      surviving=c["surviving"], required=c["required"], holds=c["holds"],
                      silent=bool(c["silent"]), offload=c.get("offload"))


def build_timeline(events: Iterable[Event], spec: Spec, file: str = "-", *,
                   max_points: int = DEFAULT_MAX_POINTS,
                   max_victims: int = DEFAULT_MAX_VICTIMS,
                   decided: Report | None = None,
                   window: tuple[int, int | None] | None = None) -> Timeline:
    """Replay `events` and sample the state after each one.

    The replay here only samples what to draw. The verdict, the findings and each claim's
    verdict are `decided`'s, the report of the one decision path (kvclaims.run, with every
    option: engine, skew, gates), so a picture never shows a kinder verdict than `check`; without
    `decided` (a caller holding no report) they are the written-order replay's. The timeline's
    `verdict` is the overall result (Report.result), the headline of every view.

    `window` (first, last) 0-based event indices, last None for the end: only those events
    are sampled (the replay still reads them all); claims keep their state at the window's start.

    Errors of the event source (kvclaims.trace.model.InputError) and the claim limit propagate:
    the caller decides how to report them.
    """
    lo = window[0] if window is not None else 0
    hi = window[1] if window is not None and window[1] is not None else 1 << 62
    replay = Replay(spec, file)
    E = replay.E
    decisions = {E.admitted, E.deferred, E.refused, E.reuse_admitted, E.reuse_denied,
                 E.live_bounded}
    cols = _Columns()
    kind_of: dict[str, int] = {}
    key_indices: list[int] = []  # events a downsampled picture must keep
    claim_points: dict[str, list[ClaimPoint]] = {}
    claim_first: dict[str, int] = {}
    lanes: dict[str, dict[str, Any]] = {}
    victims: list[Victim] = []
    victims_total = resident_total = 0
    kept_nonresident = 0
    prev_resident = 0
    prev_surviving: dict[str, int | None] = {}
    prev_claim_sig: dict[str, tuple[Any, ...]] = {}

    claims = replay.claims
    protected_by: dict[str, int] = {}
    protected_total = 0
    protected_modes: dict[str, int] = {}
    for ev in events:
        f = ev.fields
        # The claims this event can change (docs/model.md §4-§6): the ones it names, the owner of
        # the block it takes, the claims whose block group it closes, the ones it creates. An
        # event that names no claim and takes no block is checked against every claim, so the
        # picture is the full snapshot's (tests/explain: equal on every trace) in time linear in
        # the events for the usual traces.
        n_claims = len(claims)
        dirty: dict[str, None] | None = {}
        if ev.kind == E.victim:
            entry = replay.block_map.get(f.get("physical_block_id"))  # type: ignore[arg-type]
            if entry is not None and entry[2] is not None:
                dirty[entry[2].id] = None
        for c in replay.pending:
            dirty[c.id] = None
        replay.feed(ev)
        named = False
        for v in f.values():
            if type(v) is str:
                if v in claims:
                    dirty[v] = None
                    named = True
            elif isinstance(v, (list, tuple)):
                for x in v:
                    if type(x) is str and x in claims:
                        dirty[x] = None
                        named = True
        if len(claims) > n_claims:  # the newest claims are last in the dict
            for cid in islice(reversed(claims), len(claims) - n_claims):
                dirty[cid] = None
        if ev.kind != E.victim and not named:
            dirty = None  # every claim
        i = replay.index
        if i > hi:
            if decided is not None:
                break  # the verdict is decided's: the rest is not drawn
            continue  # read to the end for the replay's own verdict
        usable = replay.usable or 0
        resident_now = len(replay.block_map)
        active = max(0, len(replay.allocated) - resident_now)
        key = False
        lost_claim: str | None = None
        for cid in (claims if dirty is None else dirty):
            cl = claims.get(cid)
            if cl is None:
                continue
            p_now = replay._blocks_of(cl) if replay.protects(cl) else 0
            delta = p_now - protected_by.get(cid, 0)
            if delta:
                protected_total += delta
                mode = cl.mode or "?"
                protected_modes[mode] = protected_modes.get(mode, 0) + delta
            protected_by[cid] = p_now
            c = _claim_sample(cl)
            sig = (c["state"], c["leading"], c["surviving"], c["required"], c["holds"],
                   c["silent"], c["offload"])
            old = prev_claim_sig.get(cid)
            if old == sig:
                continue
            if cid not in claim_points:
                claim_points[cid] = []
                claim_first[cid] = i
                key = True
            elif old is not None and (old[0] != sig[0] or old[4] != sig[4] or old[5] != sig[5]
                                      or old[6] != sig[6]):
                key = True  # a state category change: lifecycle, predicate, silence
            prev_claim_sig[cid] = sig
            pts = claim_points[cid]
            if i < lo and pts:
                pts[-1] = _point(i, c)  # before the window only the latest state is kept
            else:
                pts.append(_point(i, c))
            before = prev_surviving.get(cid)
            if before is not None and c["surviving"] is not None and c["surviving"] < before:
                lost_claim = cid
            prev_surviving[cid] = c["surviving"]
        if i < lo:
            prev_resident = resident_now
            continue
        s = {"usable": usable, "resident": resident_now, "protected": protected_total,
             "active": active, "free": max(0, usable - resident_now - active),
             "modes": {m: v for m, v in protected_modes.items() if v}}
        cols.add(i, ev.line, ev.kind, s, kind_of)
        rid = f.get("request_id")
        if ev.kind == E.victim:
            victims_total += 1
            resident = s["resident"] < prev_resident
            if resident:
                resident_total += 1
                key = True
            if (resident_total <= 2 * max_victims) if resident else \
                    (kept_nonresident < max_victims):
                kept_nonresident += 0 if resident else 1
                victims.append(Victim(index=i, line=ev.line, block=f.get("physical_block_id"),
                                      resident=resident, claim_id=lost_claim, request_id=rid,
                                      reason=f.get("victim_reason")))
        if isinstance(rid, str):
            lane = lanes.get(rid)
            if lane is None:
                lane = lanes[rid] = {"first": i, "last": i, "fa": None, "la": None, "n": 0,
                                     "marks": []}
            lane["last"] = i
            if ev.kind == E.victim:
                if lane["fa"] is None:
                    lane["fa"] = i
                lane["la"] = i
                lane["n"] += 1
            elif ev.kind in decisions:
                key = True
                spec_ev = spec.events.get(ev.kind)
                verb = spec_ev.verb if spec_ev is not None else ev.kind
                blocking = tuple(str(x) for x in (f.get("blocking_claim_ids") or ()))
                bits = []
                for name in ("feasibility", "capacity_shortfall_blocks",
                             "free_blocks_before_allocate", "active_live_blocks_required"):
                    if f.get(name) is not None:
                        bits.append(f"{name}={f[name]}")
                lane["marks"].append(RequestMark(index=i, line=ev.line, kind=ev.kind, verb=verb,
                                                 blocking_claim_ids=blocking,
                                                 detail=" ".join(bits)))
        prev_resident = s["resident"]
        if key:
            key_indices.append(i)

    report = replay.finish() if decided is None else decided
    n = len(cols.index)
    first = cols.index[0] if n else lo
    last = cols.index[-1] if n else lo
    findings = tuple(fd for fd in report.findings if first <= fd.event_index <= last)
    for fd in findings:
        key_indices.append(fd.event_index)

    notes: list[str] = []
    if window is not None:
        notes.append(f"window: {event_label(first)} to {event_label(last)} of {report.events} "
                     f"events; the verdict is the whole trace's")
        if len(findings) < len(report.findings):
            notes.append(f"findings: {len(report.findings) - len(findings)} outside the window "
                         "not drawn")
    keep = _keep(cols, [k - first for k in key_indices], max_points)
    downsampled = len(keep) < n
    if downsampled:
        notes.append(f"overview downsampled: {len(keep)} of {n} events drawn (every state "
                     "change, decision, resident loss and finding kept; pool extremes per "
                     "bucket); pick a window (explain --from/--to or --around) to draw every "
                     "event of it")
    pool = tuple(cols.sample(i) for i in keep)
    keep = [cols.index[k] for k in keep]

    claims_by_id = {c.claim_id: c for c in report.claims}
    tracks = []
    for cid, pts in claim_points.items():
        if downsampled and len(pts) > max_points:
            pts = _thin_points(pts, keep)
        cr = claims_by_id.get(cid)
        tracks.append(ClaimTrack(claim_id=cid, mode=cr.mode_spelling if cr else None,
                                 final_state=cr.final_state if cr else pts[-1].state,
                                 verdict=cr.verdict if cr else "unknown",
                                 first_index=claim_first[cid], points=tuple(pts),
                                 victims=cr.victims if cr else 0))

    reqs_by_id = {r.request_id: r for r in report.requests}
    lanes_out = []
    for rid, lane in lanes.items():
        rr = reqs_by_id.get(rid)
        lanes_out.append(RequestLane(
            request_id=rid, first_index=lane["first"], last_index=lane["last"],
            first_allocation=lane["fa"], last_allocation=lane["la"], allocated=lane["n"],
            outcome=rr.outcome if rr else "unknown",
            blocking_claim_ids=rr.blocking_claim_ids if rr else (),
            marks=tuple(lane["marks"])))

    if len(victims) < victims_total:
        notes.append(f"victims: {len(victims)} of {victims_total} drawn "
                     f"({resident_total} resident, all resident ones kept up to "
                     f"{2 * max_victims})")
    shown = len(report.findings)
    total = sum(report.finding_counts.values())
    if total > shown:
        notes.append(f"findings: first per (rule, claim, status) pinned; {total - shown} further "
                     "occurrences not drawn")
    from kvclaims.check.selection import summary as left_out

    if (line := left_out(report, spec)) is not None:  # the verdict drawn counts these rules not
        notes.insert(0, line)
    return Timeline(file=file, verdict=report.result, events=report.events, pool=pool,
                    claims=tuple(tracks), requests=tuple(lanes_out), victims=tuple(victims),
                    victims_total=victims_total, resident_victims_total=resident_total,
                    findings=findings, finding_counts=dict(report.finding_counts),
                    downsampled=downsampled, notes=tuple(notes), report=report,
                    states=tuple(spec.claim.states), responsible=frozenset(spec.responsible),
                    released=frozenset(spec.released), harmed_state=E.harmed_state,
                    error=report.error, window=None if window is None else (first, last),
                    offload_states=tuple(spec.offload.states),
                    offload_initial=spec.offload.initial)


def _keep(cols: _Columns, key_indices: list[int], max_points: int) -> list[int]:
    """Positions of the events to draw: all when they fit, else the key events, the first and
    last, and the min and max occupancy of each bucket of the rest."""
    n = len(cols.index)
    if n <= max_points:
        return list(range(n))
    keep = set(key_indices)
    keep.add(0)
    keep.add(n - 1)
    budget = max(2, max_points - len(keep))
    buckets = max(1, budget // 2)
    size = -(-n // buckets)
    res, prot, act = cols.resident, cols.protected, cols.active
    for start in range(0, n, size):
        stop = min(n, start + size)
        lo = hi = start
        for j in range(start, stop):
            v = res[j] * 4 + prot[j] + act[j]
            if v < res[lo] * 4 + prot[lo] + act[lo]:
                lo = j
            if v > res[hi] * 4 + prot[hi] + act[hi]:
                hi = j
        keep.add(lo)
        keep.add(hi)
        keep.add(stop - 1)
    return sorted(keep)


def _thin_points(points: list[ClaimPoint], keep: list[int]) -> list[ClaimPoint]:
    """A claim's step series reduced to its state changes plus its value at the kept events."""
    kept = set(keep)
    out: list[ClaimPoint] = []
    for p in points:
        if not out or p.state != out[-1].state or p.holds != out[-1].holds or \
                p.silent != out[-1].silent or p.index in kept:
            out.append(p)
    if points and out[-1] is not points[-1]:
        out.append(points[-1])
    return out
