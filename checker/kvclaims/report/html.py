"""One self-contained HTML page of a trace timeline: inline SVG you can zoom and pan, with hover
details (docs/model.md §4-§7).

Renders a :class:`kvclaims.report.timeline.Timeline` without matplotlib: the pool's occupancy
bands (protected blocks coloured by their claim's protection mode), each claim's lifecycle spans
(every release kind in its own colour), its offload sub-lifecycle (offloaded, restore required,
restored, failed) and leading prefix against the required length, request lanes, victims and every
finding pinned at its event with its rule id. Every element carries the event indices it spans
(`data-i`, `data-i0`/`data-i1`, step series in `data-s`), so the page's one inline script redraws
the x axis for any window: the mouse wheel or the +/− buttons zoom, dragging pans, a finding's row
jumps to it, and hovering shows the element's details or the pool at that event. Without the
script the page is the same picture, fully drawn. The page references no external resource (a
trace's own text that looks like a URL is written with an escaped colon). Decides nothing.
"""

from __future__ import annotations

import html
import json
import os

from kvclaims.report.timeline import ClaimTrack, RequestLane, Timeline, Victim
from kvclaims.report.location import event_label, location
from kvclaims.report.palette import (
    BAND_COLORS,
    BAND_LABELS,
    FINDING_COLORS,
    LOSS_COLOR,
    SILENT_COLOR,
    VERDICT_COLORS,
    claim_headline,
    mode_colors,
    offload_colors,
    pool_headline,
    request_label,
    state_color,
    state_colors,
)

W = 1180  # drawing width in px
LEFT = 210  # label column
RIGHT = 20
POOL_H = 230
CLAIM_H = 120
OFF_H = 12  # the offload row under a claim lane
LANE_H = 26
GAP = 34
NAME_X = LEFT - 40  # claim id and mode, clear of the lane's axis numbers at LEFT - 6
LABEL_MIN = 90  # px: a run narrower than this shows no name (hover tells it)


def esc(text: object) -> str:
    """Escape for HTML text and attributes; `://` in trace text never forms a URL."""
    return html.escape(str(text), quote=True).replace("://", "&#58;//")


class _Scale:
    """Event index -> x, for the window [lo, hi) (the script redraws for any other window)."""

    def __init__(self, lo: float, hi: float):
        self.lo = lo
        self.hi = max(lo + 1.0, hi)
        self.width = W - LEFT - RIGHT

    def x(self, index: float) -> float:
        return round(LEFT + self.width * (index - self.lo) / (self.hi - self.lo), 2)


def _at(sx: _Scale, index: float, body: str, cls: str = "at") -> str:
    """A group drawn at x 0 and moved to `index` (the script moves it on zoom)."""
    return (f'<g class="{cls}" data-i="{index}" transform="translate({sx.x(index)},0)">'
            f"{body}</g>")


def _label(sx: _Scale, i0: float, i1: float, body: str) -> str:
    """A run's name at its start, shown only while the run is wide enough to hold it."""
    hidden = "" if sx.x(i1) - sx.x(i0) > LABEL_MIN else ' display="none"'
    return (f'<g class="at label" data-i="{i0}" data-i1="{i1}" '
            f'transform="translate({sx.x(i0)},0)"{hidden}>{body}</g>')


def _span(sx: _Scale, i0: float, i1: float, y: float, h: float, attrs: str, body: str = "",
          minw: float = 0.5) -> str:
    x1, x2 = sx.x(i0), sx.x(i1)
    return (f'<rect data-i0="{i0}" data-i1="{i1}" data-minw="{minw}" x="{x1}" y="{y}" '
            f'width="{max(minw, x2 - x1)}" height="{h}" {attrs}>{body}</rect>')


def _series(pts: list[tuple[float, float]]) -> str:
    return " ".join(f"{i:g},{y:g}" for i, y in pts)


def _step_d(sx: _Scale, pts: list[tuple[float, float]]) -> str:
    d = []
    for k, (i, y) in enumerate(pts):
        d.append(f"M{sx.x(i)},{y}" if k == 0 else f"H{sx.x(i)}V{y}")
    return "".join(d)


