"""`kvclaims watch`: subscribe to vLLM's live KV event stream and decide its claims, failing closed.

docs/model.md §6 R-stream; docs/vllm.md. Connects a ZMQ SUB socket to vLLM's `ZmqEventPublisher`
(frames `[topic, seq (8 bytes, big-endian), payload]`), asks the ROUTER replay socket (`--replay`)
for batches missing before a received one, and hands every frame, in arrival order, to
:class:`kvclaims.kvstream.StreamCheck`: the same sequencing, join and decision
`kvclaims check FILE.kvbatches --claims M` applies to the record `--record` writes, so the live
and the offline report are one report.

Findings print as the streaming replay makes them; the final report comes when the stream ends
(`--max-batches`, `--idle-timeout`) or on SIGINT/SIGTERM (then the exit code is 130/143 and the
report says the watch was interrupted). Otherwise the exit code is the verdict's: nothing
received, missed history the replay socket did not fill, a gap or a restart is inconclusive (3),
never conformant. Needs pyzmq (the `vllm` extra). Traffic goes only to the endpoints given.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import IO, Any

from kvclaims import spec as spec_mod
from kvclaims.check.selection import RuleSelection
from kvclaims.check.selection import apply as apply_selection
from kvclaims.check.verdict import VIOLATION, Finding, Report
from kvclaims.kvstream import StreamCheck
from kvclaims.trace.kv_records import DEFAULT_WINDOW, SEQ_BYTES, Frame, RecordWriter
from kvclaims.trace.model import InputError
from kvclaims.trace.formats import importer, manifest_runtime
from kvclaims.trace.formats.dynamo import NAME as DYNAMO
from kvclaims.trace.formats.dynamo import event_plane_events, validated
from kvclaims.trace.vllm_events import load_manifest

END_SEQ = -1
REPORT_VERSION = 1  # every --format jsonl line carries it (schemas/watch.schema.json)
EXIT = {"conformant": 0, "violation": 1, "inconclusive": 3}
EXIT_INPUT = 2
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}
MISSING_ZMQ = ("kvclaims watch needs pyzmq, which is not installed: "
               "pip install 'kvclaims[vllm]'")


class _Out:
    def __init__(self, fmt: str, out: IO[str]):
        self.fmt = fmt
        self.out = out

    def emit(self, kind: str, text: str, **data: Any) -> None:
        if self.fmt == "jsonl":
            line = {"report_version": REPORT_VERSION, "kind": kind, **data}
            self.out.write(json.dumps(line, sort_keys=True, default=str) + "\n")
        else:
            self.out.write(text + "\n")
        self.out.flush()


def _replay(ctx: Any, endpoint: str, start: int, timeout_ms: int) -> list[tuple[bytes, int,
                                                                                bytes]]:
    """Ask vLLM's replay ROUTER for every buffered batch from `start` on: (topic, seq, payload)."""
    import zmq

    d = ctx.socket(zmq.DEALER)
    d.setsockopt(zmq.LINGER, 0)
    d.connect(endpoint)
    got: list[tuple[bytes, int, bytes]] = []
    try:
        d.send_multipart([b"", start.to_bytes(SEQ_BYTES, "big")])
        while d.poll(timeout_ms):
            frames = d.recv_multipart()
            if len(frames) != 4:
                continue
            _, topic, seq_b, payload = frames
            seq = int.from_bytes(seq_b, "big", signed=True)
            if seq == END_SEQ:
                break
            got.append((topic, seq, payload))
    finally:
        d.close(linger=0)
    return got


def _finding_line(f: Finding, where: dict[str, Any]) -> str:
    at = f"record {where['record']}" if where.get("record") else "claim manifest"
    return f"{f.status.upper()} {f.rule} claim={f.claim_id} ({at}): {f.message}"


