"""Shards decided as Ray tasks (`kvclaims check --ray [--ray-address ADDR]`; docs/fleet.md).

The same work as :mod:`kvclaims.fleet.pool` on a Ray cluster: one task per shard, each deciding
its file with THE decision path (:func:`kvclaims.run.decide_path`) on a worker that loaded the
spec once; the reports come back in the input order, so the output is the one `--jobs` gives.
With no address a local Ray is started in this process (and shut down at the end); with one,
the tasks run where the cluster puts them, so every path must be readable there: a local path
on a shared file system, or a URL fsspec can open there (e.g. `s3://...`, `file://` on a shared
file system), which the decision path reads as it reads a file (kvclaims.trace.urls) and reports
under its URL.

Failures are pinned to their shard, as in the process pool: a task whose worker died is
inconclusive, one that ran past `timeout` seconds is cancelled and inconclusive, a Python
exception is a defect (kvclaims.fleet.shards.undecided).
"""

from __future__ import annotations

import time
from typing import Any

from kvclaims.check.verdict import Report
from kvclaims.fleet.pool import Decide
from kvclaims.fleet.shards import DEFECT, DIED, TIMEOUT, undecided
from kvclaims.run import Options, decide_path

_SPEC: Any = None  # the spec, loaded once per Ray worker process


def decide_one(path: str, options: Options, decide: Decide) -> Report:
    """One shard on a Ray worker: a local path, or a URL the decision path reads through fsspec
    where the worker runs (kvclaims.trace.urls)."""
    global _SPEC
    if _SPEC is None:
        from kvclaims import spec as spec_mod

        _SPEC = spec_mod.load()
    return decide(path, _SPEC, options)


def decide_all(files: list[str], options: Options, *, address: str | None = None,
               timeout: float | None = None, num_cpus: int | None = None,
               decide: Decide = decide_path) -> list[Report]:
    """The report of every file, in the order of `files`, decided as Ray tasks. Joins the
    cluster at `address`, or one already initialised in this process, or starts a local one
    with `num_cpus` (default: the machine's cores) and shuts it down afterwards."""
    import logging

    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else num_cpus,
                 include_dashboard=False, logging_level=logging.WARNING,
                 log_to_driver=False, configure_logging=True)
    try:
        return _run(ray, files, options, timeout, decide)
    finally:
        if started:
            ray.shutdown()


def _run(ray: Any, files: list[str], options: Options, timeout: float | None,
         decide: Decide) -> list[Report]:
    task = ray.remote(max_retries=0)(decide_one)
    # At most as many tasks in flight as the cluster has CPUs: a task's clock starts when it
    # is submitted, so a task waiting for a CPU is not timed out for the wait.
    width = max(1, int(ray.cluster_resources().get("CPU", 1)))
    reports: list[Report | None] = [None] * len(files)
    todo = list(reversed(range(len(files))))
    flying: dict[Any, tuple[int, float]] = {}
    while todo or flying:
        while todo and len(flying) < width:
            i = todo.pop()
            flying[task.remote(files[i], options, decide)] = (i, time.monotonic())
        wait_for = None
        if timeout is not None:
            wait_for = max(0.0, min(t for _, t in flying.values()) + timeout - time.monotonic())
        done, _ = ray.wait(list(flying), num_returns=1, timeout=wait_for)
        for ref in done:
            i, _ = flying.pop(ref)
            reports[i] = _result(ray, ref, files[i])
        if timeout is not None:
            now = time.monotonic()
            for ref, (i, t) in list(flying.items()):
                if now - t >= timeout:
                    ray.cancel(ref, force=True)
                    del flying[ref]
                    reports[i] = undecided(files[i], TIMEOUT, f"--shard-timeout {timeout:g} s")
    return [r for r in reports if r is not None]


def _result(ray: Any, ref: Any, path: str) -> Report:
    from ray import exceptions as rx

    try:
        return ray.get(ref)
    except rx.RayTaskError as err:
        cause = err.cause if getattr(err, "cause", None) is not None else err
        return undecided(path, DEFECT, f"{type(cause).__name__}: {cause}")
    except rx.RayError as err:  # the worker died, the node went away
        return undecided(path, DIED, f"died ({type(err).__name__})")
