"""`kvclaims watch nats://HOST:PORT --stream S --durable D --claims M`: audit a KV event stream
from NATS JetStream with a durable consumer, checkpointed, each batch decided once
(docs/watch-nats.md; docs/model.md §6 R-stream).

The messages `kvclaims relay` stored (:mod:`kvclaims.jetstream`) are pulled with a durable
consumer (explicit acks) and handed, in stream order, to the one deciding path
:class:`kvclaims.kvstream.StreamCheck` — the same one `kvclaims check FILE.kvbatches --claims M`
and the ZMQ watch use, so the report is the offline one. What this module decides, and nothing
about claims:

- exactly once: a message is acknowledged only after it is decided and the checker's state is
  checkpointed (:mod:`kvclaims.checkpoint`, in a JetStream object store bucket, one object per
  stream and durable; written at most every `checkpoint_interval` seconds while messages flow,
  when the stream goes quiet and when the watch stops). A watcher killed at any point resumes
  from its last checkpoint: the durable is positioned again after the checkpoint's last stream
  message, so what follows is decided in stream order; a message at or below its instance's
  mark (run, batch number) was decided already and is dropped (a redelivery, or a copy stored
  past JetStream's duplicate window);
- history: a watch that resumes from a checkpoint has decided batches before; when the stream has
  nothing new its report is the checkpoint's (a second watch on a consumed durable gives the
  first one's verdict). "No batch received" is inconclusive only for a watch with no history;
- one instance: a stream check decides one engine's pool; messages from a second instance on the
  watched subject are a usage error (exit 2), not a merge.

The state kept between batches is the StreamCheck's and, per instance, one mark
(docs/watch-nats.md, "Memory"). Exit codes are the ZMQ watch's: the verdict's (0, 1, 3), 2 on a
usage or input error (a refused checkpoint included), 130/143 when interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from kvclaims import __version__
from kvclaims import checkpoint as ckpt
from kvclaims import jetstream as jsw
from kvclaims import spec as spec_mod
from kvclaims.check.selection import RuleSelection
from kvclaims.check.selection import apply as apply_selection
from kvclaims.check.verdict import VIOLATION, Finding
from kvclaims.kvstream import StreamCheck
from kvclaims.trace.kv_records import DEFAULT_WINDOW, Frame
from kvclaims.trace.model import InputError
from kvclaims.trace.vllm_events import load_manifest
from kvclaims.watch import EXIT, EXIT_INPUT, SIGNAL_EXIT, _final, _finding_line, _Out

DEFAULT_BUCKET = "kvclaims-checkpoints"
DEFAULT_FETCH = 16
DEFAULT_ACK_WAIT = 30.0
DEFAULT_CHECKPOINT_INTERVAL = 1.0


def max_pending(fetch: int) -> int:
    """Messages decided but not yet checkpointed at most (and the consumer's max ack pending
    is twice that, so a full batch of them never stops delivery)."""
    return max(fetch * 8, 1024)


class UsageError(Exception):
    """Said on one line, exit 2."""


class _Watch:
    """One durable's audit: the checker, the marks, and the emitted lines."""

    def __init__(self, o: _Out, check: StreamCheck, header: ckpt.Header | None,
                 rules: RuleSelection | None = None) -> None:
        self.o = o
        self.check = check
        self.left_out = frozenset(rules.left_out) if rules is not None else frozenset()
        self.marks: dict[str, ckpt.Mark] = dict(header.marks) if header else {}
        self.stream_seq = header.stream_seq if header else 0
        self.instance = next(iter(self.marks), None)
        self.dropped = 0
        self.shown: set[tuple[Any, ...]] = set()

    def show(self, f: Finding, where: dict[str, Any]) -> None:
        key = (f.status, f.rule, f.claim_id, f.event_index)
        if f.rule in self.left_out and f.status == VIOLATION:
            return  # not counted: the final report names the rule and how many there were
        if key not in self.shown:  # display only: at most one line per finding
            self.shown.add(key)
            self.o.emit("finding", _finding_line(f, where), status=f.status, rule=f.rule,
                        claim_id=f.claim_id, message=f.message, **where)

    def take(self, msg: Any) -> None:
        """Decide one message (a duplicate or a redelivery is dropped and said)."""
        meta = msg.metadata
        ident = jsw.identity(msg.headers)
        record = self.check.received + 1
        if ident is None:
            frame = Frame(None, msg.data, record)  # unsequenced: the Sequencer says so
        else:
            inst, epoch, seq = ident
            if self.instance is None:
                self.instance = inst
            elif inst != self.instance:
                raise UsageError(f"the stream holds batches of two instances ({self.instance}, "
                                 f"{inst}): a watch decides one instance's pool; give the "
                                 "relay one subject per instance and watch it with --subject")
            mark = self.marks.get(inst)
            if mark is not None and (epoch, seq) <= (mark.epoch, mark.seq):
                self.dropped += 1
                self.o.emit("dropped", f"batch {seq} (run {epoch}) again at stream message "
                            f"{meta.sequence.stream}: decided already, dropped", seq=seq,
                            epoch=epoch, stream_seq=meta.sequence.stream)
                self.stream_seq = max(self.stream_seq, meta.sequence.stream)
                return
            self.marks[inst] = ckpt.Mark(epoch, seq)
            topic = (msg.headers or {}).get(jsw.TOPIC, "").encode()
            frame = Frame(seq, msg.data, record, topic)
        for kind, x in self.check.push(frame):
            if kind == "anomaly":
                self.o.emit("anomaly", f"{x.kind}: {x.message}", anomaly=x.kind,
                            message=x.message, record=x.record, batch=x.seq,
                            missing=list(x.missing) if x.missing else None)
            else:
                self.o.emit("batch", f"batch {x.seq} (record {x.record})", seq=x.seq,
                            record=x.record)
        for f in self.check.new_findings():
            self.show(f, self.check.location(f))
        self.stream_seq = max(self.stream_seq, meta.sequence.stream)

    def header(self, stream: str, durable: str, manifest_bytes: bytes) -> ckpt.Header:
        return ckpt.Header(ckpt.FORMAT, __version__, ckpt.spec_digest(),
                           ckpt.manifest_digest(manifest_bytes), stream, durable,
                           self.stream_seq, self.check.received, dict(self.marks))


