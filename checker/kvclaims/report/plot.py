"""Static pictures (PNG, SVG) of a trace timeline, drawn with matplotlib (docs/model.md §1, §3, §4, §7).

Renders a :class:`kvclaims.report.timeline.Timeline`, decides nothing: top, the pool's occupancy
bands (protected, resident, active, free) over event index; then each claim's lifecycle (colored
spans) with the leading prefix its predicate measures against the required length (dashed); then
one lane per request with its allocations and decisions, and a lane of allocation victims
(resident victims emphasized). Every finding is a vertical marker across all panels with its rule
id. matplotlib is optional (`kvclaims[plot]`) and imported only here, without pyplot, so no global
backend state is touched.
"""

from __future__ import annotations

import os
from typing import Any

from kvclaims.report.timeline import ClaimTrack, RequestLane, Timeline
from kvclaims.report.palette import (
    BAND_COLORS,
    BAND_LABELS,
    FINDING_COLORS,
    VERDICT_COLORS,
    claim_headline,
    pool_headline,
    request_label,
    state_color,
)

MAX_CLAIM_PANELS = 4
MAX_LANES = 10


class PlotUnavailable(Exception):
    pass


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailable("matplotlib is not installed: PNG and SVG pictures need it; "
                              "install kvclaims[plot] (pip install 'kvclaims[plot]'), or write "
                              ".html, which needs nothing") from None
    return Figure, FigureCanvasAgg


def _steps(xs: list[int], last: int) -> list[int]:
    """x values for a post-step drawing that extends the final value to the end of the trace."""
    return xs + [max(last, xs[-1]) + 1] if xs else xs


def render_plot(tl: Timeline, out: str, *, dpi: int = 110) -> None:
    Figure, FigureCanvasAgg = _matplotlib()
    claims = _chosen_claims(tl)
    lanes = _chosen_lanes(tl)
    n_lanes = len(lanes) + 1  # + victims
    heights = [3.2] + [1.9] * max(1, len(claims)) + [0.45 * n_lanes + 0.5]
    fig = Figure(figsize=(13, sum(heights) + 1.6), dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.32,
                          left=0.15, right=0.84, top=0.90, bottom=0.09)
    ax_pool = fig.add_subplot(gs[0])
    axes = [ax_pool]
    claim_axes = []
    for k in range(max(1, len(claims))):
        a = fig.add_subplot(gs[1 + k], sharex=ax_pool)
        claim_axes.append(a)
        axes.append(a)
    ax_lanes = fig.add_subplot(gs[-1], sharex=ax_pool)
    axes.append(ax_lanes)
    last = tl.last_index
    xmax = last + 1
    xlim = xmax + max(2, int(xmax * 0.05))  # room after the last event to read the end state

    _draw_pool(ax_pool, tl, xmax)
    if claims:
        for a, c in zip(claim_axes, claims):
            _draw_claim(a, tl, c, xmax)
    else:
        a = claim_axes[0]
        a.set_yticks([])
        a.text(0.5, 0.5, "no claims in this trace: nothing is protected, so residents are "
               "ordinary cache (docs/model.md §1)", ha="center", va="center", transform=a.transAxes,
               fontsize=11, color="#555555")
        a.set_ylabel("claims", rotation=0, ha="right", va="center")
    _draw_lanes(ax_lanes, tl, lanes, xmax)
    for a in axes:
        a.set_xlim(0, xlim)
        a.axvline(xmax, color="#555555", linewidth=0.8, linestyle=":")
        a.grid(axis="x", color="#dddddd", linewidth=0.6)
        a.set_axisbelow(True)
        if a is not ax_lanes:
            a.tick_params(labelbottom=False)
    # the event number every report prints (1-based; kvclaims.report.location)
    from matplotlib.ticker import FuncFormatter

    ax_lanes.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v + 1:g}"))
    ax_lanes.set_xlabel("event number (the trace line of each marker is in the HTML form's "
                        "hover text)")
    ax_pool.text(xmax, 1.0, " end", transform=ax_pool.get_xaxis_transform(), fontsize=8,
                 color="#555555", va="bottom")
    _draw_findings(axes, tl)

    verdict = tl.verdict.upper()
    fig.suptitle(f"{os.path.basename(tl.file)}: {verdict}", x=0.15, y=0.985, ha="left",
                 fontsize=15, fontweight="bold", color=VERDICT_COLORS.get(tl.verdict, "black"))
    sub = (f"{tl.events} events · {len(tl.report.claims)} claim(s) · "
           f"{len(tl.report.requests)} request(s) · {tl.victims_total} allocation victim(s), "
           f"{tl.resident_victims_total} of them resident · "
           f"{len(tl.findings)} finding(s)")
    fig.text(0.15, 0.945, sub, ha="left", fontsize=10, color="#333333")
    notes = list(tl.notes)
    if len(claims) < len(tl.claims):
        notes.append(f"claims: {len(claims)} of {len(tl.claims)} drawn (those with findings "
                     "first); use --claim ID for one")
    if len(lanes) < len(tl.requests):
        notes.append(f"requests: {len(lanes)} of {len(tl.requests)} lanes drawn (decided and "
                     "refused first)")
    if notes:
        fig.text(0.15, 0.015, "\n".join(notes), ha="left", va="bottom", fontsize=8.5,
                 color="#8a4b00")
    fig.savefig(out, dpi=dpi)