def watch(endpoint: str, replay: str | None, claims: str, fmt: str = "text", *,
          topic: str = "", max_batches: int | None = None, idle_timeout: float | None = None,
          record: str | None = None, window: int = DEFAULT_WINDOW, out: IO[str] | None = None,
          ready: Any = None, stop: threading.Event | None = None,
          replay_timeout_ms: int = 2000, rules: RuleSelection | None = None,
          input_format: str = "vllm") -> int:
    """Run the watcher; returns the exit code (see the module docstring). `stop` (tests) ends
    the watch as SIGINT does. `rules`: the rules --select/--ignore leave out (their violations
    are neither shown nor counted, and the final report says so; kvclaims.check.selection).
    `input_format` `dynamo`: ENDPOINT is a Dynamo publisher's event-plane socket, its messages
    RouterEvents (kvclaims.trace.formats.dynamo), recorded as JSON Lines."""
    try:
        import zmq
    except ImportError:
        print(f"kvclaims: {MISSING_ZMQ}", file=sys.stderr)
        return EXIT_INPUT

    o = _Out(fmt, out or sys.stdout)
    spec = spec_mod.load()
    dynamo = input_format == DYNAMO
    try:
        manifest = load_manifest(claims, manifest_runtime(input_format))
        check = StreamCheck(spec, manifest, endpoint, window=window, fmt=input_format,
                            decode=importer(input_format).decoder())
    except InputError as err:
        o.emit("error", f"{err}", message=str(err))
        return EXIT_INPUT
    writer: RecordWriter | _JsonLinesRecord | None = None
    if record is not None:
        try:
            writer = _JsonLinesRecord(record) if dynamo else RecordWriter(record)
        except OSError as err:
            o.emit("error", f"{record}: cannot write the record: {err.strerror}",
                   message=str(err))
            return EXIT_INPUT
    records = 0
    want = topic.encode()

    shown: set[tuple[Any, ...]] = set()

    left_out = set(rules.left_out) if rules is not None else set()

    def show(f: Finding, where: dict[str, Any]) -> None:
        key = (f.status, f.rule, f.claim_id, f.event_index)
        if f.rule in left_out and f.status == VIOLATION:
            return  # not counted: the final report names the rule and how many there were
        if key not in shown:
            shown.add(key)
            o.emit("finding", _finding_line(f, where), status=f.status, rule=f.rule,
                   claim_id=f.claim_id, message=f.message, **where)

    def show_findings() -> None:
        for f in check.new_findings():  # as the streaming replay makes them
            show(f, check.location(f))

    def take(frame: Frame) -> None:
        nonlocal records
        records += 1
        if writer is not None:
            writer.add(frame)
        for kind, x in check.push(frame):
            if kind == "anomaly":
                o.emit("anomaly", f"{x.kind}: {x.message}", anomaly=x.kind, message=x.message,
                       record=x.record, batch=x.seq,
                       missing=list(x.missing) if x.missing else None)
            else:
                o.emit("batch", f"batch {x.seq} (record {x.record})", seq=x.seq,
                       record=x.record)
        show_findings()

    interrupted: list[int] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, _frame: Any) -> None:
            interrupted.append(signum)

        for sig in SIGNAL_EXIT:
            previous[sig] = signal.signal(sig, on_signal)

    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    try:
        sub.connect(endpoint)
    except zmq.ZMQError as err:
        sub.close(linger=0)
        if writer is not None:
            writer.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        o.emit("error", f"kvclaims watch: {endpoint}: {err}", message=str(err))
        return EXIT_INPUT
    sub.setsockopt(zmq.SUBSCRIBE, want)
    o.emit("start", f"watching {endpoint}" + (f" (replay {replay})" if replay else "")
           + f", {len(manifest.claims)} claim(s)", endpoint=endpoint, replay=replay,
           claims=[c.claim_id for c in manifest.claims])
    show_findings()
    if ready is not None:
        ready.set()
    received = 0
    failed = False
    asked: int | None = None
    last = time.monotonic()
    try:
        while max_batches is None or received < max_batches:
            if interrupted or (stop is not None and stop.is_set()):
                break
            if not sub.poll(100):
                if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                    break
                continue
            last = time.monotonic()
            parts = sub.recv_multipart()
            if dynamo:
                if want and parts[:1] != [want]:
                    continue
                try:
                    for ev, seq, publisher in _router_events(parts, endpoint, records):
                        received += 1
                        take(Frame(seq, ev, records + 1, stream=publisher))
                except ValueError as err:
                    o.emit("error", f"ignored a message: {err}", message=str(err))
                except InputError as err:
                    o.emit("error", f"{err}", message=str(err))
                    failed = True
                    break
                continue
            if len(parts) != 3 or len(parts[1]) != SEQ_BYTES:
                o.emit("error", f"ignored a message of {len(parts)} frame(s): not [topic, seq, "
                       "payload]", message="not a KV event frame")
                continue
            t, seq_b, payload = parts
            if want and t != want:
                continue  # another topic sharing the prefix
            seq = int.from_bytes(seq_b, "big")
            if replay and seq > check.expected and asked != check.expected:
                # Ask for what is missing before this batch first: decided in order, recorded
                # in the order used.
                start = asked = check.expected  # once per missing number, not per frame
                got = [(tt, s, p) for tt, s, p in _replay(ctx, replay, start, replay_timeout_ms)
                       if start <= s < seq and not check.held(s)]
                o.emit("replay", f"replay: asked from batch {start}, got {len(got)} of the "
                       f"{seq - start} missing", start=start, missing=[start, seq],
                       replayed=len(got))
                for tt, s, p in sorted(got, key=lambda x: x[1]):
                    received += 1
                    take(Frame(s, p, records + 1, tt))
            received += 1
            take(Frame(seq, payload, records + 1, t))
    except KeyboardInterrupt:
        interrupted.append(signal.SIGINT)
    finally:
        sub.close(linger=0)
        if writer is not None:
            writer.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop is not None and stop.is_set() and not interrupted:
        interrupted.append(signal.SIGINT)
    why = signal.Signals(interrupted[0]).name if interrupted else None
    if failed:
        return EXIT_INPUT
    report = apply_selection(check.finish({"interrupted": why}), rules)
    for f, where in zip(report.findings, report.extra["stream"]["locations"]):
        show(f, where)  # those decided only at the end (and the Z3 engine's)
    if record is not None:
        o.emit("record", f"recorded {records} frame(s) in {record}", path=record, frames=records)
    _final(o, report, spec)
    if interrupted:
        return SIGNAL_EXIT.get(interrupted[0], 130)
    return EXIT.get(report.verdict, EXIT_INPUT)


