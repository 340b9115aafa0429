"""Decide a runtime's KV event stream against a claim manifest: the one path `kvclaims watch` and
`kvclaims check FILE.kvbatches --claims M.toml` share (docs/model.md §6 R-stream; docs/vllm.md).

:class:`StreamCheck` takes received frames in arrival order, live or from a record file, and
puts them through the same three steps:

1. :class:`kvclaims.trace.kv_records.Sequencer`: sequence order, a bounded reorder window, gaps,
   missed history, duplicates, restarts;
2. :class:`kvclaims.trace.vllm_events.StreamJoin`: the claim manifest's join, each event located
   by record, batch and event; every anomaly that can hide events writes a gap marker (R-stream:
   unknown from there on, never conformant);
3. the deciding engines: the streaming replay (fed as frames arrive, so a watch can print
   findings at once), whose report is the answer when every event is totally ordered; when a
   batch's order can matter (a claim gains and loses blocks in one batch) the Z3 engine decides
   every order of the whole stream instead (docs/partial.md).

The report carries a `stream` section (records, batches decided, the reorder window, every
anomaly, and with it each finding's record, batch and event), so a live and an offline check of
the same frames give the same report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kvclaims.check.progress import DeferBound
from kvclaims.check.replay import Replay
from kvclaims.check.state import EventNames, RuleIds
from kvclaims.check.verdict import CONFORMANT, INCONCLUSIVE, UNKNOWN, Finding, Report
from kvclaims.spec import Spec
from kvclaims.trace.kv_records import (
    CROSS_SHARD,
    DEFAULT_WINDOW,
    UNDECODABLE,
    Anomaly,
    Frame,
    Sequencer,
    Step,
)
from kvclaims.trace.model import Event, PartialTrace
from kvclaims.trace.vllm_events import Batch, Manifest, StreamJoin, decode_batch

DEFAULT_SOLVER_TIMEOUT_MS = 60_000


class StreamCheck:
    """Feed frames with :meth:`push` (arrival order); :meth:`finish` decides and reports."""

    def __init__(self, spec: Spec, manifest: Manifest, file: str, *,
                 window: int = DEFAULT_WINDOW,
                 solver_timeout_ms: int = DEFAULT_SOLVER_TIMEOUT_MS,
                 defer_bounds: tuple[DeferBound, ...] = (),
                 decode: Callable[[Any, int | None], Batch] = decode_batch) -> None:
        self.spec = spec
        # payload -> Batch: the stream format's decoder (kvclaims.trace.formats; vLLM's default)
        self.decode = decode
        self.defer_bounds = defer_bounds
        self.file = file
        self.window = window
        self.solver_timeout_ms = solver_timeout_ms
        self.sequencer = Sequencer(window)
        # One Sequencer per numbering (Frame.stream): a format whose file holds several
        # publishers' numberings (LMCache: one per location) is sequenced per publisher.
        self._sequencers: dict[Any, Sequencer] = {None: self.sequencer}
        self.join = StreamJoin(manifest)
        self.replay = Replay(spec, file, defer_bounds=defer_bounds)
        self.events: list[Event] = []
        self.anomalies: list[Anomaly] = []
        self._markers: dict[int, Anomaly] = {}  # event index of a gap marker -> its anomaly
        # record -> batch number, kept only for the records an event or a gap marker is located
        # at (a record whose batch joined no claim event is counted, not remembered: memory
        # stays per claim and per resident block, docs/watch-nats.md)
        self._seq_of: dict[int, int | None] = {}
        self._marked: set[int] = set()  # records a marker is located at, their batch not yet in
        self.decided = 0  # batches decided
        self._shown = 0
        self._finished: Report | None = None
        self._rank: int | None = None  # the data-parallel rank (the shard) of the stream
        self._instance: str | None = None  # the publishing instance (Batch.instance), if named
        self._foreign: set[Any] = set()  # other ranks and instances seen (reported once each)
        self._add(self.join.start())

    # ---- feeding ---------------------------------------------------------------------------
    def _add(self, events: list[Event]) -> None:
        for ev in events:
            self.events.append(ev)
            self.replay.feed(ev)

    def push(self, frame: Frame) -> list[Step]:
        """One received frame; returns the steps it caused (batches decided, anomalies)."""
        seq = self._sequencers.get(frame.stream)
        if seq is None:
            seq = self._sequencers[frame.stream] = Sequencer(self.window)
        steps = seq.push(frame)
        if frame.stream is not None:
            steps = [(k, _named(x, frame.stream)) if k == "anomaly" else (k, x)
                     for k, x in steps]
        self._apply(steps)
        return steps

    @property
    def expected(self) -> int:
        """The next batch number the stream needs (what a replay socket is asked for)."""
        return self.sequencer.expected

    def held(self, seq: int) -> bool:
        """Whether batch `seq` is waiting in the reorder window."""
        return self.sequencer.holds(seq)

    def _apply(self, steps: list[Step]) -> None:
        for kind, x in steps:
            if kind == "batch":
                self._batch(x)
            else:
                self._anomaly(x)

    def _batch(self, frame: Frame) -> None:
        self.decided += 1
        try:
            batch = self.decode(frame.payload, frame.seq)
        except Exception as err:  # noqa: BLE001 - any malformed payload is a lost batch
            self._seq_of[frame.record] = frame.seq
            self._anomaly(Anomaly(UNDECODABLE, f"batch {frame.seq} at record {frame.record} is "
                                  f"not decodable ({err}): its events are lost",
                                  frame.record, frame.seq,
                                  None if frame.seq is None else (frame.seq, frame.seq + 1)))
            return
        if not self._same_instance(batch.instance, frame) or \
                not self._same_shard(batch.data_parallel_rank, frame):
            return
        events = self.join.feed_batch(batch, frame.record)
        if events or frame.record in self._marked:
            self._seq_of[frame.record] = frame.seq
            self._marked.discard(frame.record)
        self._add(events)

    def _same_shard(self, rank: int | None, frame: Frame) -> bool:
        """Whether a batch is of the stream's shard: each data-parallel rank has its own KV
        pool (docs/fleet.md), so a batch of another rank is not joined with this pool's events
        (that would be a wrong split); the stream says it crosses shards (unknown from there)."""
        if rank is None or rank == self._rank:
            return True
        if self._rank is None:
            self._rank = rank
            return True
        if rank not in self._foreign:
            self._foreign.add(rank)
            self._anomaly(Anomaly(CROSS_SHARD, f"batch {frame.seq} at record {frame.record} is "
                                  f"from data-parallel rank {rank}, the stream's earlier "
                                  f"batches from rank {self._rank}: each rank has its own KV "
                                  "pool, so the stream crosses shards and is not decided as "
                                  "one (record each rank's stream on its own)",
                                  frame.record, frame.seq))
        return False

    def _same_instance(self, instance: str | None, frame: Frame) -> bool:
        """Whether a batch is of the stream's instance (the worker that published it, where the
        format names one): a claim is resident on one instance, and joining another instance's
        events with it would let one worker's copy stand for another's, so a second instance
        makes the stream cross shards (unknown from there; record each instance on its own)."""
        if instance is None or instance == self._instance:
            return True
        if self._instance is None:
            self._instance = instance
            return True
        if ("instance", instance) not in self._foreign:
            self._foreign.add(("instance", instance))
            self._anomaly(Anomaly(CROSS_SHARD, f"batch {frame.seq} at record {frame.record} is "
                                  f"from instance {instance}, the stream's earlier batches from "
                                  f"instance {self._instance}: the stream crosses instances and "
                                  "is not decided as one (record each instance on its own)",
                                  frame.record, frame.seq))
        return False

    def _anomaly(self, a: Anomaly) -> None:
        self.anomalies.append(a)
        if a.unknown:
            lo, hi = a.missing or (a.seq or 0, a.seq or 0)
            self._markers[len(self.events)] = a
            if a.record:
                self._marked.add(a.record)
            self._add(self.join.gap(lo, hi, record=a.record or 0, why=a.message))

    def new_findings(self) -> list[Finding]:
        """Findings the streaming replay made since the last call (live display only: the
        report of :meth:`finish` is the answer)."""
        out = self.replay.findings[self._shown:]
        self._shown = len(self.replay.findings)
        return out

    # ---- deciding --------------------------------------------------------------------------
    def finish(self, extra: dict[str, Any] | None = None) -> Report:
        """Close the stream (batches still missing become gaps) and decide it."""
        if self._finished is None:
            for stream, seq in list(self._sequencers.items()):
                if seq is self.sequencer and seq.received == 0 and len(self._sequencers) > 1:
                    continue  # the file's publishers all have numberings of their own
                steps = seq.finish()
                if stream is not None:
                    steps = [(k, _named(x, stream)) if k == "anomaly" else (k, x)
                             for k, x in steps]
                self._apply(steps)
            self._finished = self._decide()
        report = self._finished
        if extra:
            stream = {**report.extra["stream"], **extra}
            report = replace(report, extra={**report.extra, "stream": stream})
        return report

    def _decide(self) -> Report:
        spec = self.spec
        trace = PartialTrace(tuple(self.events))
        batches = [(s, e) for s, e, _ in trace.batches(spec) if e - s >= 2]
        if batches:
            from kvclaims.check import partial  # Z3: only when a batch's order can matter

            report = partial.decide(spec, self.events, file=self.file, batches=batches,
                                    timeout_ms=self.solver_timeout_ms,
                                    defer_bounds=self.defer_bounds)
        else:
            report = self.replay.finish()
        return self._located(report)

    def _located(self, report: Report) -> Report:
        R = RuleIds(self.spec)
        E = EventNames(self.spec)
        findings = []
        covered = set()
        for f in report.findings:
            a = self._markers.get(f.event_index)
            if a is not None and f.rule == R.stream:
                covered.add(f.event_index)
                f = replace(f, message=f"{a.message}; verdicts after this point are unknown")
            findings.append(f)
        # The engines report the first stream break; every other one is listed too.
        for index, a in self._markers.items():
            if index not in covered:
                ev = self.events[index]
                findings.append(Finding(status=UNKNOWN, rule=R.stream, line=ev.line,
                                        column=ev.column, event_index=index, event=E.stream_gap,
                                        message=f"{a.message}; verdicts after this point are "
                                                "unknown", quote=ev.text
                                        if isinstance(ev.text, str) else None))
        findings.sort(key=lambda x: (x.event_index, x.rule))
        verdict = report.verdict
        if verdict == CONFORMANT and any(a.unknown for a in self.anomalies):
            verdict = INCONCLUSIVE  # fail-closed: the engines saw the marker; say so regardless
        counts = dict(report.finding_counts)
        if self._markers:
            counts[R.stream] = max(counts.get(R.stream, 0), len(self._markers))
        stream = {
            "records": sum(s.received for s in self._sequencers.values()),
            "batches": self.decided,
            "window": self.window,
            "anomalies": [{"kind": a.kind, "message": a.message, "record": a.record,
                           "batch": a.seq, "missing": list(a.missing) if a.missing else None,
                           "unknown": a.unknown} for a in self.anomalies],
            "locations": [self.location(f) for f in findings],
        }
        return replace(report, verdict=verdict, findings=tuple(findings), finding_counts=counts,
                       extra={**report.extra, "stream": stream})

    def location(self, f: Finding) -> dict[str, int | None]:
        """Where a finding is in the stream: record (1-based), batch number, event within the
        batch (1-based); None where it has none (the manifest, a marker)."""
        record = f.line or None
        return {"record": record,
                "batch": self._seq_of.get(record) if record is not None else None,
                "batch_event": f.column or None}


def _named(a: Anomaly, stream: Any) -> Anomaly:
    """An anomaly of one publisher's numbering, saying whose."""
    return replace(a, message=f"publisher {_stream_text(stream)}: {a.message}")


