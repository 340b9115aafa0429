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


class _Worker:
    def __init__(self, ctx: Any, decide: Decide) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, decide), daemon=True)
        self.proc.start()
        child.close()
        self.shard: Shard | None = None
        self.started = 0.0

    def give(self, shard: Shard, options: Options) -> None:
        self.shard = shard
        self.started = time.monotonic()
        self.conn.send((shard.path, options))

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
    todo = list(reversed(shards))
    workers: list[_Worker] = []
    try:
        for _ in range(max(1, min(jobs, len(shards)))):
            workers.append(_Worker(ctx, decide))
        for w in workers:
            if todo:
                w.give(todo.pop(), options)
        while any(w.shard is not None for w in workers):
            busy = [w for w in workers if w.shard is not None]
            wait_for: float | None = None
            if timeout is not None:
                now = time.monotonic()
                wait_for = max(0.0, min(w.started + timeout for w in busy) - now)
            ready = wait([x for w in busy for x in (w.conn, w.proc.sentinel)], wait_for)
            for i, w in enumerate(workers):
                shard = w.shard
                if shard is None:
                    continue
                report: Report | None = None
                replace_worker = False
                if w.conn in ready or w.proc.sentinel in ready:
                    try:
                        kind, value = w.conn.recv()
                    except (EOFError, OSError):
                        w.proc.join(timeout=5)
                        report = undecided(shard.path, DIED, _death(w.proc))
                        replace_worker = True
                    else:
                        report = value if kind == "ok" else undecided(shard.path, kind, value)
                elif timeout is not None and time.monotonic() - w.started >= timeout:
                    report = undecided(shard.path, TIMEOUT, f"--shard-timeout {timeout:g} s")
                    replace_worker = True
                if report is None:
                    continue
                reports[shard.index] = report
                w.shard = None
                if replace_worker:
                    w.stop(kill=True)
                    if not todo:
                        workers[i] = _Idle()  # type: ignore[assignment]
                        continue
                    w = workers[i] = _Worker(ctx, decide)
                if todo:
                    w.give(todo.pop(), options)
    finally:
        for w in workers:
            if isinstance(w, _Worker):
                w.stop(kill=w.shard is not None)
    return [r for r in reports if r is not None]


class _Idle:
    """A retired worker slot (its process was replaced after a failure, no shard is left)."""

    shard = None
