"""The one decision path: open, detect, read once, decide, gate (docs/architecture.md pipeline).

Every command and view that shows a verdict (check, explain, shrink, fuzz and its --replay, the
pytest plug-in; `watch` not yet, see docs/report-format.md) gets it from here, with one :class:`Options` that carries every option able to
change a decision (engine, order, skew, bounds, gates): :func:`decide_path` for a file,
:func:`decide_trace` for events in memory, :class:`Decision` for a live stream. Nothing else
re-decides (docs/report-format.md, "one verdict everywhere").

A file is read once: the written-order replay streams it, and when some other order may be
admissible (a batch, a skew) the events it kept go to the Z3 engine (:class:`Kept`); nothing
reads the trace a second time.

Bad input never escapes as a traceback: an InputError (or the claim limit) ends reading at its
location, and the report carries what the part already read decided, marked as such, and no
reconstructed outcome (no claim verdicts, no "resident preserved").
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import BinaryIO

from kvclaims.check import gate as gates
from kvclaims.check.commute import Independence
from kvclaims.check.progress import NS, STEPS, DeferBound
from kvclaims.check.replay import DEFAULT_MAX_CLAIMS, ClaimLimit, Replay
from kvclaims.check.state import RuleIds
from kvclaims.check.verdict import (
    CONFORMANT,
    GATE_FAILED,
    INCONCLUSIVE,
    INPUT_ERROR,
    UNKNOWN,
    VIOLATION,
    Finding,
    InputProblem,
    Report,
    claims_carry_findings,
    levels_agree,
)
from kvclaims.spec import Spec
from kvclaims.trace.compressed import decompressed
from kvclaims.trace.detect import STREAM_FORMATS, format_of, skip_bom
from kvclaims.trace.jsonl import DEFAULT_MAX_LINE_BYTES, read_jsonl
from kvclaims.trace.model import Event, InputError, PartialTrace, Skew

ENGINES = ("auto", "replay", "z3")

# With --engine auto, the events a streamed trace keeps for the Z3 engine in case its order turns
# out partial; past this many they are let go, so a long totally ordered trace is decided in flat
# memory (a kept event costs about 1 KiB), and a longer partly ordered one is inconclusive.
# --engine z3 keeps every event (every order is decided in memory anyway).
KEEP_EVENTS = 1 << 17


# What the exit code says for each overall result (Report.result; ARCHITECTURE.md exit codes).
EXIT_CODES = {CONFORMANT: 0, VIOLATION: 1, GATE_FAILED: 1, INPUT_ERROR: 2, INCONCLUSIVE: 3}


def exit_code(reports: Iterable[Report]) -> int:
    """One exit code for several reports: an input error first, then a violation or a failed
    gate, then inconclusive; 0 only when every overall result is conformant."""
    results = {r.result for r in reports}
    for result in (INPUT_ERROR, VIOLATION, GATE_FAILED, INCONCLUSIVE):
        if result in results:
            return EXIT_CODES[result]
    return EXIT_CODES[CONFORMANT]


@dataclass(frozen=True)
class Options:
    """Every option that can change a decision or how the input is read. A new decision option
    (a bound, an order declaration) is one field here plus one flag of the same name in
    cli.decision_options; every command then passes it through the same :func:`decide_path` /
    :func:`decide_trace` (and the deciding core reads it from here)."""

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
    # deferral bounds from the command line (docs/model.md §6 R-progress), checked beside every bound
    # the trace declares
    defer_bounds: tuple[DeferBound, ...] = ()
    # A recorded KV event stream (format vllm) is joined with this claim manifest and decided by
    # kvclaims.kvstream, as `kvclaims watch` decides it live (docs/vllm.md).
    claims: str | None = None
    reorder_window: int = 32
    # --select / --ignore (full rule ids, resolved from spec/rules.toml by the caller) and who
    # gave them (flags or a configuration file): the verdict counts the selected rules only and
    # says so (kvclaims.check.selection; docs/cli.md "Leaving rules out").
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    rules_by: str = "--select/--ignore"


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
    fh = decompressed(fh, file)
    skip_bom(fh, file)
    peek = fh.peek(4096)[:4096] if hasattr(fh, "peek") else b""
    fmt = format_of(peek, file, options.input_format)
    if fmt == "jsonl":
        return read_jsonl(fh, file, spec, max_line_bytes=options.max_line_bytes)
    if fmt == "kvt":
        text = io.TextIOWrapper(fh, encoding="utf-8", errors="strict", newline="")
        return _kvt_reader()(text, file, spec=spec, max_line_bytes=options.max_line_bytes,
                             skews=skews)
    if fmt in STREAM_FORMATS:
        raise InputError(file, 1, 1, f"a recorded KV event stream ({fmt}) is read with its claim "
                         "manifest: kvclaims check FILE --claims MANIFEST.toml")
    raise InputError(file, 1, 1, f"unknown input format {fmt!r}")


class Decision:
    """The streaming decision of one trace in its written order: the replay, the watch for
    unordered parts (a batch, a skew), the records --require gates read, and the sources a
    --skew may name. Feed events, then :meth:`finish`. `declared` collects the trace's own skew
    declarations (a .kvt reader appends to it while reading)."""

    def __init__(self, spec: Spec, file: str, options: Options = Options(),
                 declared: list[Skew] | None = None):
        self.spec = spec
        self.file = file
        self.options = options
        self.declared: list[Skew] = declared if declared is not None else []
        # The gates read lifecycle and request events in order; they are recorded only when a
        # gate was asked for, so a plain check keeps no per-event history.
        self.recorder = gates.GateRecorder(spec, options.require)
        observers = (((self.recorder.kinds, self.recorder),)
                     if options.require and self.recorder.active else ())
        self.replay = Replay(spec, file, max_claims=options.max_claims, observers=observers,
                             defer_bounds=options.defer_bounds)
        self.unordered: Event | None = None
        self.unordered_index = -1
        self.sources: set[str] = set()
        self._watch_sources = bool(options.skews)
        self._last_key: tuple[str, object] | None = None
        self._n = 0
        # Batches whose events all commute are decided by their written order (check/commute.py,
        # docs/partial.md): only a conflicting batch (or a skew) needs every order decided.
        self.independence = Independence(spec, options.defer_bounds)
        self._claim_field = self.independence.claim_field
        self._prefix_field = self.independence.prefix_field
        self._batch: list[Event] = []
        self._batch_at = -1
        self.conflict: Event | None = None
        self.conflict_index = -1
        self.folded = 0

    @property
    def findings(self) -> list[Finding]:
        """The findings decided so far (a live view, for watch)."""
        return self.replay.findings

    def feed(self, ev: Event) -> None:
        self.replay.feed(ev)
        f = ev.fields
        if self._watch_sources:
            src = f.get(self.spec.order.source_field)
            if type(src) is str:
                self.sources.add(src)
        # Watch for batches (consecutive events with one batch key): the replay decides the
        # written order only, which is every order's answer when the batch's events commute.
        key = None
        for name in self.spec.order.batch_fields:
            v = f.get(name)
            if v is not None:
                key = (name, v)
                break
        if key is not None and key == self._last_key:
            if self.unordered is None:
                self.unordered = ev
                self.unordered_index = self._n
            self._batch.append(ev)
        else:
            if self._batch:
                self._close_batch()
            if key is None:
                # only an event naming a claim or a prefix binds names (commute.Independence)
                if f.get(self._claim_field) is not None or f.get(self._prefix_field) is not None:
                    self.independence.read(ev)
            else:
                self._batch = [ev]
                self._batch_at = self._n
        self._last_key = key
        self._n += 1

    def _close_batch(self) -> None:
        batch = self._batch
        if not batch:
            return
        self._batch = []
        if self.replay.progress.bounds:  # a deferral bound declared so far (commute.py)
            self.independence.progress = True
        if len(batch) == 1:
            self.independence.read(batch[0])
        elif self.independence.batch(batch):
            self.folded += 1
        elif self.conflict is None:
            self.conflict = batch[1]
            self.conflict_index = self._batch_at + 1

    @property
    def skews(self) -> tuple[Skew, ...]:
        return tuple(self.declared) + self.options.skews

    @property
    def partial(self) -> bool:
        """Whether some order other than the written one may be admissible."""
        return self.unordered is not None or bool(self.skews)

    @property
    def needs_every_order(self) -> bool:
        """Whether an order other than the written one may give another answer: a batch whose
        events do not all commute, or a skew (call after the last event)."""
        self._close_batch()
        return self.conflict is not None or bool(self.skews)

    def finish(self, problem: InputProblem | None = None, let_go: bool = False) -> Report:
        """The written-order report, final when the trace is totally ordered or the engine is
        the replay, or its events were let go (`let_go`, see KEEP_EVENTS): then unordered parts
        are unknown, never a pass; see :func:`conclude`."""
        replay = self.replay
        if problem is None and replay.index < 0:
            problem = InputProblem(1, 1, "empty trace: no events")
        if problem is None:
            own = {s.sources: s for s in self.declared}
            for skew in self.options.skews:
                if skew.sources in own:
                    at = own[skew.sources]
                    problem = InputProblem(max(1, at.line), max(1, at.column),
                                           f"skew between {skew.source_a} and {skew.source_b} "
                                           "is declared both here and by --skew")
                    break
        if problem is not None:
            replay.fail_input(problem)
        report = replay.finish()
        if problem is not None and problem.unknown:
            report = replace(report, verdict=INCONCLUSIVE)
        if problem is None and self.needs_every_order:
            report = _written_order_only(self.spec, report, self.conflict, self.conflict_index,
                                         self.skews, let_go)
        elif problem is None and self.partial:
            report = replace(report, extra={**report.extra, "folded_batches": self.folded})
        return report

    def conclude(self, report: Report) -> Report:
        """`report` (this written-order one, or the Z3 engine's over every order) with the
        gates evaluated and an input error's reconstructed facts taken out."""
        report = conclude(self.spec, report, self.options, self.recorder,
                          partial=self.partial)
        if self.options.skews:  # for the usage check of --skew (skew_sources_missing)
            report = replace(report, extra={**report.extra, "sources": tuple(sorted(self.sources))})
        return report


def skew_sources_missing(options: Options, reports: Iterable[Report],
                         ) -> tuple[list[str], list[str]]:
    """(sources a --skew names that none of the decided traces has, the sources they have):
    a skew that relates nothing is a usage mistake, not a silent no-op."""
    have: set[str] = set()
    for r in reports:
        have.update(r.extra.get("sources", ()))
    named = {x for s in options.skews for x in (s.source_a, s.source_b)}
    return sorted(named - have), sorted(have)


def conclude(spec: Spec, report: Report, options: Options,
             records: gates.GateRecorder | list[gates.Rec],
             *, partial: bool) -> Report:
    """The last step of every decision: --require gates on the decided report (a gate that
    reads events in the written order of a partly ordered trace passes there only: unknown),
    and for an input error no reconstructed outcome (docs/report-format.md); then the rules
    --select/--ignore leave out (kvclaims.check.selection)."""
    if report.error is not None:
        return _selected(spec, replace(report, claims=(), requests=(), prefixes=(), gates=()),
                         options)
    report = replace(report, claims=claims_carry_findings(report.claims, report.findings))
    if options.require:
        decided = []
        for name in options.require:
            g = gates.evaluate(spec, name, report, records)
            if partial and gates.reads_records(spec, name):
                g = replace(g, written_order_only=True)
            decided.append(g)
        report = replace(report, gates=tuple(decided))
    # Last: the gates read every rule (a left-out rule never helps a gate pass).
    return _selected(spec, report, options)


def _selected(spec: Spec, report: Report, options: Options) -> Report:
    """`report` counting only the rules --select/--ignore leave in (and saying which not)."""
    if not options.select and not options.ignore:
        return report
    from kvclaims.check import selection

    return selection.apply(report, selection.selection(spec, options.select, options.ignore,
                                                       options.rules_by))


class Kept:
    """The events a stream read, kept for the Z3 engine: up to `limit` (None: all), then none
    (`let_go`: a partly ordered trace longer than that is not decided over every order)."""

    def __init__(self, limit: int | None):
        self.limit = limit
        self.events: list[Event] = []
        self.let_go = False


def _feed_all(decision: Decision, events: Iterable[Event],
              progress: Callable[[int], None] | None = None,
              keep: Kept | None = None) -> InputProblem | None:
    """Feed `events` (read lazily: the reader may raise), keeping them in `keep` if given, and
    return the input problem that ended reading, if any."""
    replay = decision.replay
    try:
        n = 0
        feed = decision.feed
        events = iter(events)
        if keep is not None:
            kept, limit = keep.events, keep.limit
            for ev in events:
                feed(ev)
                n += 1
                if progress is not None and n % 65536 == 0:
                    progress(n)
                if limit is not None and n > limit:
                    kept.clear()
                    keep.let_go = True
                    break
                kept.append(ev)
        for ev in events:  # the rest, once the kept events are let go (or all, keeping none)
            feed(ev)
            n += 1
            if progress is not None and n % 65536 == 0:
                progress(n)
    except InputError as err:
        return InputProblem(err.line, err.column, err.message, err.unknown)
    except ClaimLimit as err:
        return InputProblem(err.event.line, err.event.column, str(err))
    except UnicodeDecodeError as err:
        return InputProblem(replay.index + 2, 1, f"not UTF-8 text: {err.reason}")
    return None


def check_stream(fh: BinaryIO, file: str, spec: Spec, options: Options = Options(),
                 progress: Callable[[int], None] | None = None) -> Report:
    """The streaming decision of one input in its written order (gates included)."""
    decision, report = _stream(fh, file, spec, options, progress)
    return decision.conclude(report)


def _stream(fh: BinaryIO, file: str, spec: Spec, options: Options,
            progress: Callable[[int], None] | None,
            keep: Kept | None = None) -> tuple[Decision, Report]:
    decision = Decision(spec, file, options)
    problem = None
    try:
        events = open_events(fh, file, spec, options, decision.declared)
    except InputError as err:
        problem = InputProblem(err.line, err.column, err.message, err.unknown)
    else:
        problem = _feed_all(decision, events, progress, keep)
    return decision, decision.finish(problem, let_go=keep is not None and keep.let_go)


def _written_order_only(spec: Spec, report: Report, at: Event | None, index: int,
                        skews: tuple[Skew, ...], let_go: bool = False) -> Report:
    """The replay decided one admissible order of a partly ordered trace: never a pass, and no
    finding of that one order is a fact of the trace (another order may avoid it)."""
    R = RuleIds(spec)
    where = (f"a batch of events whose order is unknown (line {at.line})" if at is not None
             else f"a skew between {skews[0].source_a} and {skews[0].source_b}")
    finding = Finding(
        status=UNKNOWN, rule=R.stream, line=at.line if at is not None else max(1, skews[0].line),
        column=at.column if at is not None else max(1, skews[0].column),
        event_index=index if at is not None else 0, event=at.kind if at else "skew",
        message=f"the trace has {where}; the replay engine decided the written order only, "
                "so other admissible orders are unchecked (use --engine auto or z3)" if not let_go
        else f"the trace has {where} and more than the {KEEP_EVENTS} events --engine auto "
             "keeps for the Z3 engine; the replay engine decided the written order only, so "
             "other admissible orders are unchecked (use --engine z3)")
    one_order = tuple(
        replace(f, status=UNKNOWN, message=f.message + " (in the written order; other "
                "admissible orders are unchecked)") if f.status == VIOLATION else f
        for f in report.findings)
    findings = tuple(sorted(one_order + (finding,), key=lambda f: (f.event_index, f.rule)))
    claims = levels_agree(report.claims, findings, INCONCLUSIVE, None)
    return replace(report, verdict=INCONCLUSIVE, findings=findings, claims=claims,
                   extra={**report.extra, "engine": "replay", "order": "partial"})


def _decide_every_order(spec: Spec, trace: PartialTrace, file: str, options: Options) -> Report:
    """The Z3 engine over the whole trace (in memory: every order is decided at once)."""
    from kvclaims.check import partial

    batches = [(s, e) for s, e, _ in trace.batches(spec) if e - s >= 2]
    return partial.decide(spec, trace.events, file=file, batches=batches, skews=trace.skews,
                          timeout_ms=options.solver_timeout_ms,
                          defer_bounds=options.defer_bounds)


def _needs_every_order(first: Report, decision: Decision, options: Options) -> bool:
    if first.error is not None or options.engine == "replay":
        return False
    return options.engine == "z3" or decision.needs_every_order


def decide_trace(spec: Spec, trace: PartialTrace | Sequence[Event], options: Options = Options(),
                 file: str = "<events>") -> Report:
    """THE decision of a trace held in memory (events and their skew declarations), with every
    option: the written-order replay first (input problems, gates, whether the order is total),
    then the Z3 engine when some order other than the written one is admissible."""
    if not isinstance(trace, PartialTrace):
        trace = PartialTrace(tuple(trace))
    decision = Decision(spec, file, options, list(trace.skews))
    first = decision.finish(_feed_all(decision, trace.events))
    return _every_order(spec, decision, first, trace.events, file, options)


def _every_order(spec: Spec, decision: Decision, first: Report, events: Sequence[Event] | None,
                 file: str, options: Options) -> Report:
    """The last stage of both decisions: `first` (the written order) when it is final, else
    the Z3 engine over the events read (None: let go, see KEEP_EVENTS), with the gates."""
    if not _needs_every_order(first, decision, options):
        return decision.conclude(first)
    if events is None:  # let go: `first` says so (Decision.finish)
        return decision.conclude(first)
    every = PartialTrace(tuple(events), decision.skews)
    return decision.conclude(_decide_every_order(spec, every, file, options))


def decide_path(path: str, spec: Spec, options: Options = Options(),
                progress: Callable[[int], None] | None = None) -> Report:
    """THE decision of a trace file (`-`: standard input), with every option, read once:
    streamed in the written order (input problems, gates, whether the order is total), its
    events kept for the Z3 engine unless the engine is the replay (see KEEP_EVENTS). A recorded
    KV event stream (format vllm) is joined with its claim manifest by kvclaims.kvstream."""
    label = "<stdin>" if path == "-" else path
    if path == "-":
        return _decide_input(sys.stdin.buffer, label, spec, options, progress)
    from kvclaims.trace import urls

    try:
        fh = urls.open_url(path) if urls.is_url(path) else open(path, "rb")
    except urls.UrlError as err:  # read through fsspec (docs/fleet.md "Inputs")
        return _failed(path, InputProblem(None, None, f"cannot open: {err}"))
    except OSError as err:
        return _unopened(path, err)
    with fh:
        return _decide_input(fh, label, spec, options, progress)


def _decide_input(fh: BinaryIO, label: str, spec: Spec, options: Options,
                  progress: Callable[[int], None] | None) -> Report:
    """The stages over one opened input: detect, read (streamed), decide, conclude."""
    from kvclaims.trace.detect import detect

    fh = decompressed(fh, label)
    if options.input_format is None:
        found = detect(fh.peek(4096)[:4096])  # type: ignore[attr-defined]
        if found in STREAM_FORMATS:
            options = replace(options, input_format=found)
    if options.input_format in STREAM_FORMATS:
        try:
            data = fh.read()
        except InputError as err:  # a truncated or corrupt compressed stream
            return _failed(label, InputProblem(err.line, err.column, err.message))
        return _selected(spec, _kv_stream(data, label, spec, options), options)
    keep = None if options.engine == "replay" else Kept(
        None if options.engine == "z3" else KEEP_EVENTS)
    decision, first = _stream(fh, label, spec, options, progress, keep)
    if keep is None:
        return decision.conclude(first)
    return _every_order(spec, decision, first, None if keep.let_go else keep.events, label,
                        options)


def _kv_stream(data: bytes, label: str, spec: Spec, options: Options) -> Report:
    """A recorded KV event stream decided with its claim manifest by kvclaims.kvstream."""
    from kvclaims.kvstream import check_records
    from kvclaims.trace.formats import manifest_runtime
    from kvclaims.trace.vllm_events import load_manifest

    if options.claims is None:
        return _failed(label, InputProblem(1, 1, "a recorded KV event stream needs its claim "
                                                 "manifest: --claims MANIFEST.toml"))
    try:
        manifest = load_manifest(options.claims, runtime=manifest_runtime(options.input_format))
    except InputError as err:
        return _failed(label, InputProblem(1, 1, f"claim manifest {err.file}:{err.line}:"
                                                 f"{err.column}: {err.message}"))
    try:
        return check_records(data, label, spec, manifest, window=options.reorder_window,
                             solver_timeout_ms=options.solver_timeout_ms,
                             require=options.require, defer_bounds=options.defer_bounds,
                             input_format=options.input_format or "vllm")
    except InputError as err:
        return _failed(label, InputProblem(err.line, err.column, err.message))


# The names callers have used; the same decision.
check_path = decide_path


def _unopened(path: str, err: OSError) -> Report:
    return _failed(path, InputProblem(None, None, f"cannot open: {err.strerror}"))


def _failed(path: str, problem: InputProblem) -> Report:
    return Report(file=path, verdict=INPUT_ERROR, events=0, findings=(), finding_counts={},
                  claims=(), requests=(), prefixes=(), cached_resident_victims=0,
                  resident_preserved=False, protected_resident_blocks=0, error=problem)
