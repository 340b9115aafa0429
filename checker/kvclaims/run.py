"""Check one input end to end: open, detect, import, replay, gate (ARCHITECTURE.md pipeline).

Adapts files and streams to the deciding core. Bad input never escapes as a traceback: an
InputError (or the claim limit) ends reading at its location, and the report still carries what the
part already read decided.
"""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass, replace
from typing import BinaryIO, Callable, Iterator

from kvclaims.check import gate as gates
from kvclaims.check.replay import DEFAULT_MAX_CLAIMS, ClaimLimit, Replay
from kvclaims.check.verdict import INCONCLUSIVE, INPUT_ERROR, InputProblem, Report
from kvclaims.spec import Spec
from kvclaims.trace.detect import detect
from kvclaims.trace.jsonl import DEFAULT_MAX_LINE_BYTES, read_jsonl
from kvclaims.trace.model import Event, InputError


@dataclass(frozen=True)
class Options:
    input_format: str | None = None  # None: detect from content
    require: tuple[str, ...] = ()
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_claims: int = DEFAULT_MAX_CLAIMS


def _kvt_reader() -> Callable[..., Iterator[Event]]:
    from kvclaims.trace import dsl  # imported lazily: Lark is only needed for .kvt

    return dsl.read_kvt


def open_events(fh: BinaryIO, file: str, spec: Spec, options: Options) -> Iterator[Event]:
    peek = fh.peek(4096)[:4096] if hasattr(fh, "peek") else b""
    fmt = options.input_format or detect(peek)
    if fmt is None:
        if not peek.strip():
            raise InputError(file, 1, 1, "empty trace: no events")
        raise InputError(file, 1, 1, "cannot detect the trace format (expected a `kvtrace 1` "
                         "header or JSON objects); use --input-format")
    if fmt == "jsonl":
        return read_jsonl(fh, file, spec, max_line_bytes=options.max_line_bytes)
    if fmt == "kvt":
        text = io.TextIOWrapper(fh, encoding="utf-8", errors="strict", newline="")
        return _kvt_reader()(text, file, spec=spec, max_line_bytes=options.max_line_bytes)
    raise InputError(file, 1, 1, f"unknown input format {fmt!r}")


def check_stream(fh: BinaryIO, file: str, spec: Spec, options: Options = Options(),
                 progress: Callable[[int], None] | None = None) -> Report:
    # The gates read lifecycle and request events in order; they are recorded only when a gate
    # was asked for, so a plain check keeps no per-event history.
    recorder = gates.GateRecorder(spec)
    observers = ((recorder.kinds, recorder),) if options.require else ()
    replay = Replay(spec, file, max_claims=options.max_claims, observers=observers)
    problem: InputProblem | None = None
    try:
        events = open_events(fh, file, spec, options)
        feed = replay.feed
        if progress is None:
            for ev in events:
                feed(ev)
        else:
            n = 0
            for ev in events:
                feed(ev)
                n += 1
                if n % 65536 == 0:
                    progress(n)
    except InputError as err:
        problem = InputProblem(err.line, err.column, err.message, err.unknown)
    except ClaimLimit as err:
        problem = InputProblem(err.event.line, err.event.column, str(err))
    except UnicodeDecodeError as err:
        problem = InputProblem(replay.index + 2, 1, f"not UTF-8 text: {err.reason}")
    if problem is None and replay.index < 0:
        problem = InputProblem(1, 1, "empty trace: no events")
    if problem is not None:
        replay.fail_input(problem)
    report = replay.finish()
    if problem is not None and problem.unknown:
        report = replace(report, verdict=INCONCLUSIVE)
    if options.require and problem is None:
        report = replace(report, gates=tuple(
            gates.evaluate(spec, name, report, recorder.records) for name in options.require))
    return report


def check_path(path: str, spec: Spec, options: Options = Options(),
               progress: Callable[[int], None] | None = None) -> Report:
    if path == "-":
        return check_stream(sys.stdin.buffer, "<stdin>", spec, options, progress)
    try:
        fh = open(path, "rb")
    except OSError as err:
        return Report(file=path, verdict=INPUT_ERROR, events=0, findings=(), finding_counts={},
                      claims=(), requests=(), prefixes=(), cached_resident_victims=0,
                      resident_preserved=True, protected_resident_blocks=0,
                      error=InputProblem(0, 0, f"cannot open: {err.strerror}"))
    with fh:
        return check_stream(fh, path, spec, options, progress)
