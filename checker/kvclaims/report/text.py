"""The human report: overall result, gates, claim table, located findings, reconstructed outcome.

Renders a decided :class:`Report` with rich; it decides nothing. The headline is the overall
result (what the exit code says), then the rules' verdict when it differs, then each gate. An
input error's report shows the error and the findings on the part read, marked so, and no
claim table or reconstructed outcome. Each finding shows file:line:column, the quoted line, the
claim's state before the event, the rule's sentence from spec/rules.toml and what happened.

Nothing is ever cut: on a terminal, or with `--width N`, every line is wrapped at spaces to the
width, a word longer than the width stands alone on its line, and the claim table turns into one
record per claim when its columns do not fit; off a terminal (a pipe, a file) each line is
written whole, one logical line per line, so it greps and diffs the same in every checkout. An event is located the one
way every view locates it (kvclaims.report.location: file:line:column and a 1-based event
number). Rendering is linear in the report: each claim's timeline strip is drawn once per event,
from one replay of the trace (kvclaims.report.ascii_timeline).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from rich.cells import cell_len
from rich.console import Console
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
from kvclaims.report.location import location, place
from kvclaims.report.order import order_summary
from kvclaims.spec import Spec

MIN_WIDTH = 20
UNWRAPPED = 1 << 20  # the console's width off a terminal: lines are never folded
# a word, a whole location (`file:line:column event N`), a numbered place (`event N`, `record N`,
# `batch N`, `position N`) or a headline (`file: RESULT (rules: verdict)`): wrapping never splits one
_WORD = re.compile(r"\S+:\d+:\d+ event \d+|\S+: [A-Z_]{5,}(?: \(rules: \w+\))?"
                   r"|(?:event|record|batch|position) \d+\S*|\S+")


def console_for(width: int | None = None) -> Console:
    """The console the text report prints to: `width` when given (`--width N`), else the
    terminal's width on a terminal, else unlimited (lines written whole). The report wraps its
    own lines, so the console never folds or cuts one (soft_wrap)."""
    out = Console(highlight=False, soft_wrap=True)
    if width is not None:
        return Console(highlight=False, soft_wrap=True, width=max(MIN_WIDTH, width))
    if not out.is_terminal:
        return Console(highlight=False, soft_wrap=True, width=UNWRAPPED)
    return out


def wrap(text: Text | str, width: int, style: str = "") -> list[Text]:
    """`text` broken at spaces into lines of at most `width` cells; a continuation line is
    indented four more than the first; a word longer than its line stands alone, whole (so an id
    or a number is never split or cut)."""
    t = text if isinstance(text, Text) else Text(text, style=style)
    plain = t.plain
    if cell_len(plain) <= width or "\n" in plain:
        return [t]
    lead = len(plain) - len(plain.lstrip(" "))
    hang = " " * (lead + 4)
    cuts: list[int] = []  # offsets where a continuation line starts
    start, pad, has_word = 0, 0, False
    for m in _WORD.finditer(plain):
        if has_word and pad + cell_len(plain[start:m.end()]) > width:
            cuts.append(m.start())
            start, pad = m.start(), len(hang)
        has_word = True
    if not cuts:
        return [t]
    pieces = t.divide(cuts)
    out = [pieces[0]]
    out[0].rstrip()
    for piece in list(pieces)[1:]:
        piece.rstrip()
        out.append(Text(hang) + piece)
    return out


class _Printer:
    """Collects logical lines wrapped to one width (see :func:`wrap`); :meth:`flush` prints
    them in chunks (one console call per line costs more than the rest of the report)."""

    CHUNK = 2000

    def __init__(self, console: Console, width: int | None):
        self.console = console
        self.width = max(MIN_WIDTH, width if width is not None else console.width)
        self.lines: list[Text] = []

    def __call__(self, text: Text | str, style: str = "") -> None:
        self.lines.extend(wrap(text, self.width, style))
        if len(self.lines) >= self.CHUNK:
            self.flush()

    def raw(self, text: str, style: str = "") -> None:
        """A line of drawing (a timeline row) printed as is: it has no id or number to cut."""
        self.lines.append(Text(text, style=style))

    def flush(self) -> None:
        if self.lines:
            self.console.print(Text("\n").join(self.lines), soft_wrap=True)
            self.lines = []

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


def _gates(report: Report, out: _Printer) -> None:
    for g in report.gates:
        t = Text()
        t.append(f"gate {g.bundle}: ", style="bold")
        t.append(_GATE[g.status], style=_STYLE[g.status])
        if g.missing:
            t.append(f"  missing: {', '.join(g.missing)}")
        if g.violated:
            t.append(f"  violated: {', '.join(g.violated)}")
        out(t)


_CLAIM_COLUMNS = ("claim", "mode", "state", "verdict", "victims", "lost after release",
                  "leading/required")


def _claim_table(claims: list, out: _Printer) -> None:
    """An aligned table when every column fits the width, else one wrapped record per claim."""
    rows = []
    for c in claims:
        lead = "" if c.leading_blocks_survived is None else (
            f"{c.leading_blocks_survived}/{c.required_blocks}")
        rows.append((c.claim_id, c.mode_spelling or "-", c.final_state, c.verdict,
                     str(c.victims), str(c.lost_after_release), lead))
    widths = [max([cell_len(h)] + [cell_len(r[k]) for r in rows])
              for k, h in enumerate(_CLAIM_COLUMNS)]
    if sum(widths) + 2 * (len(widths) - 1) <= out.width:
        out(Text("claims", style="bold"))
        out(Text("  ".join(h.ljust(w) for h, w in zip(_CLAIM_COLUMNS, widths)).rstrip(),
                 style="bold"))
        for r in rows:
            t = Text()
            for k, (cell, w) in enumerate(zip(r, widths)):
                if k:
                    t.append("  ")
                t.append(cell.ljust(w) if k < len(r) - 1 else cell,
                         style=_STYLE.get(cell, "") if k == 3 else "")
            out(t)
        return
    out(Text("claims", style="bold"))
    for r in rows:
        t = Text(f"  claim {r[0]}: ")
        t.append(f"mode {r[1]}, state {r[2]}, verdict ")
        t.append(r[3], style=_STYLE.get(r[3], ""))
        t.append(f", victims {r[4]}, lost after release {r[5]}"
                 + (f", leading/required {r[6]}" if r[6] else ""))
        out(t)


def render(report: Report, spec: Spec, console: Console,
           strips: Mapping[int, Sequence[str]] | None = None, width: int | None = None) -> None:
    """Print `report` to `console`, every line wrapped to `width` (default: the console's).
    `strips`: finding position -> the lines of its claim's ASCII timeline, drawn by the caller
    (kvclaims.explain.strips_for_report reads the trace again; a renderer never opens a trace)."""
    out = _Printer(console, width)
    out(_verdict_line(report))
    left_out = selection.summary(report, spec)
    if left_out is not None:  # beside the verdict: it qualifies it (kvclaims.check.selection)
        out(Text(left_out, style="bold yellow"))
    _gates(report, out)
    if report.error is not None:
        e = report.error
        out(Text(f"  {place(report.file, e.line, e.column)}: error: {e.message}",
                 style=_STYLE[INPUT_ERROR]))
        if report.findings:
            out(f"  findings decided on the {report.events} events read before the "
                "error (the part read only; no verdict on the trace):")
    claims, claims_more = _shown(list(report.claims), lambda c: c.verdict != CONFORMANT,
                                 "claims")
    if report.claims:
        _claim_table(claims, out)
        if claims_more:
            out(Text(claims_more, style="dim"))
        # With many claims, rule lines are printed for the claims that need attention only.
        if len(claims) > 10:
            quiet = [c for c in claims if c.verdict == CONFORMANT]
            claims = [c for c in claims if c.verdict != CONFORMANT]
            if quiet:
                out(Text(f"  rule statuses of the {len(quiet)} conformant claims listed "
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
            out(t)
    strips = strips or {}
    for k, f in enumerate(report.findings):
        rule = spec.rules.get(f.rule)
        head = Text()
        head.append(f"{f.status.upper()} ", style=_STYLE[f.status])
        head.append(f"{f.rule}", style="bold")
        head.append(f"  {location(report.file, f.line, f.column, f.event_index)}"
                    f" ({f.event}{_where(report, k)})")
        out(head)
        if f.quote:
            out(Text(f"  {f.line} | {_quote(f.quote)}", style="cyan"))
        who = []
        if f.claim_id:
            who.append(f"claim {f.claim_id}")
        if f.state_before:
            who.append(f"state before: {f.state_before}")
        if f.request_id:
            who.append(f"request {f.request_id}")
        if who:
            out(Text("  " + ", ".join(who), style="dim"))
        out(Text("  " + f.message))
        if rule is not None:
            out(Text(f"  rule: {rule.sentence} (docs/model.md {rule.section})", style="dim"))
        strip = strips.get(k, ())
        for n, s in enumerate(strip):
            if 1 <= n <= 3:
                out.raw("  " + s, style="dim")
            else:
                out(Text("  " + s, style="dim"))
    more = {r: n for r, n in report.finding_counts.items()}
    shown: dict[str, int] = {}
    for f in report.findings:
        shown[f.rule] = shown.get(f.rule, 0) + 1
    extra = {r: n - shown.get(r, 0) for r, n in more.items() if n > shown.get(r, 0)}
    if extra:
        out(Text("  further occurrences not shown (first per claim and rule): "
                 + ", ".join(f"{r} ×{n}" for r, n in sorted(extra.items())), style="dim"))
    if report.error is None:
        _outcome(report, out)
        _order(report, out)
    _stream(report, out)
    out.flush()


def _quote(quote: str) -> str:
    """The quoted input line; a line the checker kept only the start of (Finding.quote is cut at
    a fixed length) ends at its last whole word and says so, so no token is shown cut."""
    from kvclaims.check.replay import _QUOTE_CHARS

    if len(quote) < _QUOTE_CHARS:
        return quote
    cut = max(quote.rfind(" "), quote.rfind(","))
    return (quote[:cut] if cut > 0 else "") + " … (the line goes on)"


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
    if loc["batch_event"] is not None:  # not an event number: the place within the batch
        bits.append(f"position {loc['batch_event']} in the batch")
    return "; " + ", ".join(bits)


def _stream(report: Report, out: _Printer) -> None:
    """A KV event stream: what was received, and every gap, duplicate, restart."""
    stream = report.extra.get("stream")
    if stream is None:
        return
    t = Text(f"stream: {stream['records']} record(s), {stream['batches']} batch(es) decided, "
             f"reorder window {stream['window']}", style="bold")
    if stream.get("interrupted"):
        t.append(f"; watch interrupted by {stream['interrupted']}", style="bold yellow")
    out(t)
    for a in stream["anomalies"]:
        out(Text(f"  {a['kind']}: {a['message']}", style="yellow" if a["unknown"] else "dim"))


_ORDER = {
    "all_conform": "every admissible order conforms",
    "none_violate": "no admissible order violates a rule (some leave a rule unknown)",
    "all_violate": "every admissible order violates a rule",
    "some_violate": "some admissible orders conform, others violate",
    "unknown": "the solver could not decide every admissible order",
}


def _order(report: Report, out: _Printer) -> None:
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
    out(Text(f"order: {head}; {_ORDER.get(how, how)}", style="bold"))
    for name in ("violating", "conforming"):
        if not any(name in p["witnesses"] for p in parts):
            continue
        out(Text(f"  {name} order:", style="bold"))
        for p in parts:
            (a, b), (la, lb) = p["events"], p["lines"]
            out(Text(f"    # events {a}..{b} (lines {la}..{lb}), in this order:",
                               style="dim"))
            for line in p["witnesses"].get(name, ()):
                out(Text("    " + line, style="dim" if line.startswith("#") else ""))
    free = summary["order_free"]
    if free["parts"]:
        what = (f"{free['parts']} other unordered part(s) ({free['events']} events): "
                if parts else "")
        out(Text(f"  {what}{free['reason']}", style="dim"))


def _outcome(report: Report, out: _Printer) -> None:
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
    out(Text("reconstructed outcome", style="bold"))
    for line in lines:
        out("  " + line)


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