class _JsonLinesRecord:
    """The record of a Dynamo watch: the RouterEvents received, one JSON object a line, flushed
    after each (what `kvclaims check FILE --claims M` reads as format dynamo)."""

    def __init__(self, path: str) -> None:
        self.fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def add(self, frame: Frame) -> None:
        self.fh.write(json.dumps(frame.payload, separators=(",", ":")) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _router_events(parts: list[bytes], endpoint: str, records: int) -> list[tuple[Any, int,
                                                                                   Any]]:
    """The RouterEvents of one event-plane message, each checked as a file line is (ValueError:
    not an event-plane message; InputError: a RouterEvent of unknown shape, located)."""
    out = []
    for i, obj in enumerate(event_plane_events(parts)):
        out.append(validated(obj, endpoint, records + 1 + i))
    return out


def _final(o: _Out, report: Report, spec: Any) -> None:
    from kvclaims.report import json as json_report

    stream = report.extra["stream"]
    if o.fmt == "jsonl":
        gaps = [a["missing"] for a in stream["anomalies"] if a["unknown"] and a["missing"]]
        o.emit("verdict", "", verdict=report.verdict, batches=stream["batches"], gaps=gaps,
               interrupted=stream.get("interrupted"),
               claims={c.claim_id: c.verdict for c in report.claims},
               report=json_report.to_dict(report))
        return
    from rich.console import Console

    from kvclaims.explain import strips_for_report
    from kvclaims.report import text

    console = Console(file=o.out, highlight=False, soft_wrap=True, width=120)
    text.render(report, spec, console, strips_for_report(report, spec))
    o.out.flush()


def watch_command(endpoint: str, replay: str | None, claims: str, fmt: str = "text",
                  **options: Any) -> int:
    """The CLI entry: `kvclaims watch tcp://HOST:5557 [--replay tcp://HOST:5558] --claims M`."""
    return watch(endpoint, replay, claims, fmt, **options)


__all__ = ["watch", "watch_command", "MISSING_ZMQ"]