def _stream_text(stream: Any) -> str:
    return "/".join(str(x) for x in stream) if isinstance(stream, tuple) else str(stream)


def check_records(data: bytes, file: str, spec: Spec, manifest: Manifest, *,
                  window: int = DEFAULT_WINDOW,
                  solver_timeout_ms: int = DEFAULT_SOLVER_TIMEOUT_MS,
                  require: tuple[str, ...] = (),
                  defer_bounds: tuple[DeferBound, ...] = (),
                  input_format: str = "vllm") -> Report:
    """A record file (bytes) of the stream format `input_format` (kvclaims.trace.formats)
    decided as `kvclaims watch` decided it live; raises InputError on a malformed file.
    `require`: the `--require` gates, read from the joined events."""
    from kvclaims.trace.formats import importer

    fmt = importer(input_format)
    frames = fmt.frames(data, file)  # every record checked before any is decided
    check = StreamCheck(spec, manifest, file, window=window, solver_timeout_ms=solver_timeout_ms,
                        defer_bounds=defer_bounds, decode=fmt.decoder())
    for frame in frames:
        check.push(frame)
    report = check.finish()
    if require:
        from kvclaims.check import gate as gates

        recorder = gates.GateRecorder(spec)
        for ev in check.events:
            if ev.kind in recorder.kinds:
                recorder(ev)
        report = replace(report, gates=tuple(gates.evaluate(spec, name, report, recorder)
                                             for name in require))
    return report