async def _bucket(js: Any, name: str) -> Any:
    from nats.js.api import ObjectStoreConfig, StorageType
    from nats.js.errors import BucketNotFoundError, NotFoundError

    try:
        return await js.object_store(name)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(name, config=ObjectStoreConfig(
            storage=StorageType.FILE,
            description="kvclaims watch checkpoints (docs/watch-nats.md)"))


async def _consumer(js: Any, stream: str, durable: str, subject: str | None,
                    ack_wait: float, fetch: int, after: int) -> Any:
    """The durable pull consumer, (re)positioned after stream message `after` (the checkpoint's):
    JetStream hands unacknowledged messages back after newer ones, so a restarted watch starts
    the durable again where its checkpoint ends rather than wait for redeliveries out of order."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(stream)
    except NotFoundError:
        raise UsageError(f"no stream {stream} on the server (`kvclaims relay` creates it)") \
            from None
    try:
        await js.delete_consumer(stream, durable)
    except NotFoundError:
        pass
    where = ({"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": after + 1}
             if after else {"deliver_policy": DeliverPolicy.ALL})
    await js.add_consumer(stream, ConsumerConfig(
        durable_name=durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait,
        filter_subject=subject, max_ack_pending=2 * max_pending(fetch), **where))
    return await js.pull_subscribe_bind(durable=durable, stream=stream)


async def _run(url: str, stream: str, durable: str, claims: str, o: _Out, *,
               interrupted: list[int], stop: threading.Event, **options: Any) -> int:
    spec = spec_mod.load()
    try:
        manifest = load_manifest(claims)
        with open(claims, "rb") as fh:
            manifest_bytes = fh.read()
    except InputError as err:
        o.emit("error", f"{err}", message=str(err))
        return EXIT_INPUT
    try:
        nc = await jsw.connect(url)
    except Exception as err:  # noqa: BLE001 - unreachable server: said, exit 2
        o.emit("error", f"kvclaims watch: {url}: cannot connect ({err or type(err).__name__})",
               message=str(err))
        return EXIT_INPUT
    audit = _Audit(nc, url, stream, durable, o, spec, manifest, manifest_bytes,
                   interrupted=interrupted, stop=stop, **options)
    try:
        rc = await audit.start()
        if rc is not None:
            return rc
        try:
            rc = await audit.run()
        except jsw.Stopped:
            rc = None  # interrupted while the server was away: what is checkpointed stands
        if rc is not None:
            return rc
    except jsw.Stopped:
        o.emit("error", "kvclaims watch: interrupted while waiting for the server: nothing "
               "decided", message="interrupted")
        return SIGNAL_EXIT.get(interrupted[0] if interrupted else signal.SIGINT, 130)
    finally:
        try:
            await asyncio.wait_for(nc.close(), 5)
        except Exception:  # noqa: BLE001 - closing
            pass
    return audit.report()


class _Audit:
    """One run of the watch: set up (checkpoint, consumer), decide until idle or stopped,
    checkpointing then acknowledging, and report."""

    def __init__(self, nc: Any, url: str, stream: str, durable: str, o: _Out, spec: Any,
                 manifest: Any, manifest_bytes: bytes, *, subject: str | None, bucket: str,
                 idle_timeout: float | None, ack_wait: float, fetch: int, window: int,
                 checkpoint_interval: float, stop: threading.Event, interrupted: list[int],
                 ready: threading.Event | None,
                 fault: Callable[[str, int], None] | None,
                 rules: RuleSelection | None) -> None:
        self.nc, self.url, self.stream, self.durable, self.o = nc, url, stream, durable, o
        self.spec, self.manifest, self.manifest_bytes = spec, manifest, manifest_bytes
        self.subject, self.bucket, self.idle_timeout = subject, bucket, idle_timeout
        self.ack_wait, self.fetch, self.window = ack_wait, fetch, window
        self.checkpoint_interval = checkpoint_interval
        self.stop, self.interrupted, self.ready, self.fault = stop, interrupted, ready, fault
        self.rules = rules
        self.key = f"{stream}.{durable}"
        self.pending: list[Any] = []  # decided, not yet checkpointed: not acknowledged

    def halted(self) -> bool:
        return bool(self.interrupted) or self.stop.is_set()

    async def start(self) -> int | None:
        """The checkpoint (or a fresh check) and the consumer; an exit code when refused."""
        from nats.js.errors import ObjectNotFoundError

        js = self.nc.jetstream()
        self.store = await jsw.retry(lambda: _bucket(js, self.bucket), stop=self.halted)
        where = f"checkpoint {self.bucket}/{self.key}"
        header: ckpt.Header | None = None
        try:
            res = await jsw.retry(lambda: self.store.get(self.key), stop=self.halted)
            header, check = ckpt.load(res.data, where, self.spec, self.manifest_bytes)
        except ObjectNotFoundError:
            check = StreamCheck(self.spec, self.manifest, f"{self.url}/{self.stream}",
                                window=self.window)
        except ckpt.CheckpointError as err:
            self.o.emit("error", f"kvclaims watch: {err}", message=str(err))
            return EXIT_INPUT
        self.check = check
        self.w = _Watch(self.o, check, header, self.rules)
        try:
            self.psub = await jsw.retry(lambda: _consumer(
                js, self.stream, self.durable, self.subject, self.ack_wait, self.fetch,
                self.w.stream_seq), stop=self.halted)
        except UsageError as err:
            self.o.emit("error", f"kvclaims watch: {err}", message=str(err))
            return EXIT_INPUT
        self.o.emit("start", f"watching {self.url} stream {self.stream} durable {self.durable}, "
                    f"{len(self.manifest.claims)} claim(s)" + (
                        f"; resumed from {where} after stream message {header.stream_seq} "
                        f"({header.records} record(s) decided)" if header else ""),
                    url=self.url, stream=self.stream, durable=self.durable,
                    resumed=header is not None, records=header.records if header else 0,
                    claims=[c.claim_id for c in self.manifest.claims])
        if self.ready is not None:
            self.ready.set()
        return None

    async def commit(self) -> None:
        """Checkpoint what is decided, then acknowledge it."""
        data = ckpt.dump(self.w.header(self.stream, self.durable, self.manifest_bytes),
                         self.check, self.spec)
        await jsw.retry(lambda: self.store.put(self.key, data), stop=self.halted)
        if self.fault is not None:
            self.fault("checkpointed", self.pending[-1].metadata.sequence.stream)
        for m in self.pending:
            await jsw.retry(m.ack, stop=self.halted)
        self.pending.clear()

    async def run(self) -> int | None:
        """Decide until idle or stopped; an exit code on a usage error."""
        from nats.errors import TimeoutError as NatsTimeout

        loop = asyncio.get_running_loop()
        last = last_checkpoint = loop.time()
        while not self.halted():
            try:
                msgs = await self.psub.fetch(batch=self.fetch, timeout=0.5)
            except (NatsTimeout, asyncio.TimeoutError):
                msgs = []
            except Exception as err:  # noqa: BLE001 - a server away is waited for
                if not jsw.transient(err):
                    raise
                msgs = []
                await asyncio.sleep(jsw.RETRY_S)
            if not self.nc.is_connected:
                last = loop.time()  # idle means connected with nothing to read, not away
            if msgs:
                last = loop.time()
                try:
                    for m in msgs:
                        self.w.take(m)
                        self.pending.append(m)
                        if self.fault is not None:
                            self.fault("decided", m.metadata.sequence.stream)
                except UsageError as err:
                    self.o.emit("error", f"kvclaims watch: {err}", message=str(err))
                    return EXIT_INPUT
            if self.pending and (not msgs or len(self.pending) >= max_pending(self.fetch)
                                 or loop.time() - last_checkpoint >= self.checkpoint_interval):
                await self.commit()
                last_checkpoint = loop.time()
            if not msgs and self.idle_timeout is not None and \
                    loop.time() - last > self.idle_timeout:
                break
        if self.pending:  # stopped (idle, a signal): what was decided is kept
            await self.commit()
        return None

    def report(self) -> int:
        """The final report (decided by the stream check) and the exit code."""
        if self.stop.is_set() and not self.interrupted:
            self.interrupted.append(signal.SIGINT)
        why = signal.Signals(self.interrupted[0]).name if self.interrupted else None
        # --select/--ignore: applied to the decided report, as `check` applies them (the
        # checkpoint holds the undecided state, so a resumed watch may count other rules)
        report = apply_selection(self.check.finish({"interrupted": why}), self.rules)
        for f, where in zip(report.findings, report.extra["stream"]["locations"]):
            self.w.show(f, where)
        if self.w.dropped:
            self.o.emit("dropped", f"{self.w.dropped} redelivered or duplicate message(s) "
                        "dropped", dropped=self.w.dropped)
        _final(self.o, report, self.spec)
        if self.interrupted:
            return SIGNAL_EXIT.get(self.interrupted[0], 130)
        return EXIT.get(report.verdict, EXIT_INPUT)


def watch_nats(url: str, claims: str, fmt: str = "text", *, stream: str, durable: str,
               subject: str | None = None, bucket: str = DEFAULT_BUCKET,
               idle_timeout: float | None = None, ack_wait: float = DEFAULT_ACK_WAIT,
               fetch: int = DEFAULT_FETCH, window: int = DEFAULT_WINDOW,
               checkpoint_interval: float = DEFAULT_CHECKPOINT_INTERVAL,
               out: IO[str] | None = None, stop: threading.Event | None = None,
               ready: threading.Event | None = None,
               fault: Callable[[str, int], None] | None = None,
               rules: RuleSelection | None = None) -> int:
    """Run the JetStream watch (see the module docstring); returns the exit code. `rules`: the
    rules --select/--ignore leave out (kvclaims.check.selection), as the ZMQ watch and `check`
    leave them out. `stop` ends it as SIGINT does; `fault(point, stream_seq)` is called at "decided" (each message) and
    "checkpointed" (before the acks): tests inject a slow consumer or a death there."""
    o = _Out(fmt, out or sys.stdout)
    try:
        import nats  # noqa: F401
    except ImportError:
        print(f"kvclaims watch: {jsw.MISSING_NATS}", file=sys.stderr)
        return EXIT_INPUT
    bad = jsw.check_url(url)
    if bad:
        o.emit("error", f"kvclaims watch: {bad}", message=bad)
        return EXIT_INPUT
    stop = stop or threading.Event()
    interrupted: list[int] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def on_signal(signum: int, _frame: Any) -> None:
            interrupted.append(signum)

        for sig in SIGNAL_EXIT:
            previous[sig] = signal.signal(sig, on_signal)
    try:
        rc = asyncio.run(_run(url, stream, durable, claims, o, subject=subject, bucket=bucket,
                              idle_timeout=idle_timeout, ack_wait=ack_wait, fetch=fetch,
                              window=window, checkpoint_interval=checkpoint_interval,
                              stop=stop, interrupted=interrupted, ready=ready,
                              fault=fault, rules=rules))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return rc


__all__ = ["watch_nats", "DEFAULT_BUCKET"]