def render_html(tl: Timeline) -> str:
    lo = tl.first_index
    xmax = tl.last_index + 1
    pad = max(2, int((xmax - lo) * 0.04))
    sx = _Scale(lo, xmax + pad)
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
    parts.append(f'<g id="axis">{_axis(sx, lo, xmax, bottom)}</g>')
    parts.append(f'<rect id="hover" x="{LEFT}" y="{top}" width="{W - LEFT - RIGHT}" '
                 f'height="{bottom - top}" fill="none" pointer-events="none"/>')
    height = bottom + 40
    svg = (f'<svg id="tl" width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img" '
           f'data-left="{LEFT}" data-right="{W - RIGHT}" data-lo="{sx.lo:g}" '
           f'data-labelmin="{LABEL_MIN}" '
           f'data-hi="{sx.hi:g}" data-first="{lo}" data-last="{xmax}" data-axis="{bottom}" '
           f'aria-label="timeline of {esc(tl.file)}">' + "".join(parts) + "</svg>")
    return _page(tl, svg)


def _legend(tl: Timeline) -> str:
    keys = []

    def key(color: str, label: str, extra: str = "") -> None:
        keys.append(f'<span class="key"><span class="sw" style="background:{color}{extra}">'
                    f"</span>{esc(label)}</span>")

    modes = mode_colors(tl)
    for k, c in BAND_COLORS.items():
        if k == "protected" and modes:
            for m, mc in modes.items():
                key(mc, f"protected: {m}")
        elif k != "protected":
            key(c, BAND_LABELS[k])
    for st, c in state_colors(tl).items():
        key(c, st, ";opacity:.6")
    key(SILENT_COLOR, "lost silently (no harm, no release)", ";opacity:.6")
    used = {p.offload for c in tl.claims for p in c.points}
    for st, c in offload_colors(tl).items():
        if st in used:
            key(c, f"offload: {st}")
    keys.append(f'<span class="key"><b style="color:{LOSS_COLOR}">▼</b> resident block lost '
                f'<b style="color:{LOSS_COLOR}">×</b> a claim\'s block lost</span>')
    return "".join(keys)


def _pool_data(tl: Timeline) -> str:
    """The drawn pool samples for the hover details, as compact JSON in the page."""
    kinds: list[str] = []
    kind_of: dict[str, int] = {}
    rows = []
    for s in tl.pool:
        k = kind_of.get(s.kind)
        if k is None:
            k = kind_of[s.kind] = len(kinds)
            kinds.append(s.kind)
        rows.append([s.index, s.line, k, s.usable, s.protected, s.resident, s.active, s.free])
    data = json.dumps({"kinds": kinds, "rows": rows}, separators=(",", ":"))
    return data.replace("</", "<\\/").replace("://", ":\\/\\/")