def _chosen_claims(tl: Timeline) -> list[ClaimTrack]:
    with_findings = {f.claim_id for f in tl.findings}
    ranked = sorted(tl.claims, key=lambda c: (c.claim_id not in with_findings, c.first_index))
    return ranked[:MAX_CLAIM_PANELS]


def _chosen_lanes(tl: Timeline) -> list[RequestLane]:
    ranked = sorted(tl.requests, key=lambda r: (r.outcome not in ("refused", "deferred"),
                                                not r.marks, r.first_index))
    return sorted(ranked[:MAX_LANES], key=lambda r: r.first_index)


def _draw_pool(ax: Any, tl: Timeline, xmax: int) -> None:
    xs = [s.index for s in tl.pool]
    prot = [s.protected for s in tl.pool]
    res = [max(0, s.resident - s.protected) for s in tl.pool]
    act = [s.active for s in tl.pool]
    free = [s.free for s in tl.pool]
    x = _steps(xs, tl.last_index)
    bottom = [0] * len(xs)
    series = (("protected", prot), ("resident", res), ("active", act), ("free", free))
    for name, ys in series:
        top = [b + y for b, y in zip(bottom, ys)]
        hatch = "///" if name == "protected" else None
        ax.fill_between(x, bottom + bottom[-1:], top + top[-1:], step="post",
                        facecolor=BAND_COLORS[name], edgecolor="white" if hatch else "none",
                        hatch=hatch, linewidth=0, label=BAND_LABELS[name])
        bottom = top
    # the resident total as a bold line: this is the thing that collapses or stays
    resident = [s.resident for s in tl.pool]
    ax.step(x, resident + resident[-1:], where="post", color="#0b3d0b", linewidth=2.2)
    usable = max((s.usable for s in tl.pool), default=0)
    ymax = max([usable] + [b for b in bottom]) or 1
    ax.set_ylim(0, ymax * 1.18)
    ax.set_ylabel("pool blocks")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=9, frameon=False)
    headline = pool_headline(tl)
    ax.text(0.005, 0.97, headline, transform=ax.transAxes, ha="left", va="top",
            fontsize=11 if len(headline) < 80 else 9.5, fontweight="bold", color="#111111",
            bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#999999",
                      alpha=0.9))
    # resident victims: where the resident band lost blocks
    rv = [v for v in tl.victims if v.resident]
    if rv:
        ys = []
        for v in rv:
            s = tl.sample_at(v.index)
            ys.append(s.resident if s else 0)
        ax.scatter([v.index + 0.5 for v in rv], ys, marker="v", s=22, color="#d62728",
                   zorder=5, label="resident victim")


def _draw_claim(ax: Any, tl: Timeline, c: ClaimTrack, xmax: int) -> None:
    pts = c.points
    ends = [p.index for p in pts[1:]] + [xmax]
    seen: set[str] = set()
    for p, end in zip(pts, ends):
        label = p.state + (" (silent loss)" if p.silent else "")
        color = state_color(tl, p.state, p.silent)
        ax.axvspan(p.index, end, color=color, alpha=0.35, linewidth=0,
                   label=label if label not in seen else None)
        seen.add(label)
    # state names written once per run of one state wide enough to hold them
    runs: list[list[Any]] = []
    for p, end in zip(pts, ends):
        st = p.state + (" · silent loss" if p.silent else "")
        if runs and runs[-1][0] == st:
            runs[-1][2] = end
        else:
            runs.append([st, p.index, end])
    for st, start, end in runs:
        if (end - start) > xmax * 0.06:
            ax.text(start + xmax * 0.004, 0.04, st, transform=ax.get_xaxis_transform(),
                    fontsize=8.5, color="#222222", va="bottom")
    xs = [p.index for p in pts]
    lead = [p.leading if p.leading is not None else float("nan") for p in pts]
    req = [p.required if p.required is not None else float("nan") for p in pts]
    x = _steps(xs, tl.last_index)
    ax.step(x, lead + lead[-1:], where="post", color="#08306b", linewidth=2.2,
            label="leading prefix (surviving)")
    ax.step(x, req + req[-1:], where="post", color="#b2182b", linewidth=1.6, linestyle="--",
            label="required by predicate")
    mine = [v for v in tl.victims if v.resident and v.claim_id == c.claim_id]
    if mine:
        ax.scatter([v.index + 0.5 for v in mine], [_lead_at(c, v.index) for v in mine],
                   marker="x", s=28, color="#d62728", zorder=5, label="block lost")
    top = max([x for x in lead + req if x == x] + [1])
    ax.set_ylim(0, top * 1.3)
    ax.set_ylabel(f"{c.claim_id}\n{c.mode or '?'}\nblocks", rotation=0, ha="right",
                  va="center", fontsize=9)
    ax.text(0.005, 0.95, claim_headline(c), transform=ax.transAxes, ha="left", va="top",
            fontsize=10, fontweight="bold",
            bbox=dict(boxstyle="round,pad=0.25", facecolor="white", edgecolor="#999999",
                      alpha=0.9))
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)


