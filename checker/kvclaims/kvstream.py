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

Memory (docs/watch-nats.md "Memory"): what a StreamCheck keeps grows with the manifest's claims
and blocks, the anomalies and the findings, never with the batches. The joined events are kept
for the Z3 engine up to `keep` of them (KEEP_JOINED); past that they are let go, as the offline
check lets a long file's go (kvclaims.run.KEEP_EVENTS): a stream in which a batch's order can
matter is then decided in its written order only, and said to be (inconclusive, never a pass).
A record's batch number is kept as runs (a record whose batch number is its record number plus
the run's offset adds nothing), not per record.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kvclaims.check.gate import GateRecorder
from kvclaims.check.progress import DeferBound
from kvclaims.check.replay import Replay
from kvclaims.check.state import EventNames, RuleIds
from kvclaims.check.verdict import (
    CONFORMANT,
    INCONCLUSIVE,
    UNKNOWN,
    VIOLATION,
    Finding,
    Report,
    levels_agree,
)
from kvclaims.spec import Spec
from kvclaims.trace.kv_records import (
    CROSS_SHARD,
    DEFAULT_WINDOW,
    OUT_OF_SCOPE,
    UNDECODABLE,
    Anomaly,
    Frame,
    Sequencer,
    Step,
)
from kvclaims.trace.model import Event, InputError, PartialTrace
from kvclaims.trace.formats.msgpack import MsgpackDecoder
from kvclaims.trace.vllm_events import Batch, Manifest, StreamJoin, check_event

DEFAULT_SOLVER_TIMEOUT_MS = 60_000
# The joined events a stream check keeps for the Z3 engine; past this many they are let go (see
# the docstring), as a long file's are past kvclaims.run.KEEP_EVENTS. Smaller than that bound: a
# watch checkpoints what it keeps every second (bench/watch-memory.md: about 1 KiB of memory and
# 160 bytes of checkpoint per kept event, so at most ~32 MiB and ~5 MB).
KEEP_JOINED = 1 << 15


