"""What a shard is, and the report of a shard that could not be decided (docs/fleet.md).

A shard is the finest part of the input whose events are decided together: every rule of
spec/rules.toml reads one KV pool's claims and blocks (docs/model.md §6), and a pool belongs to
one serving instance. No trace event names its instance today (spec/events.toml has no instance
field), so a shard is one FILE: a file is one instance's stream. A recorded KV event stream
whose batches come from two data-parallel ranks (two pools) is reported as crossing shards by
kvclaims.kvstream (inconclusive, with the reason), never split by guesswork.

A shard whose worker died or ran past its time is not decided: its report says so, fail-closed
(docs/fleet.md "When a worker fails"):

- a timeout or a worker that died (killed, out of memory, a crash in native code): the result
  is inconclusive (exit 3), with the reason as the report's error;
- a Python exception in the worker is a defect of kvclaims: an input-error result (exit 2, as
  every internal error, kvclaims.exits) with the exception named.
"""

from __future__ import annotations

from dataclasses import dataclass

from kvclaims.check.verdict import INCONCLUSIVE, INPUT_ERROR, InputProblem, Report

TIMEOUT = "timeout"
DIED = "died"
DEFECT = "defect"


@dataclass(frozen=True)
class Shard:
    """One unit of work: the position of a file in the input order, and its path."""

    index: int
    path: str


def shards_of(files: list[str]) -> list[Shard]:
    """One shard per file, in the input order (see the module docstring for why)."""
    return [Shard(i, p) for i, p in enumerate(files)]


def undecided(path: str, kind: str, detail: str) -> Report:
    """The report of a shard no worker decided: `kind` is TIMEOUT, DIED or DEFECT."""
    label = "<stdin>" if path == "-" else path
    if kind == DEFECT:
        message = (f"internal error while deciding this file: {detail} (a defect of kvclaims: "
                   "please report it; no verdict for this file)")
        verdict, unknown = INPUT_ERROR, False
    elif kind == TIMEOUT:
        message = f"not decided: the worker ran past {detail}; no verdict for this file"
        verdict, unknown = INCONCLUSIVE, True
    else:
        message = f"not decided: the worker process {detail}; no verdict for this file"
        verdict, unknown = INCONCLUSIVE, True
    return Report(file=label, verdict=verdict, events=0, findings=(), finding_counts={},
                  claims=(), requests=(), prefixes=(), cached_resident_victims=0,
                  resident_preserved=False, protected_resident_blocks=0,
                  error=InputProblem(None, None, message, unknown))