def _lead_at(c: ClaimTrack, index: int) -> float:
    val: float = float("nan")
    for p in c.points:
        if p.index > index:
            break
        val = p.leading if p.leading is not None else float("nan")
    return val


_MARK_STYLE = {
    "admitted": ("^", "#2ca02c"),
    "deferred": ("s", "#e6a700"),
    "refused": ("X", "#d62728"),
}


def _draw_lanes(ax: Any, tl: Timeline, lanes: list[RequestLane], xmax: int) -> None:
    labels = []
    for y, r in enumerate(lanes):
        ax.plot([r.first_index, r.last_index + 1], [y, y], color="#bbbbbb", linewidth=1)
        if r.first_allocation is not None and r.last_allocation is not None:
            ax.plot([r.first_allocation, r.last_allocation + 1], [y, y], color="#ff7f00",
                    linewidth=6, solid_capstyle="butt")
        for m in r.marks:
            marker, color = _MARK_STYLE.get(m.verb, ("o", "#7b3294"))
            ax.scatter([m.index + 0.5], [y], marker=marker, s=90, color=color, zorder=5,
                       edgecolor="black", linewidth=0.5)
            if m.verb in ("refused", "deferred"):
                text = m.verb + (": blocking " + ", ".join(m.blocking_claim_ids)
                                 if m.blocking_claim_ids else ": no blocking claim named")
                ha = "right" if m.index > xmax * 0.6 else "left"
                dx = -xmax * 0.01 if ha == "right" else xmax * 0.01
                ax.text(m.index + 0.5 + dx, y + 0.28, text, fontsize=9.5, ha=ha,
                        va="center", color=color, fontweight="bold")
        labels.append(request_label(r))
    vy = len(lanes)
    plain = [v.index + 0.5 for v in tl.victims if not v.resident]
    res = [v.index + 0.5 for v in tl.victims if v.resident]
    if plain:
        ax.scatter(plain, [vy] * len(plain), marker="|", s=40, color="#999999",
                   label="victim from free queue")
    if res:
        ax.scatter(res, [vy] * len(res), marker="v", s=55, color="#d62728", zorder=5,
                   label="resident victim (loss)")
    labels.append(f"victims ({tl.victims_total}, {tl.resident_victims_total} resident)")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=9)
    ax.set_ylim(-0.7, len(labels) - 0.3)
    ax.invert_yaxis()
    handles = [
        _proxy(ax, "s", "#ff7f00", "blocks allocated"),
        _proxy(ax, "^", "#2ca02c", "admitted"),
        _proxy(ax, "s", "#e6a700", "deferred"),
        _proxy(ax, "X", "#d62728", "refused"),
        _proxy(ax, "|", "#999999", "victim (free queue)"),
        _proxy(ax, "v", "#d62728", "victim (resident: a loss)"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
              frameon=False)


def _proxy(ax: Any, marker: str, color: str, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([], [], marker=marker, color=color, linestyle="none", markersize=7,
                  label=label)


def _draw_findings(axes: list[Any], tl: Timeline) -> None:
    top = axes[0]
    for k, f in enumerate(tl.findings):
        color = FINDING_COLORS.get(f.status, "#d62728")
        x = f.event_index + 0.5
        for a in axes:
            a.axvline(x, color=color, linewidth=1.6, linestyle="-", alpha=0.9, zorder=6)
        top.annotate(f"{f.rule}\nline {f.line}", xy=(x, 1.0), xycoords=("data", "axes fraction"),
                     xytext=(4, 4 + 22 * (k % 3)), textcoords="offset points", fontsize=9,
                     fontweight="bold", color=color, ha="left", va="bottom",
                     annotation_clip=False)