class StreamCheck:
    """Feed frames with :meth:`push` (arrival order); :meth:`finish` decides and reports."""

    def __init__(self, spec: Spec, manifest: Manifest, file: str, *,
                 window: int = DEFAULT_WINDOW,
                 solver_timeout_ms: int = DEFAULT_SOLVER_TIMEOUT_MS,
                 defer_bounds: tuple[DeferBound, ...] = (),
                 fmt: str | None = None,
                 decode: Callable[[Any, int | None], Batch] | None = None,
                 keep: int | None = KEEP_JOINED,
                 recorder: GateRecorder | None = None) -> None:
        """`fmt`: the stream format (spec/streams.toml; default the manifest's `runtime`); an
        undeclared one, or a claim's medium the format lacks, is an InputError. `decode`: payload
        -> Batch, the importer's decoder (kvclaims.trace.formats); default vLLM's msgpack batch
        read as `fmt` declares it. `keep`: the joined events kept for the Z3 engine (None: all,
        e.g. for a picture of the stream); `recorder`: fed every joined event a `--require` gate
        reads."""
        self.spec = spec
        # payload -> Batch: the stream format's decoder (kvclaims.trace.formats; vLLM's default)
        self.decode = decode
        self.defer_bounds = defer_bounds
        self.file = file
        self.window = window
        self.solver_timeout_ms = solver_timeout_ms
        self.sequencer = Sequencer(window)  # the first publisher's (topic's) batches
        # Each further publisher (a frame topic: a format with several publishers in one stream
        # names each one's topic, e.g. worker and rank) is numbered on its own: its own Sequencer,
        # and its anomalies are scoped to its instance once a batch of it showed which.
        self._topic0: Any = None  # the first publisher's numbering (kvstream._numbering)
        self._streams: set[Any] = set()  # numberings an importer named (Frame.stream)
        self._sequencers: dict[bytes, Sequencer] = {}
        self._instance_of: dict[Any, str | None] = {}
        try:
            self.join = StreamJoin(manifest, fmt=fmt)
        except ValueError as err:
            raise InputError(file, 1, 1, str(err)) from None
        if self.decode is None:
            self.decode = MsgpackDecoder(self.join.fmt)
        self._findings_seen = 0  # the join's stream findings already turned into anomalies
        self.replay = Replay(spec, file, defer_bounds=defer_bounds)
        self.keep = keep
        self.recorder = recorder
        self.events: list[Event] = []  # the joined events kept (all of them unless let_go)
        self.count = 0  # joined events fed
        self.let_go = False  # more than `keep` joined events: the kept ones were let go
        self._batch_fields = spec.order.batch_fields
        self._unordered: tuple[int, Event] | None = None  # the first event of a batch whose
        # order can matter (the join gives its events a batch field), and its index
        self._last_key: tuple[str, Any] | None = None  # the batch key of the last event fed
        self._last: tuple[int, Event] | None = None
        self.anomalies: list[Anomaly] = []
        # event index of a gap marker -> its anomaly and the marker
        self._markers: dict[int, tuple[Anomaly, Event]] = {}
        # Where findings are located: a record's batch number. For the records an event is
        # located at, as runs: (first record, batch number minus record) sorted by record, a
        # new run only where the offset changes (a restart, a gap, a late batch), so a stream
        # adds nothing per batch (docs/watch-nats.md "Memory"). The records a gap marker is
        # located at are kept one by one (they are anomalies).
        self._run_at: list[int] = []
        self._run_offset: list[int | None] = []
        self._last_located = 0
        self._seq_of: dict[int, int | None] = {}  # marker records whose batch came in
        self._marked: set[int] = set()  # records a marker is located at, their batch not yet in
        self.decided = 0  # batches decided
        self._shown = 0
        self._finished: Report | None = None
        # per instance: the data-parallel rank (the shard) of its batches, other ranks seen
        self._rank: dict[str | None, int] = {}
        self._foreign: set[tuple[str | None, int]] = set()
        self._ranks_scoped = all(c.dp_rank is not None for c in manifest.claims)
        self._add(self.join.start())

    # ---- feeding ---------------------------------------------------------------------------
    def _add(self, events: list[Event]) -> None:
        for ev in events:
            if self._unordered is None:  # two events in a row with one batch key (as
                # PartialTrace.batches counts a batch of two or more)
                key = next(((f, ev.fields[f]) for f in self._batch_fields
                            if ev.fields.get(f) is not None), None)
                if key is not None and key == self._last_key:
                    self._unordered = self._last
                self._last_key, self._last = key, (self.count, ev)
            if self.recorder is not None and ev.kind in self.recorder.kinds:
                self.recorder(ev)
            self.count += 1
            if not self.let_go:
                if self.keep is not None and self.count > self.keep:
                    self.events.clear()  # the Z3 engine will not have the whole stream
                    self.let_go = True
                else:
                    self.events.append(ev)
            self.replay.feed(ev)

    def _located_at(self, record: int, seq: int | None) -> None:
        """Remember `record`'s batch number (see __init__): a new run where the offset changes;
        a record before others already located (a late batch) cuts its run in two, and the
        records after it keep their offset."""
        offset = None if seq is None else seq - record
        later = record < self._last_located
        self._last_located = max(self._last_located, record)
        at, offsets = self._run_at, self._run_offset
        i = bisect.bisect_right(at, record)
        before = offsets[i - 1] if i else None
        if before == offset:
            return
        if i and at[i - 1] == record:
            offsets[i - 1] = offset
        else:
            at.insert(i, record)
            offsets.insert(i, offset)
            i += 1
        if later and not (i < len(at) and at[i] == record + 1):
            at.insert(i, record + 1)
            offsets.insert(i, before)

    def _batch_of(self, record: int) -> int | None:
        if record in self._seq_of:
            return self._seq_of[record]
        if record in self._marked:
            return None  # a marker's record whose batch never came in
        i = bisect.bisect_right(self._run_at, record)
        offset = self._run_offset[i - 1] if i else None
        return None if offset is None else record + offset

    def push(self, frame: Frame) -> list[Step]:
        """One received frame; returns the steps it caused (batches decided, anomalies)."""
        numbering = _numbering(frame)
        if frame.stream is not None:
            self._streams.add(numbering)
        steps = self._named(numbering, self._sequencer(numbering).push(frame))
        self._apply(steps, numbering)
        return steps

    def _named(self, numbering: Any, steps: list[Step]) -> list[Step]:
        """A numbering's anomalies naming its publisher, where the importer named one."""
        if numbering not in self._streams:
            return steps
        return [(k, _named(x, numbering)) if k == "anomaly" else (k, x) for k, x in steps]

    def _sequencer(self, topic: Any) -> Sequencer:
        if self._topic0 is None:
            self._topic0 = topic
        if topic == self._topic0:
            return self.sequencer
        return self._sequencers.setdefault(topic, Sequencer(self.window))

    @property
    def received(self) -> int:
        """Frames received, every publisher's."""
        return self.sequencer.received + sum(q.received for q in self._sequencers.values())

    @property
    def expected(self) -> int:
        """The next batch number the stream needs (what a replay socket is asked for)."""
        return self.sequencer.expected

    def held(self, seq: int) -> bool:
        """Whether batch `seq` is waiting in the reorder window."""
        return self.sequencer.holds(seq)

    def _apply(self, steps: list[Step], topic: bytes | None = None) -> None:
        for kind, x in steps:
            if kind == "batch":
                self._batch(x)
            else:
                self._anomaly(self._scoped(x, topic))

    def _scoped(self, a: Anomaly, topic: bytes | None) -> Anomaly:
        """A publisher's anomaly where its instance is known and no claim is scoped to it:
        said, deciding nothing (docs/formats.md "Stream consistency"); otherwise as it is."""
        if not a.unknown or topic is None or topic not in self._instance_of:
            return a
        instance = self._instance_of[topic]
        if self.join.touches(instance):
            return a
        return Anomaly(OUT_OF_SCOPE, f"{a.kind}: {a.message} (instance {instance!r}, which no "
                       "claim is scoped to)", a.record, a.seq, a.missing)

    def _batch(self, frame: Frame) -> None:
        self.decided += 1
        try:
            batch = self.decode(frame.payload, frame.seq)
            if not isinstance(self.decode, MsgpackDecoder):  # (a msgpack batch was checked)
                for e in batch.events:
                    check_event(e, self.join.F)
        except Exception as err:  # noqa: BLE001 - any malformed payload is a lost batch
            self._seq_of[frame.record] = frame.seq
            self._anomaly(Anomaly(UNDECODABLE, f"batch {frame.seq} at record {frame.record} is "
                                  f"not a batch as the {self.join.F.name} format declares "
                                  f"it ({err}): its events are lost",
                                  frame.record, frame.seq,
                                  None if frame.seq is None else (frame.seq, frame.seq + 1)))
            return
        self._instance_of.setdefault(_numbering(frame), batch.instance)
        if not self._same_shard(batch.data_parallel_rank, batch.instance, frame):
            return
        events = self.join.feed_batch(batch, frame.record)
        if frame.record in self._marked:
            self._seq_of[frame.record] = frame.seq
            self._marked.discard(frame.record)
        elif events:
            self._located_at(frame.record, frame.seq)
        self._join_findings(events)
        self._add(events)

    def _join_findings(self, events: list[Event]) -> None:
        """The join's stream findings (docs/formats.md "Stream consistency") as anomalies: one
        that touches a claim's scope wrote a gap marker among `events` (in the same order);
        one on an instance no claim is scoped to is said and decides nothing."""
        new = self.join.findings[self._findings_seen:]
        self._findings_seen = len(self.join.findings)
        markers = [i for i, ev in enumerate(events) if ev.kind == self.join.E.stream_gap]
        base = self.count  # `events` are fed next: the index the first of them will have
        for f in new:
            where = f"record {f.record}, batch {f.seq}, event {f.column}"
            if f.unknown:
                a = Anomaly(f.kind, f"{where}: {f.message}", f.record, f.seq)
                i = markers.pop(0)
                self._markers[base + i] = (a, events[i])
            else:
                a = Anomaly(OUT_OF_SCOPE, f"{where}: {f.message} (instance {f.instance!r}, "
                            "which no claim is scoped to)", f.record, f.seq)
            self.anomalies.append(a)

    def _same_shard(self, rank: int | None, instance: str | None, frame: Frame) -> bool:
        """Whether a batch is of its instance's shard: each data-parallel rank has its own KV
        pool (docs/fleet.md), so a batch of another rank is not joined with this pool's events
        (that would be a wrong split); the stream says it crosses shards (unknown from there).
        When every claim names its rank (manifest `dp_rank`), copies are counted per rank
        (kvclaims.trace.kv_identity) and every rank is decided."""
        if rank is None or self._ranks_scoped or rank == self._rank.get(instance):
            return True
        if instance not in self._rank:
            self._rank[instance] = rank
            return True
        if (instance, rank) not in self._foreign:
            self._foreign.add((instance, rank))
            self._anomaly(self._scoped(Anomaly(
                CROSS_SHARD, f"batch {frame.seq} at record {frame.record} is from data-parallel "
                f"rank {rank}, the stream's earlier batches from rank {self._rank[instance]}: "
                "each rank has its own KV pool, so the stream crosses shards and is not decided "
                "as one (record each rank's stream on its own, or name each claim's dp_rank)",
                frame.record, frame.seq), frame.topic))
        return False

    def _anomaly(self, a: Anomaly) -> None:
        self.anomalies.append(a)
        if a.unknown:
            lo, hi = a.missing or (a.seq or 0, a.seq or 0)
            if a.record and a.record not in self._seq_of:
                self._marked.add(a.record)
            marker = self.join.gap(lo, hi, record=a.record or 0, why=a.message)
            self._markers[self.count] = (a, marker[0])
            self._add(marker)

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
            self._apply(self._named(self._topic0, self.sequencer.finish()), self._topic0)
            for numbering, q in self._sequencers.items():
                self._apply(self._named(numbering, q.finish()), numbering)
            self._finished = self._decide()
        report = self._finished
        if extra:
            stream = {**report.extra["stream"], **extra}
            report = replace(report, extra={**report.extra, "stream": stream})
        return report

    def _decide(self) -> Report:
        spec = self.spec
        batches: list[tuple[int, int]] = []
        if self._unordered is not None and not self.let_go:
            trace = PartialTrace(tuple(self.events))
            batches = [(s, e) for s, e, _ in trace.batches(spec) if e - s >= 2]
            # a batch whose events commute is decided by its written order (docs/partial.md)
            from kvclaims.check.commute import conflicting

            if not conflicting(spec, self.events, batches, self.defer_bounds):
                batches = []
        if batches:
            from kvclaims.check import partial  # Z3: only when a batch's order can matter

            report = partial.decide(spec, self.events, file=self.file, batches=batches,
                                    timeout_ms=self.solver_timeout_ms,
                                    defer_bounds=self.defer_bounds)
        elif self._unordered is not None and self.let_go:
            report = self._written_order_only(self.replay.finish(), *self._unordered)
        else:
            report = self.replay.finish()
        return self._located(report)

    def _written_order_only(self, report: Report, index: int, at: Event) -> Report:
        """The replay's report of a stream whose orders the Z3 engine cannot decide (its events
        were let go): the written order is one admissible order, so none of its violations is a
        fact of the stream and the verdict is inconclusive, never a pass."""
        R = RuleIds(self.spec)
        note = Finding(status=UNKNOWN, rule=R.stream, line=at.line, column=at.column,
                       event_index=index, event=at.kind,
                       message=f"record {at.line} holds a batch whose order can matter, and the "
                               f"stream joined more than the {self.keep} events kept for the Z3 "
                               "engine: only the written order was decided, other admissible "
                               "orders are unchecked")
        one_order = tuple(replace(f, status=UNKNOWN, message=f.message + " (in the written order; "
                                  "other admissible orders are unchecked)")
                          if f.status == VIOLATION else f for f in report.findings)
        findings = tuple(sorted(one_order + (note,), key=lambda f: (f.event_index, f.rule)))
        return replace(report, verdict=INCONCLUSIVE, findings=findings,
                       claims=levels_agree(report.claims, findings, INCONCLUSIVE, None),
                       extra={**report.extra, "engine": "replay", "order": "partial"})

    def _located(self, report: Report) -> Report:
        R = RuleIds(self.spec)
        E = EventNames(self.spec)
        findings = []
        covered = set()
        for f in report.findings:
            a, _ = self._markers.get(f.event_index, (None, None))
            if a is not None and f.rule == R.stream:
                covered.add(f.event_index)
                f = replace(f, message=f"{a.message}; verdicts after this point are unknown")
            findings.append(f)
        # The engines report the first stream break; every other one is listed too.
        for index, (a, ev) in self._markers.items():
            if index not in covered:
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
            "records": self.received,
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
                "batch": self._batch_of(record) if record is not None else None,
                "batch_event": f.column or None}


