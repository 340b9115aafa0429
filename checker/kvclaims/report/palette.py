"""Colors and one-line captions shared by the timeline renderers (plot, HTML, ASCII).

Lifecycle colors are chosen by the state's category in spec/lifecycle.toml (docs/model.md §4: under
responsibility, released, harmed), never by re-typed state names, so a new state gets a color.
Captions say in words what the picture shows: whether residents were kept or evicted.
"""

from __future__ import annotations

from kvclaims.report.timeline import ClaimTrack, RequestLane, Timeline

BAND_COLORS = {
    "protected": "#1f4e99",
    "resident": "#41ab5d",
    "active": "#fd8d3c",
    "free": "#eeeeee",
}
BAND_LABELS = {
    "protected": "protected (claimed)",
    "resident": "resident (cached)",
    "active": "active (requests)",
    "free": "free",
}
VERDICT_COLORS = {
    "conformant": "#1a7f37",
    "violation": "#c62828",
    "gate_failed": "#c62828",
    "inconclusive": "#b26a00",
    "input_error": "#8e24aa",
}
FINDING_COLORS = {"violation": "#c62828", "unknown": "#e08e00"}
# protected blocks by the claim's protection mode (docs/model.md §5), in the order the modes
# first appear in a timeline; a mode is never drawn as another's
_MODES = ("#1f4e99", "#6a51a3", "#2b8cbe", "#08519c", "#807dba", "#3f007d")
# the offloadable sub-lifecycle (docs/model.md §4), in spec order after its initial state
_OFFLOAD = ("#9e9ac8", "#fdae6b", "#31a354", "#de2d26", "#636363")
SILENT_COLOR = "#b2182b"
LOSS_COLOR = "#d62728"

_RESPONSIBLE = ("#a1d99b", "#238b45", "#006d2c")
_RELEASED = ("#9ecae1", "#bcbddc", "#fdd49e", "#d9d9d9", "#c7c7c7")
_BEFORE = ("#f7f7f7", "#deebf7")
_HARMED = "#fb6a4a"
_SILENT = SILENT_COLOR


def state_colors(tl: Timeline) -> dict[str, str]:
    out: dict[str, str] = {}
    r = rel = b = 0
    for st in tl.states:
        if st == tl.harmed_state:
            out[st] = _HARMED
        elif st in tl.responsible:
            out[st] = _RESPONSIBLE[min(r, len(_RESPONSIBLE) - 1)]
            r += 1
        elif st in tl.released:
            out[st] = _RELEASED[rel % len(_RELEASED)]
            rel += 1
        else:
            out[st] = _BEFORE[min(b, len(_BEFORE) - 1)]
            b += 1
    return out


def mode_colors(tl: Timeline) -> dict[str, str]:
    """A colour per protection mode that protected blocks in `tl`."""
    modes: list[str] = []
    for s in tl.pool:
        for m, _ in s.protected_modes:
            if m not in modes:
                modes.append(m)
    return {m: _MODES[k % len(_MODES)] for k, m in enumerate(sorted(modes))}


def offload_colors(tl: Timeline) -> dict[str, str]:
    """A colour per offload state other than the initial one (the claim's KV on the GPU)."""
    states = [s for s in tl.offload_states if s != tl.offload_initial]
    return {s: _OFFLOAD[k % len(_OFFLOAD)] for k, s in enumerate(states)}


def state_color(tl: Timeline, state: str, silent: bool) -> str:
    if silent:
        return _SILENT
    return state_colors(tl).get(state, "#cccccc")


def pool_headline(tl: Timeline) -> str:
    """One sentence on the residents: kept or evicted, and the protected blocks."""
    if not tl.pool:
        return "no events"
    peak = max(s.resident for s in tl.pool)
    end = tl.pool[-1].resident
    ppeak = max(s.protected for s in tl.pool)
    pend = tl.pool[-1].protected
    lost = tl.resident_victims_total
    if peak == 0:
        text = "no resident blocks"
    elif lost:
        text = (f"RESIDENTS EVICTED: {lost} resident block(s) lost; "
                f"resident {peak} → {end} at the end")
    else:
        text = f"RESIDENTS KEPT: resident {peak} → {end} at the end, none evicted"
    if ppeak:
        verb = "kept" if pend >= ppeak else "not kept"
        text += f"; protected {ppeak} → {pend} ({verb})"
    return text


def claim_headline(c: ClaimTrack) -> str:
    last = c.points[-1] if c.points else None
    bits = [f"{c.claim_id}: {c.verdict}", f"final state {c.final_state}"]
    if last is not None and last.leading is not None:
        bits.append(f"leading {last.leading}/{last.required if last.required is not None else '?'}"
                    f" ({'predicate holds' if last.holds else 'predicate broken'})")
    bits.append(f"{c.victims} block(s) lost")
    if last is not None and last.silent:
        bits.append("lost silently")
    return " · ".join(bits)


def request_label(r: RequestLane) -> str:
    return f"request {r.request_id}: {r.outcome}"
