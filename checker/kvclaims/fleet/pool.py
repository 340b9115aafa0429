"""Shards decided in worker processes (`kvclaims check --jobs N`; docs/fleet.md).

Each worker is a spawned process (no state inherited from the parent: the same code runs on
every platform) that loads the spec once and decides one shard at a time with THE decision path
(:func:`kvclaims.run.decide_path`); the parent collects the reports and returns them in the input
order, so the rendered reports are the ones `--jobs 1` renders, byte for byte.

A worker is given one shard at a time, so a failure is pinned to that shard: a worker that dies
(killed, out of memory, a crash in native code) or runs past `timeout` seconds is replaced and
its shard gets an undecided report (kvclaims.fleet.shards.undecided); every other shard is
decided as usual. Workers ignore SIGINT: Ctrl-C reaches the parent, which kills them and ends
with exit 130 (kvclaims.exits).
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from kvclaims.check.verdict import Report
from kvclaims.fleet.shards import DEFECT, DIED, TIMEOUT, Shard, undecided
from kvclaims.run import Options, decide_path
from kvclaims.spec import Spec

Decide = Callable[[str, Spec, Options], Report]


def _serve(conn: Connection, decide: Decide) -> None:
    """A worker's loop: (path, options) in, ("ok", report) or (DEFECT, why) out; None ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from kvclaims import spec as spec_mod

    spec = spec_mod.load()
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        path, options = msg
        try:
            out: tuple[str, Any] = ("ok", decide(path, spec, options))
        except Exception as err:  # noqa: BLE001 - a defect, reported for this shard only
            out = (DEFECT, f"{type(err).__name__}: {err}")
        conn.send(out)


# Shards handed to a worker ahead of the one it decides, so it never waits for the parent to
# be scheduled between two shards (the parent may sleep on a loaded machine).
AHEAD = 2


class _Worker:
    """One worker process and the shards given to it, in the order it decides them: the first
    is the one it is deciding, since `started`."""

    def __init__(self, ctx: Any, decide: Decide) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, decide), daemon=True)
        self.proc.start()
        child.close()
        self.queue: deque[Shard] = deque()
        self.started = 0.0

    def give(self, shard: Shard, options: Options) -> None:
        if not self.queue:
            self.started = time.monotonic()
        self.queue.append(shard)
        try:
            self.conn.send((shard.path, options))
        except OSError:
            pass  # the worker is gone: its sentinel says so, and the shard is reported lost

    def done(self) -> Shard:
        """The shard just answered; the next one's clock starts now."""
        self.started = time.monotonic()
        return self.queue.popleft()

    def stop(self, kill: bool) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(timeout=None if kill else 5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _death(proc: Any) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"died ({name})"
    return f"died (exit code {code})"


def decide_all(files: list[str], options: Options, jobs: int, *,
               timeout: float | None = None, decide: Decide = decide_path) -> list[Report]:
    """The report of every file, in the order of `files`, decided by `jobs` worker processes.
    `decide` must be importable by name (it is sent to spawned workers)."""
    from kvclaims.fleet.shards import shards_of

    shards = shards_of(files)
    reports: list[Report | None] = [None] * len(shards)
    ctx = mp.get_context("spawn")
    todo = deque(shards)
    workers: list[_Worker] = []

    def feed(w: _Worker) -> None:
        while todo and len(w.queue) < AHEAD:
            w.give(todo.popleft(), options)

    try:
        for _ in range(max(1, min(jobs, len(shards)))):
            workers.append(_Worker(ctx, decide))
        for _ in range(AHEAD):  # the first shards spread over the workers
            for w in workers:
                if todo and len(w.queue) < AHEAD:
                    w.give(todo.popleft(), options)
        while any(w.queue for w in workers):
            busy = [w for w in workers if w.queue]
            wait_for: float | None = None
            if timeout is not None:
                wait_for = max(0.0, min(w.started for w in busy) + timeout - time.monotonic())
            ready = set(wait([x for w in busy for x in (w.conn, w.proc.sentinel)], wait_for))
            for i, w in enumerate(workers):
                if not w.queue:
                    continue
                failed: Report | None = None
                if w.conn in ready or w.proc.sentinel in ready:
                    try:
                        while w.queue and w.conn.poll():
                            kind, value = w.conn.recv()
                            shard = w.done()
                            reports[shard.index] = (value if kind == "ok"
                                                    else undecided(shard.path, kind, value))
                    except (EOFError, OSError):
                        w.proc.join(timeout=5)
                        failed = undecided(w.queue[0].path, DIED, _death(w.proc))
                    else:
                        if w.queue and not w.proc.is_alive():
                            failed = undecided(w.queue[0].path, DIED, _death(w.proc))
                elif timeout is not None and time.monotonic() - w.started >= timeout:
                    failed = undecided(w.queue[0].path, TIMEOUT, f"--shard-timeout {timeout:g} s")
                if failed is not None:
                    # The shard being decided is lost; those queued behind it go back in front.
                    reports[w.queue.popleft().index] = failed
                    todo.extendleft(reversed(w.queue))
                    w.queue.clear()
                    w.stop(kill=True)
                    if not todo:
                        continue  # a stopped worker with no shard stays in its slot
                    w = workers[i] = _Worker(ctx, decide)
                elif todo and not w.queue and not w.proc.is_alive():
                    w.stop(kill=True)  # died between two shards: nothing of it was lost
                    w = workers[i] = _Worker(ctx, decide)
                feed(w)
    finally:
        for w in workers:
            w.stop(kill=bool(w.queue))
    return [r for r in reports if r is not None]


