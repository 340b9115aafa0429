"""One self-contained HTML page of a trace timeline: inline SVG with hover details (docs/model.md §6-§7).

Renders a :class:`kvclaims.explain.timeline.Timeline` without matplotlib: the pool's occupancy
bands, each claim's lifecycle spans and leading prefix against the required length, request lanes,
victims and every finding pinned at its event with its rule id. Hover text is SVG `<title>`
elements, so the page needs no script and no network: it references no external resource at all
(a trace's own text that looks like a URL is written with an escaped colon).
"""

from __future__ import annotations

import html
import os

from kvclaims.explain.timeline import ClaimTrack, RequestLane, Timeline
from kvclaims.report.location import event_label, location
from kvclaims.report.palette import (
    BAND_COLORS,
    BAND_LABELS,
    FINDING_COLORS,
    VERDICT_COLORS,
    claim_headline,
    pool_headline,
    request_label,
    state_color,
    state_colors,
)

W = 1180  # drawing width in px
LEFT = 190  # label column
RIGHT = 20
POOL_H = 230
CLAIM_H = 120
LANE_H = 26
GAP = 34


def esc(text: object) -> str:
    """Escape for HTML text and attributes; `://` in trace text never forms a URL."""
    return html.escape(str(text), quote=True).replace("://", "&#58;//")


class _Scale:
    def __init__(self, xmax: float):
        self.xmax = max(1.0, xmax)
        self.width = W - LEFT - RIGHT

    def x(self, index: float) -> float:
        return round(LEFT + self.width * index / self.xmax, 2)


def render_html(tl: Timeline) -> str:
    last = tl.last_index
    xmax = last + 1
    sx = _Scale(xmax + max(2, int(xmax * 0.04)))
    parts: list[str] = []
    y = 10
    svg_pool, h = _pool(tl, sx, y, xmax)
    parts.append(svg_pool)
    y += h + GAP
    claims = list(tl.claims)
    if claims:
        for c in claims:
            s, h = _claim(tl, c, sx, y, xmax)
            parts.append(s)
            y += h + GAP
    else:
        parts.append(f'<text x="{LEFT + 10}" y="{y + 20}" class="note">no claims in this trace: '
                     "nothing is protected, so residents are ordinary cache (docs/model.md §1)</text>")
        y += 30 + GAP
    s, h = _lanes(tl, tl.requests, sx, y, xmax)
    parts.append(s)
    y += h + 10
    top, bottom = 10, y
    parts.append(_findings(tl, sx, top, bottom))
    parts.append(_axis(sx, xmax, bottom))
    height = bottom + 40
    svg = (f'<svg width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img" '
           f'aria-label="timeline of {esc(tl.file)}">' + "".join(parts) + "</svg>")
    return _page(tl, svg)


