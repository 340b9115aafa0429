"""A compact ASCII strip of one claim's timeline, for the text report beside each finding.

Renders a :class:`kvclaims.report.timeline.Timeline` (docs/model.md §3-§4, §6): one row of lifecycle
letters per bucket of events, one sparkline of the leading prefix that survives against the
predicate's required length, one row of markers (blocks lost, findings). Decides nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any

from kvclaims.report.timeline import Timeline
from kvclaims.report.location import event_label

SPARK = " ▁▂▃▄▅▆▇█"


def _letters(tl: Timeline) -> dict[str, str]:
    """One letter per lifecycle state, first unused letter of its name (spec order)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for st in tl.states:
        if st == (tl.states[0] if tl.states else None):
            out[st] = "·"
            continue
        for ch in st + st.upper():
            if ch.isalpha() and ch not in used:
                out[st] = ch
                used.add(ch)
                break
    return out


def _buckets(n_events: int, width: int) -> list[tuple[int, int]]:
    cols = max(1, min(width, n_events))
    return [(b * n_events // cols, max(b * n_events // cols, (b + 1) * n_events // cols - 1))
            for b in range(cols)]


class StripIndex:
    """What the strips of one timeline read, grouped once: claims by id, findings and resident
    losses by claim. Each strip then costs its own points, findings and losses plus its width,
    so the strips of every claim are linear in the timeline (issue 20)."""

    def __init__(self, tl: Timeline):
        self.tl = tl
        self.letters = _letters(tl)
        self.claims = {c.claim_id: c for c in tl.claims}
        self.findings: dict[str | None, list[Any]] = {}
        for f in tl.findings:
            self.findings.setdefault(f.claim_id, []).append(f)
        self.lost: dict[str, list[int]] = {}
        for v in tl.victims:
            if v.resident and v.claim_id is not None:
                self.lost.setdefault(v.claim_id, []).append(v.index)


def ascii_timeline(tl: Timeline, claim_id: str, width: int = 60,
                   index: StripIndex | None = None) -> list[str]:
    """Five lines: a heading, the lifecycle row, the leading-prefix sparkline, the markers row,
    and one legend line (long: the text report wraps it). Event numbers are 1-based
    (kvclaims.report.location)."""
    ix = index if index is not None else StripIndex(tl)
    c = ix.claims.get(claim_id)
    if c is None:
        return [f"{claim_id}: not in the trace"]
    n = max(1, tl.events)
    buckets = _buckets(n, width)
    starts = [lo for lo, _ in buckets]
    letters = ix.letters
    pts = c.points
    state_row, spark_row = [], []
    mark_row = [" "] * len(buckets)
    req = max([p.required for p in pts if p.required is not None] +
              [p.leading for p in pts if p.leading is not None] + [1])
    lost_at = set(ix.lost.get(claim_id, ()))
    find_at: dict[int, list[str]] = {}
    for f in [*ix.findings.get(claim_id, ()), *ix.findings.get(None, ())]:
        rules = find_at.setdefault(f.event_index, [])
        if f.rule not in rules:
            rules.append(f.rule)
    for i in lost_at:
        b = bisect_right(starts, i) - 1
        if 0 <= b < len(mark_row) and mark_row[b] == " ":
            mark_row[b] = "x"
    for i in find_at:
        b = bisect_right(starts, i) - 1
        if 0 <= b < len(mark_row):
            mark_row[b] = "^"
    k = 0  # points cursor
    current = None
    for lo, hi in buckets:
        silent = False
        lead_min: int | None = None
        seen = False
        while k < len(pts) and pts[k].index <= hi:
            current = pts[k]
            k += 1
            if current.index >= lo:
                seen = True
                silent = silent or current.silent
                if current.leading is not None:
                    lead_min = current.leading if lead_min is None else min(lead_min,
                                                                            current.leading)
        if current is None:
            state_row.append(" ")
            spark_row.append(" ")
        else:
            silent = silent or current.silent
            state_row.append("!" if silent else letters.get(current.state, "?"))
            lead = lead_min if seen and lead_min is not None else current.leading
            if lead is None:
                spark_row.append(" ")
            else:
                spark_row.append(SPARK[min(len(SPARK) - 1,
                                           round(lead * (len(SPARK) - 1) / req))] if lead
                                 else "_")
    per = n / len(buckets)
    scale = "1 event" if per <= 1 else f"{per:.3g} events"
    used_states = []
    for p in pts:
        if p.state not in used_states:
            used_states.append(p.state)
    legend = [", ".join(f"{letters.get(s, '?')}={s}" for s in used_states)
              + (", !=lost silently" if any(p.silent for p in pts) else "")]
    last = pts[-1] if pts else None
    legend.append(f"leading {last.leading}/{last.required}, scale 0..{req}"
                  if last is not None and last.leading is not None else
                  f"leading ?, scale 0..{req}")
    if lost_at:
        legend.append(f"x=block lost ({len(lost_at)})")
    for i, rules in sorted(find_at.items()):
        legend.append(f"^={', '.join(rules)} at {event_label(i)}")
    return [
        f"timeline of {claim_id} ({tl.events} events, one column = {scale}):",
        f"  state   |{''.join(state_row)}|",
        f"  leading |{''.join(spark_row)}|",
        f"  events  |{''.join(mark_row)}|",
        "  " + "; ".join(legend),
    ]


def claim_strips(tl: Timeline, claim_ids: list[str], width: int = 60) -> dict[str, list[str]]:
    ix = StripIndex(tl)
    return {cid: ascii_timeline(tl, cid, width, ix) for cid in claim_ids if cid in ix.claims}
