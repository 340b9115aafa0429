"""`kvclaims explain`: a picture of what happened to the pool and to each claim (docs/model.md §6-§7).

The verdict, findings and claim verdicts drawn are those of the one decision path
(kvclaims.run.decide_path, with the same options as `kvclaims check`); the timeline's replay only
samples the pool and claim states to draw. It hands the timeline to a renderer chosen by the
output's suffix: `.png`/`.svg` (matplotlib, optional: kvclaims[plot]) or
`.html` (one self-contained file, drawn without matplotlib). Bad input is a located message and
exit code 2, never a traceback.

A command above the pipeline and the renderers (docs/architecture.md): it opens and decides the
trace through kvclaims.run, builds the timeline (kvclaims.report.timeline) and hands it to a
renderer; :func:`strips_for_report` does the same for the text report's finding strips.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from kvclaims.report.ascii_timeline import ascii_timeline
from kvclaims.report.timeline import Timeline, build_timeline

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
    from kvclaims.trace.kv_records import read_frames
    from kvclaims.trace.vllm_events import load_manifest

    if claims is None:
        raise ExplainError(f"{path}:1:1: a recorded KV event stream needs its claim manifest: "
                           "--claims MANIFEST.toml")
    check = StreamCheck(spec, load_manifest(claims, runtime), path)  # type: ignore[arg-type]
    for frame in read_frames(data, path):
        check.push(frame)
    check.finish()
    return check.events


def read_timeline(path: str, spec: object = None, input_format: str | None = None,
                  claims: str | None = None, **kwargs: object) -> Timeline:
    """Read and replay one trace file; raise ExplainError `file:line:column: message` on bad
    input (the trace must be read to its end for a picture of it to be honest). A recorded KV
    event stream (format vllm) is joined with the claim manifest `claims` first."""
    from kvclaims import spec as spec_mod
    from kvclaims.check.replay import ClaimLimit
    from kvclaims.run import Options, open_events
    from kvclaims.trace.compressed import decompressed
    from kvclaims.trace.detect import detect
    from kvclaims.trace.model import InputError

    S = spec if spec is not None else spec_mod.load()
    try:
        fh = open(path, "rb")
    except OSError as err:
        raise ExplainError(f"{path}: cannot open: {err.strerror}") from None
    with fh:
        try:
            fh = decompressed(fh, path)  # type: ignore[assignment]
            if input_format in ("vllm", "sglang") or (input_format is None
                                                      and detect(fh.peek(16)[:16]) == "vllm"):
                events = _stream_events(path, fh.read(), S, claims, input_format or "vllm")
            else:
                events = open_events(fh, path, S, Options(input_format=input_format))  # type: ignore[arg-type]
            timeline = build_timeline(events, S, path, **kwargs)  # type: ignore[arg-type]
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


def explain_command(trace: str, claim: str | None, out: str, input_format: str | None,
                    stderr: TextIO | None = None, options: Any = None) -> int:
    """The CLI entry: 0 written, 2 usage or input error (message on stderr; an input `check`
    calls inconclusive, e.g. an unknown format version, exits 3 as `check` does). `options`: a
    kvclaims.run.Options (default: the defaults, with `input_format`)."""
    from kvclaims import spec as spec_mod
    from kvclaims.run import Options, decide_path, exit_code

    err = stderr if stderr is not None else sys.stderr
    if options is None:
        options = Options(input_format=input_format)
    if os.path.splitext(out)[1].lower() not in SUFFIXES:
        print(f"kvclaims explain: {out}: the output must end in .png, .svg or .html",
              file=err)
        return 2
    if input_format not in (None, "kvt", "jsonl", "vllm", "sglang"):
        print(f"kvclaims explain: unknown input format {input_format!r} "
              "(kvt, jsonl, vllm or sglang)",
              file=err)
        return 2
    spec = spec_mod.load()
    report = decide_path(trace, spec, options)
    if report.error is not None:
        e = report.error
        where = trace if e.line is None else f"{trace}:{e.line}:{e.column}"
        print(f"kvclaims explain: {where}: {e.message}", file=err)
        return exit_code([report])
    try:
        timeline = read_timeline(trace, spec, input_format=options.input_format,
                                 claims=options.claims, decided=report)
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
    `report.findings` -> lines.

    The checker streams and keeps no history, so the trace file is read again here (only when the
    report has findings that name a claim), above the renderers, which never open a trace.
    Standard input cannot be read again and very long traces are not: then the strip says so
    instead of silently missing.
    """
    wanted = [k for k, f in enumerate(report.findings) if f.claim_id]
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
        tl = read_timeline(path, spec)
    except (ExplainError, OSError):
        return {}
    cache: dict[str, list[str]] = {}
    out: dict[int, list[str]] = {}
    for k in wanted:
        cid = report.findings[k].claim_id
        if cid not in cache:
            cache[cid] = ascii_timeline(tl, cid, width) if tl.claim(cid) else []
        if cache[cid]:
            out[k] = cache[cid]
    return out