def _page(tl: Timeline, svg: str) -> str:
    color = VERDICT_COLORS.get(tl.verdict, "#000")
    rows = []
    for f in tl.findings:
        rows.append(
            f'<tr><td class="{esc(f.status)}">{esc(f.status)}</td><td><b>{esc(f.rule)}</b></td>'
            f"<td>{esc(location(tl.file, f.line, f.column, f.event_index))}</td>"
            f"<td>{esc(f.event)}</td>"
            f"<td>{esc(f.claim_id or '')}</td><td>{esc(f.message)}</td></tr>")
    findings = ("<table><tr><th>status</th><th>rule</th><th>where</th><th>event</th>"
                "<th>claim</th><th>what happened</th></tr>" + "".join(rows) + "</table>"
                if rows else "<p>No findings.</p>")
    notes = "".join(f'<p class="notes">{esc(n)}</p>' for n in tl.notes)
    legend = "".join(
        f'<span class="key"><span class="sw" style="background:{c}"></span>{esc(BAND_LABELS[k])}'
        "</span>" for k, c in BAND_COLORS.items())
    legend += "".join(
        f'<span class="key"><span class="sw" style="background:{c};opacity:.6"></span>'
        f"{esc(st)}</span>" for st, c in state_colors(tl).items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>kvclaims explain: {esc(os.path.basename(tl.file))}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:18px;color:#222}}
h1{{font-size:20px;margin:0 0 4px 0}} .verdict{{color:{color}}}
.sub{{color:#444;margin:0 0 8px 0}} .notes{{color:#8a4b00;margin:2px 0}}
.key{{display:inline-block;margin:0 12px 4px 0;font-size:12px}}
.sw{{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-2px;border:1px solid #999}}
svg text{{font-size:12px}} svg .head{{font-weight:bold;font-size:13px}} svg .note{{fill:#555}}
svg .rule{{font-weight:bold;font-size:12px}}
table{{border-collapse:collapse;margin-top:10px;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}}
td.violation{{color:#c62828;font-weight:bold}} td.unknown{{color:#b26a00;font-weight:bold}}
</style></head><body>
<h1>{esc(os.path.basename(tl.file))}: <span class="verdict">{esc(tl.verdict.upper())}</span></h1>
<p class="sub">{tl.events} events · {len(tl.report.claims)} claim(s) ·
{len(tl.report.requests)} request(s) · {tl.victims_total} allocation victim(s),
{tl.resident_victims_total} resident · {len(tl.findings)} finding(s).
Hover over any band, span, marker or finding line for details.</p>
<p><b>{esc(pool_headline(tl))}</b></p>
{notes}
<div>{legend}</div>
{svg}
<h2>Findings</h2>
{findings}
</body></html>
"""


def _step_path(points: list[tuple[float, float]]) -> str:
    d = []
    for k, (x, y) in enumerate(points):
        if k == 0:
            d.append(f"M{x},{y}")
        else:
            d.append(f"H{x}V{y}")
    return "".join(d)


def _pool(tl: Timeline, sx: _Scale, y0: int, xmax: int) -> tuple[str, int]:
    out = []
    usable = max((s.usable for s in tl.pool), default=0)
    peak = max((s.protected + max(0, s.resident - s.protected) + s.active + s.free
                for s in tl.pool), default=0)
    ymax = max(usable, peak, 1) * 1.1
    top = y0 + 24

    def yv(v: float) -> float:
        return round(top + POOL_H - POOL_H * v / ymax, 2)

    out.append(f'<text x="{LEFT}" y="{y0 + 14}" class="head">pool occupancy (blocks)</text>')
    xs = [s.index for s in tl.pool] + [xmax]
    stacks = []
    bottom = [0.0] * len(tl.pool)
    for name in ("protected", "resident", "active", "free"):
        vals = []
        for s in tl.pool:
            vals.append({"protected": s.protected, "resident": max(0, s.resident - s.protected),
                         "active": s.active, "free": s.free}[name])
        topv = [b + v for b, v in zip(bottom, vals)]
        stacks.append((name, list(bottom), topv))
        bottom = topv
    for name, lo, hi in stacks:
        if not any(h - l for l, h in zip(lo, hi)):
            continue
        upper = [(sx.x(xs[k]), yv(hi[k])) for k in range(len(hi))]
        upper.append((sx.x(xs[-1]), upper[-1][1]))
        lower = [(sx.x(xs[k]), yv(lo[k])) for k in range(len(lo))]
        lower.append((sx.x(xs[-1]), lower[-1][1]))
        d = _step_path(upper)
        # walk the lower edge back
        rev = []
        for k in range(len(lower) - 1, 0, -1):
            rev.append(f"H{lower[k][0]}V{lower[k - 1][1]}")
        d += f"V{lower[-1][1]}" + "".join(rev) + f"H{lower[0][0]}Z"
        pattern = ' stroke="#ffffff" stroke-width="0"' if name != "protected" else ""
        out.append(f'<path d="{d}" fill="{BAND_COLORS[name]}"{pattern}>'
                   f"<title>{esc(BAND_LABELS[name])}</title></path>")
    res = [(sx.x(s.index), yv(s.resident)) for s in tl.pool]
    if res:
        res.append((sx.x(xmax), res[-1][1]))
        out.append(f'<path d="{_step_path(res)}" fill="none" stroke="#0b3d0b" '
                   'stroke-width="2.2"><title>resident blocks</title></path>')
    # hover columns: one invisible rect per drawn sample
    for k, s in enumerate(tl.pool):
        x1 = sx.x(s.index)
        x2 = sx.x(tl.pool[k + 1].index if k + 1 < len(tl.pool) else xmax)
        out.append(
            f'<rect x="{x1}" y="{top}" width="{max(0.5, x2 - x1)}" height="{POOL_H}" '
            f'fill="transparent"><title>{event_label(s.index)} (line {s.line}) {esc(s.kind)}\n'
            f"usable {s.usable}: protected {s.protected}, resident {s.resident}, "
            f"active {s.active}, free {s.free}</title></rect>")
    for v in tl.victims:
        if v.resident:
            s = tl.sample_at(v.index)
            cx = sx.x(v.index + 0.5)
            cy = yv(s.resident if s else 0)
            out.append(f'<path d="M{cx - 4},{cy - 7}H{cx + 4}L{cx},{cy}Z" fill="#d62728">'
                       f"<title>{esc(_victim_text(v))}</title></path>")
    for v in (0, usable):
        out.append(f'<text x="{LEFT - 6}" y="{yv(v) + 4}" text-anchor="end">{v}</text>')
    if usable:
        out.append(f'<line x1="{LEFT}" x2="{sx.x(xmax)}" y1="{yv(usable)}" y2="{yv(usable)}" '
                   'stroke="#777" stroke-dasharray="3,3"><title>usable blocks</title></line>')
    out.append(f'<text x="{LEFT - 6}" y="{top + POOL_H / 2}" text-anchor="end">pool</text>')
    return "".join(out), POOL_H + 30


def _victim_text(v: object) -> str:
    from kvclaims.explain.timeline import Victim

    assert isinstance(v, Victim)
    what = "resident block lost" if v.resident else "block taken from the free queue"
    return (f"{event_label(v.index)} (line {v.line}): victim block {v.block}, {what}"
            + (f", claim {v.claim_id}" if v.claim_id else "")
            + (f", request {v.request_id}" if v.request_id else "")
            + (f", reason {v.reason}" if v.reason else ""))


def _claim(tl: Timeline, c: ClaimTrack, sx: _Scale, y0: int, xmax: int) -> tuple[str, int]:
    out = [f'<text x="{LEFT}" y="{y0 + 14}" class="head">{esc(claim_headline(c))}</text>']
    top = y0 + 22
    pts = list(c.points)
    ends = [p.index for p in pts[1:]] + [xmax]
    vals = [v for p in pts for v in (p.leading, p.required) if v is not None]
    ymax = max(vals + [1]) * 1.15

    def yv(v: float) -> float:
        return round(top + CLAIM_H - CLAIM_H * v / ymax, 2)

    for p, end in zip(pts, ends):
        x1, x2 = sx.x(p.index), sx.x(end)
        label = p.state + (" (silent loss)" if p.silent else "")
        out.append(
            f'<rect x="{x1}" y="{top}" width="{max(0.5, x2 - x1)}" height="{CLAIM_H}" '
            f'fill="{state_color(tl, p.state, p.silent)}" fill-opacity="0.45">'
            f"<title>{esc(c.claim_id)} from {event_label(p.index)}: {esc(label)}\n"
            f"leading {p.leading}, surviving {p.surviving}, required {p.required}, "
            f"predicate {'holds' if p.holds else 'does not hold' if p.holds is False else '?'}"
            "</title></rect>")
    runs: list[list[object]] = []
    for p, end in zip(pts, ends):
        st = p.state + (" · silent loss" if p.silent else "")
        if runs and runs[-1][0] == st:
            runs[-1][2] = end
        else:
            runs.append([st, p.index, end])
    for st, start, end in runs:
        if sx.x(end) - sx.x(start) > 70:  # type: ignore[arg-type]
            out.append(f'<text x="{sx.x(start) + 3}" y="{top + CLAIM_H - 4}">'  # type: ignore[arg-type]
                       f"{esc(st)}</text>")
    lead = [(sx.x(p.index), yv(p.leading)) for p in pts if p.leading is not None]
    if lead:
        lead.append((sx.x(xmax), lead[-1][1]))
        out.append(f'<path d="{_step_path(lead)}" fill="none" stroke="#08306b" '
                   'stroke-width="2.2"><title>leading prefix that survives</title></path>')
    req = [(sx.x(p.index), yv(p.required)) for p in pts if p.required is not None]
    if req:
        req.append((sx.x(xmax), req[-1][1]))
        out.append(f'<path d="{_step_path(req)}" fill="none" stroke="#b2182b" '
                   'stroke-dasharray="6,4" stroke-width="1.6"><title>required by the '
                   "materialization predicate</title></path>")
    for v in tl.victims:
        if v.resident and v.claim_id == c.claim_id:
            cx = sx.x(v.index + 0.5)
            out.append(f'<text x="{cx}" y="{top + 12}" text-anchor="middle" fill="#d62728" '
                       f'font-weight="bold">×<title>{esc(_victim_text(v))}</title></text>')
    out.append(f'<text x="{LEFT - 6}" y="{top + CLAIM_H / 2}" text-anchor="end">'
               f"{esc(c.claim_id)}</text>")
    out.append(f'<text x="{LEFT - 6}" y="{top + CLAIM_H / 2 + 15}" text-anchor="end" '
               f'class="note">{esc(c.mode or "?")}</text>')
    for v in {int(x) for x in vals}:
        out.append(f'<text x="{LEFT - 6}" y="{yv(v) + 4}" text-anchor="end" class="note">'
                   f"{v}</text>")
    return "".join(out), CLAIM_H + 26


_MARK = {"admitted": "#2ca02c", "deferred": "#e6a700", "refused": "#d62728"}


def _lanes(tl: Timeline, lanes: tuple[RequestLane, ...], sx: _Scale, y0: int, xmax: int
           ) -> tuple[str, int]:
    out = [f'<text x="{LEFT}" y="{y0 + 14}" class="head">requests and victims</text>']
    y = y0 + 34
    for r in lanes:
        out.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end">'
                   f"{esc(request_label(r))}</text>")
        out.append(f'<line x1="{sx.x(r.first_index)}" x2="{sx.x(r.last_index + 1)}" y1="{y}" '
                   f'y2="{y}" stroke="#bbb"><title>request {esc(r.request_id)}: events '
                   f"{event_label(r.first_index)}..{event_label(r.last_index)}, outcome {esc(r.outcome)}</title></line>")
        if r.first_allocation is not None and r.last_allocation is not None:
            x1, x2 = sx.x(r.first_allocation), sx.x(r.last_allocation + 1)
            out.append(f'<rect x="{x1}" y="{y - 5}" width="{max(1, x2 - x1)}" height="10" '
                       f'fill="{BAND_COLORS["active"]}"><title>request {esc(r.request_id)}: '
                       f"{r.allocated} block(s) allocated, {event_label(r.first_allocation)}.."
                       f"{event_label(r.last_allocation)}</title></rect>")
        for m in r.marks:
            cx = sx.x(m.index + 0.5)
            color = _MARK.get(m.verb, "#7b3294")
            tip = (f"{event_label(m.index)} (line {m.line}): {m.kind}"
                   + (f"; blocking {', '.join(m.blocking_claim_ids)}" if m.blocking_claim_ids
                      else "") + (f"; {m.detail}" if m.detail else ""))
            out.append(f'<circle cx="{cx}" cy="{y}" r="7" fill="{color}" stroke="#000">'
                       f"<title>{esc(tip)}</title></circle>")
            if m.verb in ("refused", "deferred"):
                text = m.verb + (": blocking " + ", ".join(m.blocking_claim_ids)
                                 if m.blocking_claim_ids else ": no blocking claim named")
                anchor = "end" if m.index > xmax * 0.6 else "start"
                dx = -10 if anchor == "end" else 10
                out.append(f'<text x="{cx + dx}" y="{y - 8}" text-anchor="{anchor}" '
                           f'fill="{color}" font-weight="bold">{esc(text)}</text>')
        y += LANE_H
    out.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end">victims ({tl.victims_total},'
               f" {tl.resident_victims_total} resident)</text>")
    for v in tl.victims:
        cx = sx.x(v.index + 0.5)
        if v.resident:
            out.append(f'<path d="M{cx - 4},{y - 6}H{cx + 4}L{cx},{y + 4}Z" fill="#d62728">'
                       f"<title>{esc(_victim_text(v))}</title></path>")
        else:
            out.append(f'<line x1="{cx}" x2="{cx}" y1="{y - 5}" y2="{y + 5}" stroke="#999">'
                       f"<title>{esc(_victim_text(v))}</title></line>")
    return "".join(out), y - y0 + 14


def _findings(tl: Timeline, sx: _Scale, top: int, bottom: int) -> str:
    out = []
    for k, f in enumerate(tl.findings):
        color = FINDING_COLORS.get(f.status, "#d62728")
        x = sx.x(f.event_index + 0.5)
        tip = (f"{f.status.upper()} {f.rule} at "
               f"{location(tl.file, f.line, f.column, f.event_index)} ({f.event})"
               + (f", claim {f.claim_id}" if f.claim_id else "")
               + (f", state before {f.state_before}" if f.state_before else "")
               + f"\n{f.message}" + (f"\n{f.line} | {f.quote}" if f.quote else ""))
        out.append(f'<g><line x1="{x}" x2="{x}" y1="{top}" y2="{bottom}" stroke="{color}" '
                   f'stroke-width="2"/><rect x="{x - 4}" y="{top}" width="8" '
                   f'height="{bottom - top}" fill="transparent"/>'
                   f'<text x="{x + 4}" y="{top + 12 + 14 * (k % 3)}" fill="{color}" '
                   f'class="rule">{esc(f.rule)}</text><title>{esc(tip)}</title></g>')
    return "".join(out)


def _axis(sx: _Scale, xmax: int, y: int) -> str:
    out = [f'<line x1="{LEFT}" x2="{sx.x(xmax)}" y1="{y}" y2="{y}" stroke="#333"/>']
    step = _nice_step(xmax)
    v = 0
    while v <= xmax:
        x = sx.x(v)
        out.append(f'<line x1="{x}" x2="{x}" y1="{y}" y2="{y + 5}" stroke="#333"/>'
                   f'<text x="{x}" y="{y + 18}" text-anchor="middle">{v}</text>')
        v += step
    out.append(f'<text x="{sx.x(xmax)}" y="{y + 32}" text-anchor="end" class="note">event index'
               "</text>")
    return "".join(out)


def _nice_step(n: int) -> int:
    raw = max(1, n / 10)
    mag = 10 ** (len(str(int(raw))) - 1)
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag
