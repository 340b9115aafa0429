"""The human report: overall result, gates, claim table, located findings, reconstructed outcome.

Renders a decided :class:`Report` with rich; it decides nothing. The headline is the overall
result (what the exit code says), then the rules' verdict when it differs, then each gate. An
input error's report shows the error and the findings on the part read, marked so, and no
claim table or reconstructed outcome. Each finding shows file:line:column, the quoted line, the
claim's state before the event, the rule's sentence from spec/rules.toml and what happened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from kvclaims.check import selection
from kvclaims.check.verdict import (
    CONFORMANT,
    GATE_FAIL,
    GATE_FAILED,
    INCONCLUSIVE,
    INPUT_ERROR,
    NOT_EXERCISED,
    PASS,
    UNKNOWN,
    VIOLATION,
    Report,
)
from kvclaims.report.order import order_summary
from kvclaims.spec import Spec

_STYLE = {CONFORMANT: "bold green", VIOLATION: "bold red", INCONCLUSIVE: "bold yellow",
          INPUT_ERROR: "bold magenta", PASS: "green", UNKNOWN: "yellow",
          NOT_EXERCISED: "dim", GATE_FAILED: "bold red", GATE_FAIL: "bold red"}
_GATE = {PASS: "PASS", GATE_FAIL: "FAIL", UNKNOWN: "UNKNOWN (passed in the written order only)"}
_SHORT = {PASS: "pass", VIOLATION: "FAIL", UNKNOWN: "?", NOT_EXERCISED: "·"}


# Beyond this many claims, requests or prefixes the text report lists the ones that need
# attention (not conformant, not served) first and says how many more the JSON report holds.
MAX_ROWS = 40


def _shown(items: list, interesting, label: str) -> tuple[list, str | None]:
    if len(items) <= MAX_ROWS:
        return items, None
    ordered = sorted(items, key=lambda x: not interesting(x))
    rest = len(items) - MAX_ROWS
    return ordered[:MAX_ROWS], (f"… and {rest} more {label} (all of them are in "
                                "--format json)")


def _verdict_line(report: Report) -> Text:
    t = Text()
    t.append(f"{report.file}: ", style="bold")
    result = report.result
    t.append(result.upper(), style=_STYLE.get(result, "bold"))
    if result != report.verdict and report.error is None:
        t.append(f" (rules: {report.verdict})", style=_STYLE.get(report.verdict, ""))
    if report.error is None:
        t.append(f"  ({report.events} events, {len(report.claims)} claims, "
                 f"{len(report.requests)} requests)")
    return t


def _gates(report: Report, console: Console) -> None:
    for g in report.gates:
        t = Text()
        t.append(f"gate {g.bundle}: ", style="bold")
        t.append(_GATE[g.status], style=_STYLE[g.status])
        if g.missing:
            t.append(f"  missing: {', '.join(g.missing)}")
        if g.violated:
            t.append(f"  violated: {', '.join(g.violated)}")
        console.print(t)


def render(report: Report, spec: Spec, console: Console,
           strips: Mapping[int, Sequence[str]] | None = None) -> None:
    """Print `report`. `strips`: finding position -> the lines of its claim's ASCII timeline,
    drawn by the caller (kvclaims.explain.strips_for_report reads the trace again; a renderer
    never opens a trace)."""
    console.print(_verdict_line(report))
    left_out = selection.summary(report, spec)
    if left_out is not None:  # beside the verdict: it qualifies it (kvclaims.check.selection)
        console.print(Text(left_out, style="bold yellow"))
    _gates(report, console)
    if report.error is not None:
        e = report.error
        where = report.file if e.line is None else f"{report.file}:{e.line}:{e.column}"
        console.print(Text(f"  {where}: error: {e.message}", style=_STYLE[INPUT_ERROR]))
        if report.findings:
            console.print(f"  findings decided on the {report.events} events read before the "
                          "error (the part read only; no verdict on the trace):")
    claims, claims_more = _shown(list(report.claims), lambda c: c.verdict != CONFORMANT,
                                 "claims")
    if report.claims:
        table = Table(title="claims", title_justify="left", show_edge=False, pad_edge=False)
        for col in ("claim", "mode", "state", "verdict", "victims", "lost after release",
                    "leading/required"):
            table.add_column(col)
        for c in claims:
            lead = "" if c.leading_blocks_survived is None else (
                f"{c.leading_blocks_survived}/{c.required_blocks}")
            table.add_row(c.claim_id, c.mode_spelling or "-", c.final_state,
                          Text(c.verdict, style=_STYLE.get(c.verdict, "")), str(c.victims),
                          str(c.lost_after_release), lead)
        console.print(table)
        if claims_more:
            console.print(Text(claims_more, style="dim"))
        # With many claims, rule lines are printed for the claims that need attention only.
        if len(claims) > 10:
            quiet = [c for c in claims if c.verdict == CONFORMANT]
            claims = [c for c in claims if c.verdict != CONFORMANT]
            if quiet:
                console.print(Text(f"  rule statuses of the {len(quiet)} conformant claims listed "
                                   "are in --format json", style="dim"))
        for c in claims:
            t = Text(f"  {c.claim_id} rules: ", style="bold")
            for rid, st in c.rules.items():
                if st == NOT_EXERCISED:
                    continue
                t.append(f"{rid.removeprefix('R-')} ", style=_STYLE[st])
                t.append(_SHORT[st] + "  ", style=_STYLE[st])
            quiet = [rid.removeprefix("R-") for rid, st in c.rules.items() if st == NOT_EXERCISED]
            if quiet:
                t.append("(not exercised: " + ", ".join(quiet) + ")", style="dim")
            console.print(t)
    strips = strips or {}
    for k, f in enumerate(report.findings):
        rule = spec.rules.get(f.rule)
        head = Text()
        head.append(f"{f.status.upper()} ", style=_STYLE[f.status])
        head.append(f"{f.rule}", style="bold")
        where = _where(report, k)
        head.append(f"  {report.file}:{f.line}:{f.column}  (event #{f.event_index}, {f.event}"
                    f"{where})")
        parts: list[Text] = [head]
        if f.quote:
            parts.append(Text(f"  {f.line} | {f.quote}", style="cyan", overflow="ellipsis",
                              no_wrap=True))
        who = []
        if f.claim_id:
            who.append(f"claim {f.claim_id}")
        if f.state_before:
            who.append(f"state before: {f.state_before}")
        if f.request_id:
            who.append(f"request {f.request_id}")
        if who:
            parts.append(Text("  " + ", ".join(who), style="dim"))
        parts.append(Text("  " + f.message))
        if rule is not None:
            parts.append(Text(f"  rule: {rule.sentence} (MODEL {rule.section})", style="dim"))
        parts.extend(Text("  " + s, style="dim") for s in strips.get(k, ()))
        console.print(Group(*parts))
    more = {r: n for r, n in report.finding_counts.items()}
    shown: dict[str, int] = {}
    for f in report.findings:
        shown[f.rule] = shown.get(f.rule, 0) + 1
    extra = {r: n - shown.get(r, 0) for r, n in more.items() if n > shown.get(r, 0)}
    if extra:
        console.print(Text("  further occurrences not shown (first per claim and rule): "
                           + ", ".join(f"{r} ×{n}" for r, n in sorted(extra.items())),
                           style="dim"))
    if report.error is None:
        _outcome(report, console)
        _order(report, console)
    _stream(report, console)


def _where(report: Report, k: int) -> str:
    """A KV event stream finding's record, batch and event (kvclaims.kvstream)."""
    stream = report.extra.get("stream")
    if stream is None:
        return ""
    loc = stream["locations"][k]
    if loc["record"] is None:
        return "; claim manifest"
    bits = [f"record {loc['record']}"]
    if loc["batch"] is not None:
        bits.append(f"batch {loc['batch']}")
    if loc["batch_event"] is not None:
        bits.append(f"event {loc['batch_event']}")
    return "; " + ", ".join(bits)