def _numbering(frame: Frame) -> Any:
    """Which publisher's numbering a frame's `seq` belongs to: the importer's `stream` where it
    names one (a file holding several publishers), else the frame's topic (a live socket's)."""
    return frame.stream if frame.stream is not None else frame.topic


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
                  fmt: str | None = None,
                  input_format: str | None = None) -> Report:
    """A record file (bytes) of the importer `input_format` (kvclaims.trace.formats) decided as
    `kvclaims watch` decided it live; raises InputError on a malformed file. `require`: the
    `--require` gates, read from the joined events. `fmt`: the stream format (spec/streams.toml;
    default the manifest's `runtime`)."""
    from kvclaims.trace.formats import importer

    reader = importer(input_format or manifest.runtime)
    frames = reader.frames(data, file)  # every record checked before any is decided
    recorder = GateRecorder(spec) if require else None
    check = StreamCheck(spec, manifest, file, window=window, solver_timeout_ms=solver_timeout_ms,
                        defer_bounds=defer_bounds, fmt=fmt or reader.name,
                        decode=reader.decoder(), recorder=recorder)
    for frame in frames:
        check.push(frame)
    report = check.finish()
    if recorder is not None:
        from kvclaims.check import gate as gates

        report = replace(report, gates=tuple(gates.evaluate(spec, name, report, recorder)
                                             for name in require))
    return report
