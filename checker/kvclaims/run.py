"""Check one input end to end: open, detect, import, replay, gate (ARCHITECTURE.md pipeline).

Adapts files and streams to the deciding core. Bad input never escapes as a traceback: an
InputError (or the claim limit) ends reading at its location, and the report still carries what the
part already read decided.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import BinaryIO

from kvclaims.check import gate as gates
from kvclaims.check.progress import NS, STEPS, DeferBound
from kvclaims.check.replay import DEFAULT_MAX_CLAIMS, ClaimLimit, Replay
from kvclaims.check.state import RuleIds
from kvclaims.check.verdict import (
    CONFORMANT,
    INCONCLUSIVE,
    INPUT_ERROR,
    UNKNOWN,
    Finding,
    InputProblem,
    Report,
)
from kvclaims.spec import Spec
from kvclaims.trace.detect import format_of
from kvclaims.trace.jsonl import DEFAULT_MAX_LINE_BYTES, read_jsonl
from kvclaims.trace.model import Event, InputError, Skew

ENGINES = ("auto", "replay", "z3")


@dataclass(frozen=True)
class Options:
    input_format: str | None = None  # None: detect from content
    require: tuple[str, ...] = ()
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    max_claims: int = DEFAULT_MAX_CLAIMS
    # auto: the replay for totally ordered traces, the Z3 engine when the trace has unordered
    # parts (a batch, a skew); replay: the written order only (unordered parts make it
    # inconclusive); z3: the Z3 engine always (docs/partial.md).
    engine: str = "auto"
    skews: tuple[Skew, ...] = ()
    solver_timeout_ms: int = 60_000
    # deferral bounds from the command line (MODEL §6 R-progress), checked beside every bound
    # the trace declares
    defer_bounds: tuple[DeferBound, ...] = ()
    # A recorded KV event stream (format vllm) is joined with this claim manifest and decided by
    # kvclaims.kvstream, as `kvclaims watch` decides it live (docs/vllm.md).
    claims: str | None = None
    reorder_window: int = 32


def defer_bounds_option(steps: int | None, ns: int | None) -> tuple[DeferBound, ...]:
    """--max-defer-steps / --max-defer-ns as bounds that name where they were declared."""
    out = []
    if steps is not None:
        out.append(DeferBound(STEPS, steps, "declared by --max-defer-steps"))
    if ns is not None:
        out.append(DeferBound(NS, ns, "declared by --max-defer-ns"))
    return tuple(out)


def _kvt_reader() -> Callable[..., Iterator[Event]]:
    from kvclaims.trace import dsl  # imported lazily: Lark is only needed for .kvt

    return dsl.read_kvt


def open_events(fh: BinaryIO, file: str, spec: Spec, options: Options,
                skews: list[Skew] | None = None) -> Iterator[Event]:
    peek = fh.peek(4096)[:4096] if hasattr(fh, "peek") else b""
    fmt = format_of(peek, file, options.input_format)
    if fmt == "jsonl":
        return read_jsonl(fh, file, spec, max_line_bytes=options.max_line_bytes)
    if fmt == "kvt":
        text = io.TextIOWrapper(fh, encoding="utf-8", errors="strict", newline="")
        return _kvt_reader()(text, file, spec=spec, max_line_bytes=options.max_line_bytes,
                             skews=skews)
    if fmt == "vllm":
        raise InputError(file, 1, 1, "a recorded KV event stream (vllm) is read with its claim "
                         "manifest: kvclaims check FILE --claims MANIFEST.toml")
    raise InputError(file, 1, 1, f"unknown input format {fmt!r}")


def check_stream(fh: BinaryIO, file: str, spec: Spec, options: Options = Options(),
                 progress: Callable[[int], None] | None = None) -> Report:
    # The gates read lifecycle and request events in order; they are recorded only when a gate
    # was asked for, so a plain check keeps no per-event history.
    recorder = gates.GateRecorder(spec)
    observers = ((recorder.kinds, recorder),) if options.require else ()
    replay = Replay(spec, file, max_claims=options.max_claims, observers=observers,
                    defer_bounds=options.defer_bounds)
    problem: InputProblem | None = None
    declared: list[Skew] = []
    unordered: Event | None = None
    unordered_index = -1
    try:
        events = open_events(fh, file, spec, options, declared)
        feed = replay.feed
        batch_fields = spec.order.batch_fields
        last_key: tuple[str, object] | None = None
        n = 0
        for ev in events:
            feed(ev)
            if unordered is None:
                # Watch for a batch (two consecutive events with one batch key): the replay
                # decides the written order only, so such a trace is not its to pass.
                f = ev.fields
                key = None
                for name in batch_fields:
                    v = f.get(name)
                    if v is not None:
                        key = (name, v)
                        break
                if key is not None and key == last_key:
                    unordered = ev
                    unordered_index = n
                last_key = key
            n += 1
            if progress is not None and n % 65536 == 0:
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
    skews = tuple(declared) + options.skews
    if problem is None and (unordered is not None or skews):
        report = _written_order_only(spec, report, unordered, unordered_index, skews)
    if options.require and problem is None:
        report = replace(report, gates=tuple(
            gates.evaluate(spec, name, report, recorder.records) for name in options.require))
    return report


def _written_order_only(spec: Spec, report: Report, at: Event | None, index: int,
                        skews: tuple[Skew, ...]) -> Report:
    """The replay decided one admissible order of a partly ordered trace: never a pass."""
    R = RuleIds(spec)
    where = (f"a batch of events whose order is unknown (line {at.line})" if at is not None
             else f"a skew between {skews[0].source_a} and {skews[0].source_b}")
    finding = Finding(
        status=UNKNOWN, rule=R.stream, line=at.line if at is not None else skews[0].line,
        column=at.column if at is not None else max(1, skews[0].column),
        event_index=index if at is not None else 0, event=at.kind if at else "skew",
        message=f"the trace has {where}; the replay engine decided the written order only, "
                "so other admissible orders are unchecked (use --engine auto or z3)")
    findings = tuple(sorted(report.findings + (finding,),
                            key=lambda f: (f.event_index, f.rule)))
    verdict = INCONCLUSIVE if report.verdict == CONFORMANT else report.verdict
    return replace(report, verdict=verdict, findings=findings,
                   extra={**report.extra, "engine": "replay", "order": "partial"})


def _gates_written_order(spec: Spec, report: Report) -> Report:
    R = RuleIds(spec)
    finding = Finding(status=UNKNOWN, rule=R.stream, line=1, column=1, event_index=0,
                      event="gate", message="--require gates read the events in the written "
                      "order; the trace has unordered parts, so other orders are unchecked")
    verdict = INCONCLUSIVE if report.verdict == CONFORMANT else report.verdict
    return replace(report, verdict=verdict, findings=report.findings + (finding,))


def check_partial(fh: BinaryIO, file: str, spec: Spec, options: Options) -> Report:
    """The Z3 engine over the whole trace (read into memory: every order is decided at once)."""
    from kvclaims.check import partial
    from kvclaims.trace.partial_input import read_partial

    trace = read_partial(fh, file, spec, options.input_format, options.skews,
                         max_line_bytes=options.max_line_bytes)
    batches = [(s, e) for s, e, _ in trace.batches(spec) if e - s >= 2]
    return partial.decide(spec, trace.events, file=file, batches=batches, skews=trace.skews,
                          timeout_ms=options.solver_timeout_ms,
                          defer_bounds=options.defer_bounds)


def check_kv_stream(path: str, spec: Spec, options: Options) -> Report | None:
    """A recorded KV event stream (format vllm, detected or given) decided with its claim
    manifest by kvclaims.kvstream; None when `path` is not one."""
    from kvclaims.trace.detect import detect

    if options.input_format not in (None, "vllm"):
        return None
    label = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            if options.input_format is None and detect(sys.stdin.buffer.peek(16)[:16]) != "vllm":
                return None
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as fh:
                if options.input_format is None and detect(fh.read(16)) != "vllm":
                    return None
                fh.seek(0)
                data = fh.read()
    except OSError:
        return None  # reported by the ordinary path
    from kvclaims.kvstream import check_records
    from kvclaims.trace.vllm_events import load_manifest

    if options.claims is None:
        return _failed(label, InputProblem(1, 1, "a recorded KV event stream needs its claim "
                                                 "manifest: --claims MANIFEST.toml"))
    try:
        manifest = load_manifest(options.claims)
    except InputError as err:
        return _failed(label, InputProblem(1, 1, f"claim manifest {err.file}:{err.line}:"
                                                 f"{err.column}: {err.message}"))
    try:
        return check_records(data, label, spec, manifest, window=options.reorder_window,
                             solver_timeout_ms=options.solver_timeout_ms,
                             require=options.require, defer_bounds=options.defer_bounds)
    except InputError as err:
        return _failed(label, InputProblem(err.line, err.column, err.message))


def check_path(path: str, spec: Spec, options: Options = Options(),
               progress: Callable[[int], None] | None = None) -> Report:
    stream = check_kv_stream(path, spec, options)
    if stream is not None:
        return stream
    if options.engine != "replay":
        # Two passes at most; each opens a fresh stream (standard input is kept in memory).
        label = "<stdin>" if path == "-" else path
        stdin = sys.stdin.buffer.read() if path == "-" else b""

        def reopen() -> BinaryIO:
            if path == "-":
                return io.BufferedReader(io.BytesIO(stdin))  # type: ignore[arg-type]
            return open(path, "rb")

        try:
            data = reopen()
        except OSError as err:
            return _unopened(path, err)
        # The streaming replay reads first: it finds input errors with what was decided
        # before them, evaluates --require gates, and tells whether the order is total.
        with data:
            first = check_stream(data, label, spec, options, progress)
        if first.error is not None or (options.engine == "auto"
                                       and first.extra.get("order") != "partial"):
            return first
        try:
            with reopen() as data:
                report = check_partial(data, label, spec, options)
        except (InputError, OSError):
            return first
        if options.require:
            report = replace(report, gates=first.gates)
            if first.extra.get("order") == "partial":
                report = _gates_written_order(spec, report)
        return report
    if path == "-":
        return check_stream(sys.stdin.buffer, "<stdin>", spec, options, progress)
    try:
        fh = open(path, "rb")
    except OSError as err:
        return _unopened(path, err)
    with fh:
        return check_stream(fh, path, spec, options, progress)


def _unopened(path: str, err: OSError) -> Report:
    return _failed(path, InputProblem(0, 0, f"cannot open: {err.strerror}"))


def _failed(path: str, problem: InputProblem) -> Report:
    return Report(file=path, verdict=INPUT_ERROR, events=0, findings=(), finding_counts={},
                  claims=(), requests=(), prefixes=(), cached_resident_victims=0,
                  resident_preserved=True, protected_resident_blocks=0, error=problem)