def _page(tl: Timeline, svg: str) -> str:
    color = VERDICT_COLORS.get(tl.verdict, "#000")
    rows = []
    for f in tl.findings:
        rows.append(
            f'<tr class="finding" data-i="{f.event_index}"><td class="{esc(f.status)}">'
            f"{esc(f.status)}</td><td><b>{esc(f.rule)}</b></td>"
            f"<td>{esc(location(tl.file, f.line, f.column, f.event_index))}</td>"
            f"<td>{esc(f.event)}</td>"
            f"<td>{esc(f.claim_id or '')}</td><td>{esc(f.message)}</td>"
            '<td><button class="jump">show</button></td></tr>')
    findings = ("<table><tr><th>status</th><th>rule</th><th>where</th><th>event</th>"
                "<th>claim</th><th>what happened</th><th></th></tr>" + "".join(rows) + "</table>"
                if rows else "<p>No findings.</p>")
    notes = "".join(f'<p class="notes">{esc(n)}</p>' for n in tl.notes)
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
svg .rule{{font-weight:bold;font-size:12px}} svg{{cursor:grab;user-select:none}}
#tools{{margin:6px 0;font-size:13px}} #tools button{{margin-right:4px}}
#tip{{position:fixed;display:none;background:#fffff0;border:1px solid #999;padding:4px 6px;
font-size:12px;white-space:pre;pointer-events:none;max-width:700px;z-index:2}}
table{{border-collapse:collapse;margin-top:10px;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left;vertical-align:top}}
td.violation{{color:#c62828;font-weight:bold}} td.unknown{{color:#b26a00;font-weight:bold}}
</style></head><body>
<h1>{esc(os.path.basename(tl.file))}: <span class="verdict">{esc(tl.verdict.upper())}</span></h1>
<p class="sub">{tl.events} events · {len(tl.report.claims)} claim(s) ·
{len(tl.report.requests)} request(s) · {tl.victims_total} allocation victim(s),
{tl.resident_victims_total} resident · {len(tl.findings)} finding(s).
Hover over the picture for details; wheel or +/− to zoom, drag to pan, "show" jumps to a finding.</p>
<p><b>{esc(pool_headline(tl))}</b></p>
{notes}
<div>{_legend(tl)}</div>
<div id="tools"><button id="zin">+</button><button id="zout">−</button>
<button id="reset">whole window</button> <span id="range"></span></div>
{svg}
<div id="tip"></div>
<h2>Findings</h2>
{findings}
<script id="pool" type="application/json">{_pool_data(tl)}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


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
    modes = mode_colors(tl)
    bands: list[tuple[str, str, list[int]]] = []
    for m, color in modes.items():
        vals = [dict(s.protected_modes).get(m, 0) for s in tl.pool]
        bands.append((f"protected by {m} claims", color, vals))
    if not modes:
        bands.append((BAND_LABELS["protected"], BAND_COLORS["protected"],
                      [s.protected for s in tl.pool]))
    for name in ("resident", "active", "free"):
        vals = [{"resident": max(0, s.resident - s.protected), "active": s.active,
                 "free": s.free}[name] for s in tl.pool]
        bands.append((BAND_LABELS[name], BAND_COLORS[name], vals))
    bottom = [0] * len(tl.pool)
    for label, color, vals in bands:
        topv = [b + v for b, v in zip(bottom, vals)]
        if any(vals):
            upper = [(xs[k], yv(topv[k])) for k in range(len(topv))] + [(xs[-1], yv(topv[-1]))]
            lower = [(xs[k], yv(bottom[k])) for k in range(len(bottom))] + [
                (xs[-1], yv(bottom[-1]))]
            out.append(f'<path class="band" data-u="{_series(upper)}" data-l="{_series(lower)}" '
                       f'd="{_band_d(sx, upper, lower)}" fill="{color}">'
                       f"<title>{esc(label)}</title></path>")
        bottom = topv
    res = [(s.index, yv(s.resident)) for s in tl.pool]
    if res:
        res.append((xmax, res[-1][1]))
        out.append(f'<path data-s="{_series(res)}" d="{_step_d(sx, res)}" fill="none" '
                   'stroke="#0b3d0b" stroke-width="2.2"><title>resident blocks</title></path>')
    for v in tl.victims:
        if v.resident:
            s = tl.sample_at(v.index)
            cy = yv(s.resident if s else 0)
            out.append(_at(sx, v.index + 0.5, f'<path d="M-4,{cy - 7}H4L0,{cy}Z" '
                           f'fill="{LOSS_COLOR}"><title>{esc(_victim_text(v))}</title></path>'))
    for v in (0, usable):
        out.append(f'<text x="{LEFT - 6}" y="{yv(v) + 4}" text-anchor="end">{v}</text>')
    if usable:
        out.append(f'<line data-i0="{tl.first_index}" data-i1="{xmax}" x1="{LEFT}" '
                   f'x2="{sx.x(xmax)}" y1="{yv(usable)}" y2="{yv(usable)}" stroke="#777" '
                   'stroke-dasharray="3,3"><title>usable blocks</title></line>')
    out.append(f'<text x="{NAME_X}" y="{top + POOL_H / 2}" text-anchor="end">pool</text>')
    return "".join(out), POOL_H + 30


def _band_d(sx: _Scale, upper: list[tuple[float, float]],
            lower: list[tuple[float, float]]) -> str:
    d = _step_d(sx, upper)
    rev = [f"H{sx.x(lower[k][0])}V{lower[k - 1][1]}" for k in range(len(lower) - 1, 0, -1)]
    return d + f"V{lower[-1][1]}" + "".join(rev) + f"H{sx.x(lower[0][0])}Z"


def _victim_text(v: Victim) -> str:
    what = "resident block lost" if v.resident else "block taken from the free queue"
    return (f"{event_label(v.index)} (line {v.line}): victim block {v.block}, {what}"
            + (f", claim {v.claim_id}" if v.claim_id else "")
            + (f", request {v.request_id}" if v.request_id else "")
            + (f", reason {v.reason}" if v.reason else ""))


def _claim(tl: Timeline, c: ClaimTrack, sx: _Scale, y0: int, xmax: int) -> tuple[str, int]:
    out = [f'<text x="{LEFT}" y="{y0 + 14}" class="head">{esc(claim_headline(c))}</text>']
    top = y0 + 22
    pts = list(c.points)
    starts = [max(p.index, tl.first_index) for p in pts]
    ends = starts[1:] + [xmax]
    vals = [v for p in pts for v in (p.leading, p.required) if v is not None]
    ymax = max(vals + [1]) * 1.15

    def yv(v: float) -> float:
        return round(top + CLAIM_H - CLAIM_H * v / ymax, 2)

    for p, start, end in zip(pts, starts, ends):
        label = p.state + (" (silent loss)" if p.silent else "")
        out.append(_span(
            sx, start, end, top, CLAIM_H,
            f'fill="{state_color(tl, p.state, p.silent)}" fill-opacity="0.45"',
            f"<title>{esc(c.claim_id)} from {event_label(p.index)}: {esc(label)}\n"
            f"leading {p.leading}, surviving {p.surviving}, required {p.required}, "
            f"predicate {'holds' if p.holds else 'does not hold' if p.holds is False else '?'}"
            + (f"\noffload: {p.offload}" if p.offload else "") + "</title>"))
    runs: list[list[object]] = []
    for p, start, end in zip(pts, starts, ends):
        st = p.state + (" · silent loss" if p.silent else "")
        if runs and runs[-1][0] == st:
            runs[-1][2] = end
        else:
            runs.append([st, start, end])
    for st, start, end in runs:
        out.append(_label(sx, start, end, f'<text x="3" y="{top + CLAIM_H - 4}">{esc(st)}</text>'))
    # the offload sub-lifecycle, one row under the lane (docs/model.md §4)
    off = offload_colors(tl)
    off_runs: list[list[object]] = []
    for p, start, end in zip(pts, starts, ends):
        o = p.offload if p.offload in off else None
        if off_runs and off_runs[-1][0] == o:
            off_runs[-1][2] = end
        else:
            off_runs.append([o, start, end, p.index])
    has_off = any(o for o, *_ in off_runs)
    if has_off:
        oy = top + CLAIM_H + 3
        for o, start, end, at in off_runs:
            if o is None:
                continue
            out.append(_span(sx, start, end, oy, OFF_H, f'fill="{off[o]}"',  # type: ignore[index]
                             f"<title>{esc(c.claim_id)} offload {esc(o)} from "
                             f"{event_label(at)}</title>", minw=2))  # type: ignore[arg-type]
            out.append(_label(sx, start, end, f'<text x="3" y="{oy + OFF_H - 2}" '
                              f'font-size="10">{esc(o)}</text>'))
        out.append(f'<text x="{LEFT - 6}" y="{oy + OFF_H - 2}" text-anchor="end" '
                   'class="note">offload</text>')
    lead = [(float(s), yv(p.leading)) for p, s in zip(pts, starts) if p.leading is not None]
    if lead:
        lead.append((xmax, lead[-1][1]))
        out.append(f'<path data-s="{_series(lead)}" d="{_step_d(sx, lead)}" fill="none" '
                   'stroke="#08306b" stroke-width="2.2"><title>leading prefix that survives'
                   "</title></path>")
    req = [(float(s), yv(p.required)) for p, s in zip(pts, starts) if p.required is not None]
    if req:
        req.append((xmax, req[-1][1]))
        out.append(f'<path data-s="{_series(req)}" d="{_step_d(sx, req)}" fill="none" '
                   'stroke="#b2182b" stroke-dasharray="6,4" stroke-width="1.6"><title>required '
                   "by the materialization predicate</title></path>")
    for v in tl.victims:
        if v.resident and v.claim_id == c.claim_id:
            out.append(_at(sx, v.index + 0.5, f'<text x="0" y="{top + 12}" text-anchor="middle" '
                           f'fill="{LOSS_COLOR}" font-weight="bold">×<title>'
                           f"{esc(_victim_text(v))}</title></text>"))
    out.append(f'<text x="{NAME_X}" y="{top + CLAIM_H / 2}" text-anchor="end">'
               f"{esc(c.claim_id)}</text>")
    out.append(f'<text x="{NAME_X}" y="{top + CLAIM_H / 2 + 15}" text-anchor="end" '
               f'class="note">{esc(c.mode or "?")}</text>')
    # the lane's scale: 0, the required lengths and the peak (not every value: they would overlap)
    ticks = {0, max(vals, default=0)} | {int(p.required) for p in pts if p.required is not None}
    for v in sorted(ticks):
        out.append(f'<text x="{LEFT - 6}" y="{yv(v) + 4}" text-anchor="end" class="note">'
                   f"{v}</text>")
    return "".join(out), CLAIM_H + 26 + (OFF_H + 4 if has_off else 0)


_MARK = {"admitted": "#2ca02c", "deferred": "#e6a700", "refused": "#d62728"}


def _lanes(tl: Timeline, lanes: tuple[RequestLane, ...], sx: _Scale, y0: int, xmax: int
           ) -> tuple[str, int]:
    out = [f'<text x="{LEFT}" y="{y0 + 14}" class="head">requests and victims</text>']
    y = y0 + 34
    mid = (tl.first_index + xmax) / 2
    for r in lanes:
        out.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end">'
                   f"{esc(request_label(r))}</text>")
        out.append(f'<line data-i0="{r.first_index}" data-i1="{r.last_index + 1}" '
                   f'x1="{sx.x(r.first_index)}" x2="{sx.x(r.last_index + 1)}" y1="{y}" '
                   f'y2="{y}" stroke="#bbb"><title>request {esc(r.request_id)}: '
                   f"{event_label(r.first_index)}..{event_label(r.last_index)}, outcome "
                   f"{esc(r.outcome)}</title></line>")
        if r.first_allocation is not None and r.last_allocation is not None:
            out.append(_span(sx, r.first_allocation, r.last_allocation + 1, y - 5, 10,
                             f'fill="{BAND_COLORS["active"]}"',
                             f"<title>request {esc(r.request_id)}: {r.allocated} block(s) "
                             f"allocated, {event_label(r.first_allocation)}.."
                             f"{event_label(r.last_allocation)}</title>", minw=1))
        for m in r.marks:
            color = _MARK.get(m.verb, "#7b3294")
            tip = (f"{event_label(m.index)} (line {m.line}): {m.kind}"
                   + (f"; blocking {', '.join(m.blocking_claim_ids)}" if m.blocking_claim_ids
                      else "") + (f"; {m.detail}" if m.detail else ""))
            body = (f'<circle cx="0" cy="{y}" r="7" fill="{color}" stroke="#000">'
                    f"<title>{esc(tip)}</title></circle>")
            if m.verb in ("refused", "deferred"):
                text = m.verb + (": blocking " + ", ".join(m.blocking_claim_ids)
                                 if m.blocking_claim_ids else ": no blocking claim named")
                anchor = "end" if m.index > mid else "start"
                dx = -10 if anchor == "end" else 10
                body += (f'<text x="{dx}" y="{y - 8}" text-anchor="{anchor}" '
                         f'fill="{color}" font-weight="bold">{esc(text)}</text>')
            out.append(_at(sx, m.index + 0.5, body))
        y += LANE_H
    out.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end">victims ({tl.victims_total},'
               f" {tl.resident_victims_total} resident)</text>")
    for v in tl.victims:
        if v.resident:
            body = (f'<path d="M-4,{y - 6}H4L0,{y + 4}Z" fill="{LOSS_COLOR}">'
                    f"<title>{esc(_victim_text(v))}</title></path>")
        else:
            body = (f'<line x1="0" x2="0" y1="{y - 5}" y2="{y + 5}" stroke="#999">'
                    f"<title>{esc(_victim_text(v))}</title></line>")
        out.append(_at(sx, v.index + 0.5, body))
    return "".join(out), y - y0 + 14


