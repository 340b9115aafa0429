"""`kvclaims explain`: a picture of what happened to the pool and to each claim (docs/model.md §6-§7).

The verdict, findings and claim verdicts drawn are those of the one decision path
(kvclaims.run.decide_path, with the same options as `kvclaims check`); the timeline's replay only
samples the pool and claim states to draw. It hands the timeline to a renderer chosen by the
output's suffix: `.png`/`.svg` (matplotlib, optional: kvclaims[plot]) or
`.html` (one self-contained file, drawn without matplotlib, that zooms and pans). The events are
read the way `check` reads them (kvclaims.run.open_events, the format detected by
kvclaims.trace.detect; standard input as `-`). A window (`--from`/`--to` an event number or a
time since the first event, `--around` a finding) draws that part only, every event of it. Bad
input is a located message and exit code 2, never a traceback.

A command above the pipeline and the renderers (docs/architecture.md): it opens and decides the
trace through kvclaims.run, builds the timeline (kvclaims.report.timeline) and hands it to a
renderer; :func:`strips_for_report` does the same for the text report's finding strips.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from dataclasses import replace
from typing import Any, TextIO

from kvclaims.report.ascii_timeline import StripIndex, ascii_timeline
from kvclaims.report.timeline import DEFAULT_MAX_POINTS, Timeline, build_timeline

__all__ = ["ExplainError", "Timeline", "build_timeline", "explain_command", "read_timeline",
           "render_to", "strips_for_report"]

SUFFIXES = (".png", ".svg", ".html", ".htm")
MAX_REREAD_EVENTS = 200_000


class ExplainError(Exception):
    """A usage or input problem, with the location already in the message."""


def _stream_events(path: str, data: bytes, spec: object, claims: str | None,
                   runtime: str = "vllm") -> list:
    """A recorded KV event stream's events, joined with its manifest as `kvclaims check` joins
    them (kvclaims.kvstream), gap markers included."""
    from kvclaims.kvstream import StreamCheck
    from kvclaims.trace.formats import importer, manifest_runtime
    from kvclaims.trace.vllm_events import load_manifest

    if claims is None:
        raise ExplainError(f"{path}:1:1: a recorded KV event stream needs its claim manifest: "
                           "--claims MANIFEST.toml")
    fmt = importer(runtime)  # the stream's format (kvclaims.trace.formats)
    frames = fmt.frames(data, path)
    check = StreamCheck(spec, load_manifest(claims, manifest_runtime(runtime)), path,  # type: ignore[arg-type]
                        fmt=fmt.name, decode=fmt.decoder(),
                        keep=None)  # the picture shows every event
    for frame in frames:
        check.push(frame)
    check.finish()
    return check.events


def read_timeline(path: str, spec: object = None, input_format: str | None = None,
                  claims: str | None = None, label: str | None = None,
                  **kwargs: object) -> Timeline:
    """Read and replay one trace file; raise ExplainError `file:line:column: message` on bad
    input (the trace must be read to its end for a picture of it to be honest). A recorded KV
    event stream (format vllm) is joined with the claim manifest `claims` first."""
    from kvclaims import spec as spec_mod
    from kvclaims.check.replay import ClaimLimit
    from kvclaims.run import Options, open_events
    from kvclaims.trace.compressed import decompressed
    from kvclaims.trace.detect import STREAM_FORMATS, detect
    from kvclaims.trace.model import InputError

    S = spec if spec is not None else spec_mod.load()
    try:
        fh = open(path, "rb")
    except OSError as err:
        raise ExplainError(f"{path}: cannot open: {err.strerror}") from None
    with fh:
        try:
            fh = decompressed(fh, path)  # type: ignore[assignment]
            stream = input_format if input_format in STREAM_FORMATS else None
            if input_format is None:
                found = detect(fh.peek(4096)[:4096])  # type: ignore[attr-defined]
                stream = found if found in STREAM_FORMATS else None
            if stream is not None:
                events = _stream_events(path, fh.read(), S, claims, stream)
            else:
                events = open_events(fh, label or path, S,  # type: ignore[arg-type]
                                     Options(input_format=input_format))
            timeline = build_timeline(events, S, label or path, **kwargs)  # type: ignore[arg-type]
        except InputError as err:
            raise ExplainError(f"{err.file}:{err.line}:{err.column}: {err.message}") from None
        except ClaimLimit as err:
            raise ExplainError(f"{path}:{err.event.line}:{err.event.column}: {err}") from None
        except UnicodeDecodeError as err:
            raise ExplainError(f"{path}:1:1: not UTF-8 text: {err.reason}") from None
    if timeline.events == 0:
        raise ExplainError(f"{path}:1:1: empty trace: no events")
    return timeline


def render_to(timeline: Timeline, out: str, claim: str | None = None) -> None:
    """Write the picture of `timeline` to `out`, in the format its suffix names."""
    suffix = os.path.splitext(out)[1].lower()
    if claim is not None:
        if timeline.claim(claim) is None:
            known = ", ".join(c.claim_id for c in timeline.claims) or "none"
            raise ExplainError(f"{timeline.file}: no claim {claim!r} in the trace "
                               f"(claims: {known})")
        timeline = timeline.only_claim(claim)
    if suffix in (".html", ".htm"):
        from kvclaims.report.html import render_html

        text = render_html(timeline)
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text)
    elif suffix in (".png", ".svg"):
        from kvclaims.report.plot import PlotUnavailable, render_plot

        try:
            render_plot(timeline, out)
        except PlotUnavailable as err:
            raise ExplainError(str(err)) from None
    else:
        raise ExplainError(f"{out}: unknown output format {suffix or '(no suffix)'!r}; "
                           "use .png, .svg or .html")


_TIME = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|ms|s)$")
_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
AROUND_EVENTS = 100  # events drawn either side of --around's finding
# A window draws every event of it up to this many (a longer one is downsampled, and says so);
# the whole trace's overview keeps DEFAULT_MAX_POINTS.
WINDOW_MAX_POINTS = 200_000


def _bound(value: str | None, what: str) -> int | float | None:
    """An event number (1-based, as every view prints it) -> its 0-based index; a time
    (`2.5ms`, `120us`, `3s`, `900ns`, since the first event) -> nanoseconds as a float."""
    if value is None:
        return None
    if value.isdigit() and int(value) >= 1:
        return int(value) - 1
    m = _TIME.match(value)
    if m:
        return float(m.group(1)) * _UNIT_NS[m.group(2)]
    raise ExplainError(f"{what} {value!r}: give an event number (1, 2, ...) or a time since the "
                       "first event (e.g. 250us, 1.5ms, 2s)")


def _time_to_index(path: str, spec: Any, options: Any, lo: float | None,
                   hi: float | None) -> tuple[int | None, int | None]:
    """The first event at or after `lo` ns and the last at or before `hi` ns since the first
    event's timestamp (timestamp_ns, else monotonic_ns)."""
    from kvclaims.run import open_events

    first_ts = None
    a = b = None
    with open(path, "rb") as fh:
        for k, ev in enumerate(open_events(fh, path, spec, options)):
            ts = ev.fields.get("timestamp_ns", ev.fields.get("monotonic_ns"))
            if ts is None:
                raise ExplainError(f"line {ev.line}: a time window needs "
                                   "timestamp_ns (or monotonic_ns) on every event; use event "
                                   "numbers")
            if first_ts is None:
                first_ts = ts
            t = ts - first_ts
            if lo is not None and a is None and t >= lo:
                a = k
            if hi is not None and t <= hi:
                b = k
    if lo is not None and a is None:
        raise ExplainError("no event at or after the window's start")
    return a, b


