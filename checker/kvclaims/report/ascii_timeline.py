"""A compact ASCII strip of one claim's timeline, for the text report beside each finding.

Renders a :class:`kvclaims.report.timeline.Timeline` (docs/model.md §3-§4, §6): one row of lifecycle
letters per bucket of events, one sparkline of the leading prefix that survives against the
predicate's required length, one row of markers (blocks lost, findings). Decides nothing.
"""

from __future__ import annotations

from kvclaims.report.timeline import Timeline

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


def ascii_timeline(tl: Timeline, claim_id: str, width: int = 60) -> list[str]:
    """Four lines: lifecycle, leading-prefix sparkline, markers, legend."""
    c = tl.claim(claim_id)
    if c is None:
        return [f"{claim_id}: not in the trace"]
    n = max(1, tl.events)
    buckets = _buckets(n, width)
    letters = _letters(tl)
    pts = c.points
    state_row, spark_row, mark_row = [], [], []
    req = max([p.required for p in pts if p.required is not None] +
              [p.leading for p in pts if p.leading is not None] + [1])
    lost_at = {v.index for v in tl.victims if v.resident and v.claim_id == claim_id}
    find_at: dict[int, list[str]] = {}
    for f in tl.findings:
        if f.claim_id in (claim_id, None):
            rules = find_at.setdefault(f.event_index, [])
            if f.rule not in rules:
                rules.append(f.rule)
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
        mark = " "
        if any(i in find_at for i in range(lo, hi + 1)):
            mark = "^"
        elif any(i in lost_at for i in range(lo, hi + 1)):
            mark = "x"
        mark_row.append(mark)
    per = n / len(buckets)
    scale = "1 event" if per <= 1 else f"{per:.3g} events"
    used_states = []
    for p in pts:
        if p.state not in used_states:
            used_states.append(p.state)
    legend = ", ".join(f"{letters.get(s, '?')}={s}" for s in used_states)
    if any(p.silent for p in pts):
        legend += ", !=lost silently"
    marks = []
    if lost_at:
        marks.append(f"x=block lost ({len(lost_at)})")
    for i, rules in sorted(find_at.items()):
        marks.append(f"^={', '.join(rules)} at #{i}")
    last = pts[-1] if pts else None
    lead_text = (f"leading {last.leading}/{last.required}" if last is not None and
                 last.leading is not None else "leading ?")
    return [
        f"timeline of {claim_id} ({tl.events} events, one column = {scale}):",
        f"  state   |{''.join(state_row)}|  {legend}",
        f"  leading |{''.join(spark_row)}|  {lead_text}, scale 0..{req}",
        f"  events  |{''.join(mark_row)}|  {'; '.join(marks)}",
    ]


def claim_strips(tl: Timeline, claim_ids: list[str], width: int = 60) -> dict[str, list[str]]:
    return {cid: ascii_timeline(tl, cid, width) for cid in claim_ids if tl.claim(cid)}