def _findings(tl: Timeline, sx: _Scale, top: int, bottom: int) -> str:
    out = []
    for k, f in enumerate(tl.findings):
        color = FINDING_COLORS.get(f.status, "#d62728")
        tip = (f"{f.status.upper()} {f.rule} at "
               f"{location(tl.file, f.line, f.column, f.event_index)} ({f.event})"
               + (f", claim {f.claim_id}" if f.claim_id else "")
               + (f", state before {f.state_before}" if f.state_before else "")
               + f"\n{f.message}" + (f"\n{f.line} | {f.quote}" if f.quote else ""))
        out.append(_at(sx, f.event_index + 0.5,
                       f'<line x1="0" x2="0" y1="{top}" y2="{bottom}" stroke="{color}" '
                       f'stroke-width="2"/><rect x="-4" y="{top}" width="8" '
                       f'height="{bottom - top}" fill="transparent"/>'
                       f'<text x="4" y="{top + 12 + 14 * (k % 3)}" fill="{color}" '
                       f'class="rule">{esc(f.rule)}</text><title>{esc(tip)}</title>',
                       "at finding"))
    return "".join(out)


def _axis(sx: _Scale, lo: int, xmax: int, y: int) -> str:
    """The event-number axis (1-based, as every view numbers events) for the first window."""
    out = [f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y}" y2="{y}" stroke="#333"/>']
    step = _nice_step(xmax - lo)
    v = (lo // step) * step
    while v <= xmax:
        if v >= lo:
            x = sx.x(v)
            out.append(f'<line x1="{x}" x2="{x}" y1="{y}" y2="{y + 5}" stroke="#333"/>'
                       f'<text x="{x}" y="{y + 18}" text-anchor="middle">{v + 1}</text>')
        v += step
    out.append(f'<text x="{W - RIGHT}" y="{y + 32}" text-anchor="end" class="note">event '
               "number</text>")
    return "".join(out)


def _nice_step(n: int) -> int:
    raw = max(1, n / 10)
    mag = 10 ** (len(str(int(raw))) - 1)
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


# The page's one script: redraw every element for a window [lo, hi) of event indices, zoom
# (wheel, buttons), pan (drag), jump to a finding, and hover details. No external resource.
_SCRIPT = r"""
(function () {
  var svg = document.getElementById("tl"), tip = document.getElementById("tip");
  var LABEL_MIN = +svg.dataset.labelmin, L = +svg.dataset.left, R = +svg.dataset.right, AX = +svg.dataset.axis;
  var LO = +svg.dataset.lo, HI = +svg.dataset.hi, lo = LO, hi = HI;
  var pool = JSON.parse(document.getElementById("pool").textContent);
  var NS = svg.namespaceURI;
  function X(i) { return L + (R - L) * (i - lo) / (hi - lo); }
  function C(x) { return Math.max(L, Math.min(R, x)); }
  function I(x) { return lo + (x - L) * (hi - lo) / (R - L); }
  function pts(s) { return s.split(" ").map(function (p) { var a = p.split(","); return [+a[0], +a[1]]; }); }
  function step(p) {
    var d = "";
    for (var k = 0; k < p.length; k++) {
      var x = C(X(p[k][0])).toFixed(2);
      d += k ? "H" + x + "V" + p[k][1] : "M" + x + "," + p[k][1];
    }
    return d;
  }
  function svgX(ev) {
    var r = svg.getBoundingClientRect();
    return (ev.clientX - r.left) * svg.viewBox.baseVal.width / r.width;
  }
  function nice(n) {
    var raw = Math.max(1, n / 10), mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = [1, 2, 5, 10];
    for (var k = 0; k < m.length; k++) if (raw <= m[k] * mag) return m[k] * mag;
    return 10 * mag;
  }
  function axis() {
    var g = document.getElementById("axis");
    while (g.firstChild) g.removeChild(g.firstChild);
    function el(tag, attrs, text) {
      var e = document.createElementNS(NS, tag);
      for (var k in attrs) e.setAttribute(k, attrs[k]);
      if (text !== undefined) e.textContent = text;
      g.appendChild(e);
    }
    el("line", {x1: L, x2: R, y1: AX, y2: AX, stroke: "#333"});
    var s = nice(hi - lo);
    for (var v = Math.ceil(lo / s) * s; v <= hi; v += s) {
      var x = X(v).toFixed(2);
      el("line", {x1: x, x2: x, y1: AX, y2: AX + 5, stroke: "#333"});
      el("text", {x: x, y: AX + 18, "text-anchor": "middle", "class": "tick"}, String(v + 1));
    }
    el("text", {x: R, y: AX + 32, "text-anchor": "end", "class": "note"}, "event number");
  }
  function layout() {
    svg.querySelectorAll("rect[data-i0]").forEach(function (e) {
      var a = C(X(+e.dataset.i0)), b = C(X(+e.dataset.i1));
      var inside = b > a || (X(+e.dataset.i0) >= L && X(+e.dataset.i0) <= R);
      e.setAttribute("x", a.toFixed(2));
      e.setAttribute("width", Math.max(+e.dataset.minw, b - a).toFixed(2));
      e.style.display = inside ? "" : "none";
    });
    svg.querySelectorAll("line[data-i0]").forEach(function (e) {
      e.setAttribute("x1", C(X(+e.dataset.i0)).toFixed(2));
      e.setAttribute("x2", C(X(+e.dataset.i1)).toFixed(2));
    });
    svg.querySelectorAll("g[data-i]").forEach(function (e) {
      var x = X(+e.dataset.i), show = x >= L - 0.5 && x <= R + 0.5;
      if (e.dataset.i1 !== undefined) {  // a run's name: shown while the run can hold it
        var end = C(X(+e.dataset.i1)); x = C(x);
        show = end - x > LABEL_MIN;
      }
      e.setAttribute("transform", "translate(" + x.toFixed(2) + ",0)");
      e.style.display = show ? "" : "none";
      e.removeAttribute("display");
    });
    svg.querySelectorAll("path[data-s]").forEach(function (e) {
      e.setAttribute("d", step(pts(e.dataset.s)));
    });
    svg.querySelectorAll("path[data-u]").forEach(function (e) {
      var u = pts(e.dataset.u), l = pts(e.dataset.l), d = step(u);
      d += "V" + l[l.length - 1][1];
      for (var k = l.length - 1; k > 0; k--) d += "H" + C(X(l[k][0])).toFixed(2) + "V" + l[k - 1][1];
      e.setAttribute("d", d + "H" + C(X(l[0][0])).toFixed(2) + "Z");
    });
    axis();
    svg.dataset.from = lo; svg.dataset.to = hi;
    document.getElementById("range").textContent = "events " + (Math.floor(lo) + 1) + " to " +
      Math.min(Math.ceil(hi), +svg.dataset.last) + " shown";
  }
  function zoom(f, c) {
    var span = Math.min(HI - LO, Math.max(4, (hi - lo) * f));
    lo = c - (c - lo) * span / (hi - lo);
    lo = Math.max(LO, Math.min(HI - span, lo)); hi = lo + span;
    layout();
  }
  svg.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    zoom(ev.deltaY < 0 ? 0.8 : 1.25, I(svgX(ev)));
  }, {passive: false});
  var drag = null;
  svg.addEventListener("mousedown", function (ev) { drag = {x: svgX(ev), lo: lo, hi: hi}; });
  window.addEventListener("mouseup", function () { drag = null; });
  svg.addEventListener("mousemove", function (ev) {
    if (drag) {
      var d = (svgX(ev) - drag.x) * (drag.hi - drag.lo) / (R - L), span = drag.hi - drag.lo;
      lo = Math.max(LO, Math.min(HI - span, drag.lo - d)); hi = lo + span;
      layout();
    }
    var title = null;
    for (var n = ev.target; n && n !== svg && !title; n = n.parentNode) {
      for (var k = 0; k < n.childNodes.length; k++)
        if (n.childNodes[k].nodeName === "title") { title = n.childNodes[k].textContent; break; }
    }
    var x = svgX(ev);
    if (!title && x >= L && x <= R && pool.rows.length) {
      var i = I(x), a = 0, b = pool.rows.length - 1, best = pool.rows[0];
      while (a <= b) { var m = (a + b) >> 1; if (pool.rows[m][0] <= i) { best = pool.rows[m]; a = m + 1; } else b = m - 1; }
      title = "event " + (best[0] + 1) + " (line " + best[1] + ") " + pool.kinds[best[2]] +
        "\nusable " + best[3] + ": protected " + best[4] + ", resident " + best[5] +
        ", active " + best[6] + ", free " + best[7];
    }
    if (title) {
      tip.textContent = title; tip.style.display = "block";
      tip.style.left = (ev.clientX + 14) + "px"; tip.style.top = (ev.clientY + 14) + "px";
    } else tip.style.display = "none";
  });
  svg.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  document.getElementById("zin").onclick = function () { zoom(0.5, (lo + hi) / 2); };
  document.getElementById("zout").onclick = function () { zoom(2, (lo + hi) / 2); };
  document.getElementById("reset").onclick = function () { lo = LO; hi = HI; layout(); };
  document.querySelectorAll("tr.finding button.jump").forEach(function (b) {
    b.onclick = function () {
      var i = +b.closest("tr").dataset.i, span = Math.min(HI - LO, Math.max(40, (hi - lo) / 8));
      lo = Math.max(LO, Math.min(HI - span, i - span / 2)); hi = lo + span;
      layout(); svg.scrollIntoView();
    };
  });
  layout();
})();
"""