def _window(path: str, spec: Any, options: Any, report: Any, start: str | None,
            end: str | None, around: str | None) -> tuple[int, int | None] | None:
    if around is not None:
        if start is not None or end is not None:
            raise ExplainError("--around picks its own window: give it without --from/--to")
        if around.isdigit() and int(around) >= 1:
            at = int(around) - 1
        else:
            want = {around, "R-" + around}
            hits = [f for f in report.findings if f.rule in want]
            if not hits:
                rules = ", ".join(sorted({f.rule for f in report.findings})) or "none"
                raise ExplainError(f"--around {around}: no finding of that rule (findings: "
                                   f"{rules}); give a rule id or an event number")
            at = hits[0].event_index
        if at >= report.events:
            raise ExplainError(f"--around {around}: the trace has {report.events} events")
        return (max(0, at - AROUND_EVENTS), at + AROUND_EVENTS)
    lo, hi = _bound(start, "--from"), _bound(end, "--to")
    if lo is None and hi is None:
        return None
    if isinstance(lo, float) or isinstance(hi, float):
        if isinstance(lo, int) or isinstance(hi, int):
            raise ExplainError("--from and --to: both event numbers or both times")
        lo, hi_index = _time_to_index(path, spec, options, lo, hi)
        if hi is not None and hi_index is None:
            raise ExplainError(f"{report.file}: no event at or before the window's end")
        hi = hi_index
    first = lo or 0
    if first >= report.events:
        raise ExplainError(f"--from: the trace has {report.events} events")
    if hi is not None and hi < first:
        raise ExplainError("--to is before --from: the window is empty")
    return (first, hi)