def _stream(report: Report, console: Console) -> None:
    """A KV event stream: what was received, and every gap, duplicate, restart."""
    stream = report.extra.get("stream")
    if stream is None:
        return
    t = Text(f"stream: {stream['records']} record(s), {stream['batches']} batch(es) decided, "
             f"reorder window {stream['window']}", style="bold")
    if stream.get("interrupted"):
        t.append(f"; watch interrupted by {stream['interrupted']}", style="bold yellow")
    console.print(t)
    for a in stream["anomalies"]:
        console.print(Text(f"  {a['kind']}: {a['message']}",
                           style="yellow" if a["unknown"] else "dim"))


_ORDER = {
    "all_conform": "every admissible order conforms",
    "none_violate": "no admissible order violates a rule (some leave a rule unknown)",
    "all_violate": "every admissible order violates a rule",
    "some_violate": "some admissible orders conform, others violate",
    "unknown": "the solver could not decide every admissible order",
}


def _order(report: Report, console: Console) -> None:
    """Partly ordered traces (docs/partial.md): what held over the admissible orders, and the
    witnesses' unordered parts as .kvt."""
    how = report.extra.get("linearizations")
    if how is None:
        return
    summary = order_summary(report.extra)
    assert summary is not None
    parts = summary["conflicting"]
    spans = ", ".join(f"{p['events'][0]}..{p['events'][1]}" for p in parts)
    head = (f"events {spans} are unordered" if parts else
            f"{summary['parts']} unordered part(s) ({summary['unordered_events']} events)")
    console.print(Text(f"order: {head}; {_ORDER.get(how, how)}", style="bold"))
    for name in ("violating", "conforming"):
        if not any(name in p["witnesses"] for p in parts):
            continue
        console.print(Text(f"  {name} order:", style="bold"))
        for p in parts:
            (a, b), (la, lb) = p["events"], p["lines"]
            console.print(Text(f"    # events {a}..{b} (lines {la}..{lb}), in this order:",
                               style="dim"))
            for line in p["witnesses"].get(name, ()):
                console.print(Text("    " + line, style="dim" if line.startswith("#") else ""))
    free = summary["order_free"]
    if free["parts"]:
        what = (f"{free['parts']} other unordered part(s) ({free['events']} events): "
                if parts else "")
        console.print(Text(f"  {what}{free['reason']}", style="dim"))