def explain_command(trace: str, claim: str | None, out: str, input_format: str | None,
                    stderr: TextIO | None = None, options: Any = None,
                    start: str | None = None, end: str | None = None,
                    around: str | None = None) -> int:
    """The CLI entry: 0 written, 2 usage or input error (message on stderr; an input `check`
    calls inconclusive, e.g. an unknown format version, exits 3 as `check` does). `options`: a
    kvclaims.run.Options (default: the defaults, with `input_format`). `start`/`end`: the
    window's first and last event (number or time), `around`: a finding's rule or an event
    number to centre a window on."""
    err = stderr if stderr is not None else sys.stderr
    if trace != "-":
        return _explain(trace, trace, claim, out, input_format, err, options, start, end, around)
    # standard input is read once, kept in a temporary file for the decision and the picture
    data = sys.stdin.buffer.read()
    fd, tmp = tempfile.mkstemp(prefix="kvclaims-explain-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return _explain(tmp, "<stdin>", claim, out, input_format, err, options, start, end,
                        around)
    finally:
        os.unlink(tmp)


def _explain(trace: str, label: str, claim: str | None, out: str, input_format: str | None,
             err: TextIO, options: Any, start: str | None, end: str | None,
             around: str | None) -> int:
    from kvclaims import spec as spec_mod
    from kvclaims.run import Options, decide_path, exit_code
    from kvclaims.trace.detect import FORMATS, STREAM_FORMATS

    if options is None:
        options = Options(input_format=input_format)
    if os.path.splitext(out)[1].lower() not in SUFFIXES:
        print(f"kvclaims explain: {out}: the output must end in .png, .svg or .html",
              file=err)
        return 2
    if input_format not in (None, *FORMATS, *STREAM_FORMATS):
        print(f"kvclaims explain: unknown input format {input_format!r} "
              f"({', '.join((*FORMATS, *STREAM_FORMATS))})",
              file=err)
        return 2
    spec = spec_mod.load()
    report = decide_path(trace, spec, options)
    if label != trace:
        report = replace(report, file=label)
    if report.error is not None:
        e = report.error
        where = label if e.line is None else f"{label}:{e.line}:{e.column}"
        print(f"kvclaims explain: {where}: {e.message}", file=err)
        return exit_code([report])
    try:
        window = _window(trace, spec, options, report, start, end, around)
        timeline = read_timeline(trace, spec, input_format=options.input_format,
                                 claims=options.claims, decided=report, label=label,
                                 window=window,
                                 max_points=DEFAULT_MAX_POINTS if window is None else
                                 WINDOW_MAX_POINTS)
        render_to(timeline, out, claim)
    except ExplainError as e:
        print(f"kvclaims explain: {e}", file=err)
        return 2
    except OSError as e:
        print(f"kvclaims explain: {out}: cannot write: {e.strerror}", file=err)
        return 2
    return 0


def strips_for_report(report: Any, spec: Any, width: int = 60) -> dict[int, list[str]]:
    """Strips for the text report (kvclaims.report.text.render's `strips`): finding position in
    `report.findings` -> lines, one strip per event and claim (after the last of the findings at
    that event on that claim).

    The checker streams and keeps no history, so the trace file is read again here (only when the
    report has findings that name a claim), above the renderers, which never open a trace. Standard input cannot be read again and very long
    traces are not: then the strip says so instead of silently missing.
    """
    fs = report.findings
    # The last finding of each run of findings at one event on one claim carries the strip.
    wanted = [k for k, f in enumerate(fs) if f.claim_id and not (
        k + 1 < len(fs) and fs[k + 1].claim_id == f.claim_id
        and fs[k + 1].event_index == f.event_index)]
    if not wanted or report.error is not None:
        return {}
    path = report.file
    if path in ("-", "<stdin>") or not os.path.isfile(path):
        return {}
    if report.events > MAX_REREAD_EVENTS:
        note = [f"(timeline omitted: {report.events} events; `kvclaims explain {path} "
                "--out FILE.html` draws it)"]
        return {k: note for k in wanted}
    try:
        tl = read_timeline(path, spec, decided=report)
    except (ExplainError, OSError):
        return {}
    ix = StripIndex(tl)
    cache: dict[str, list[str]] = {}
    out: dict[int, list[str]] = {}
    for k in wanted:
        cid = report.findings[k].claim_id
        if cid not in cache:
            cache[cid] = ascii_timeline(tl, cid, width, ix) if cid in ix.claims else []
        if cache[cid]:
            out[k] = cache[cid]
    return out