def _outcome(report: Report, console: Console) -> None:
    lines = []
    requests, more_r = _shown(list(report.requests), lambda r: r.outcome != "served", "requests")
    for r in requests:
        bits = [f"request {r.request_id}: {r.outcome}"]
        if r.blocking_claim_ids:
            bits.append(f"blocking {list(r.blocking_claim_ids)}")
        if r.feasibility:
            bits.append(r.feasibility)
        if r.capacity_shortfall_blocks is not None:
            bits.append(f"shortfall {r.capacity_shortfall_blocks}")
        if r.free_blocks_before_allocate is not None:
            bits.append(f"free before {r.free_blocks_before_allocate}")
        if r.future_reuse_admitted is not None:
            bits.append("future reuse " + ("admitted" if r.future_reuse_admitted else "denied"))
        lines.append(", ".join(bits))
    if more_r:
        lines.append(more_r)
    prefixes, more_p = _shown(list(report.prefixes), lambda p: p.victims > 0, "prefixes")
    for p in prefixes:
        lines.append(f"prefix {p.prefix_id}: {p.blocks} blocks, {p.victims} victim(s) "
                     f"({p.cached_victims} cached-prefix reuse), leading {p.leading_blocks_survived}"
                     f" survived, {p.remaining_blocks} remaining"
                     + (f", lost positions {_ranges(p.lost_positions)}" if p.lost_positions else ""))
    if more_p:
        lines.append(more_p)
    claims, more_c = _shown(list(report.claims), lambda c: c.verdict != CONFORMANT, "claims")
    for c in claims:
        if c.materialized is not None:
            lines.append(f"claim {c.claim_id}: {c.final_state}, predicate "
                         f"{'holds' if c.materialized else 'does not hold'}"
                         + (f", surviving {c.surviving_blocks}, leading "
                            f"{c.leading_blocks_survived}, required {c.required_blocks}"
                            if c.surviving_blocks is not None else ""))
    if more_c:
        lines.append(more_c)
    lines.append(f"cached resident victims: {report.cached_resident_victims}; resident "
                 f"{'preserved' if report.resident_preserved else 'not preserved'}")
    console.print(Panel("\n".join(lines), title="reconstructed outcome", title_align="left",
                        expand=False))


def _ranges(xs: tuple[int, ...]) -> str:
    out = []
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(f"{xs[i]}..{xs[j]}" if j > i else str(xs[i]))
        i = j + 1
    return ", ".join(out)
