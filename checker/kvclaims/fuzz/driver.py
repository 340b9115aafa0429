"""The search behind `kvclaims fuzz`: generated workloads → a runtime → events → check → shrink.

For one runtime (kvclaims.runtime.interface), Hypothesis generates workloads
(kvclaims.fuzz.strategies.workloads, or the runtime's own: vllm_workloads for vllm:…); every
trace is checked by the replay checker (docs/model.md §6).
A trace with a violation or an unknown finding is a failure, named by its rule; Hypothesis then
shrinks the workload while the trace keeps failing on that rule, and the minimal trace (`.kvt`),
its workload (JSON) and a one-line reproduction command are written to the output directory. The
search then continues, ignoring rules already found, until the example budget is spent. Same seed,
same search; Hypothesis's example database under the output directory replays saved failures first.
"""

from __future__ import annotations

import io
import json
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from kvclaims import spec as spec_mod
from kvclaims.check.verdict import UNKNOWN, VIOLATION, Finding, Report
from kvclaims.fuzz import strategies as kst
from kvclaims.runtime.interface import RuntimeSpec, RuntimeUnavailable, drive, resolve
from kvclaims.run import decide_trace, exit_code
from kvclaims.runtime.workload import ClaimSpec, PrefixSpec, RequestSpec, Workload
from kvclaims.trace.model import Event

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
RUNTIME_ERROR = "runtime-error"  # the runtime raised instead of emitting a trace
WORKLOAD_FORMAT = 1  # a saved workload's report_version (schemas/workload.schema.json)
WORKLOAD_KIND = "kvclaims_workload"
SUMMARY_VERSION = 1  # summary.json's report_version (schemas/fuzz-summary.schema.json)


# ---- data ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Failure:
    """A minimal failing workload for one rule, with its trace and where it was written."""

    rule: str
    status: str  # violation | unknown | runtime-error
    message: str
    workload: Workload
    events: tuple[Event, ...]
    report: Report | None
    found_after: int  # generated examples (in total) when the rule was first hit
    shrink_steps: int
    kvt: Path | None = None
    workload_file: Path | None = None
    command: str | None = None
    rechecked: bool | None = None  # the written .kvt, read back, fails on the same rule
    kvt_events: int | None = None  # events in the written .kvt


@dataclass(slots=True)
class FuzzSummary:
    runtime: str
    seed: int
    examples: int = 0  # generated workloads (shrinking steps not counted)
    shrink_steps: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)

    def by_rule(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.failures:
            out[f.rule] = out.get(f.rule, 0) + 1
        return out


class _Found(Exception):
    """Raised inside the Hypothesis test to mark an example as failing on `rule`."""

    def __init__(self, rule: str):
        super().__init__(rule)
        self.rule = rule


# ---- one example ------------------------------------------------------------------------------
def findings_of(report: Report) -> list[Finding]:
    """Findings that make a trace a failure: violations first, then unknowns."""
    bad = [f for f in report.findings if f.status == VIOLATION]
    return bad + [f for f in report.findings if f.status == UNKNOWN]


def evaluate(runtime: RuntimeSpec, workload: Workload, spec: spec_mod.Spec
             ) -> tuple[tuple[Event, ...], Report | None, list[tuple[str, str, str]]]:
    """Run and check one workload: (events, report, [(rule, status, message)…] failing)."""
    try:
        events = tuple(drive(runtime.factory(), workload))
    except Exception as err:  # noqa: BLE001 -- a crashing runtime is a finding, not a crashed fuzzer
        return (), None, [(RUNTIME_ERROR, RUNTIME_ERROR, f"{type(err).__name__}: {err}")]
    report = decide_trace(spec, events, file=runtime.name)  # the decision `check` makes
    return events, report, [(f.rule, f.status, f.message) for f in findings_of(report)]


# ---- the search -------------------------------------------------------------------------------
@dataclass(slots=True)
class _Phase:
    excluded: frozenset[str]
    max_shrinks: int | None
    generated: int = 0
    target: str | None = None
    shrink_steps: int = 0
    failing: set[Workload] = field(default_factory=set)
    last: tuple[Workload, tuple[Event, ...], Report | None, str, str] | None = None


def _property(ph: _Phase, rt: RuntimeSpec, spec: spec_mod.Spec, summary: FuzzSummary,
              on_example: Callable[[FuzzSummary], None] | None) -> Callable[[Workload], None]:
    """The Hypothesis test of one search phase: fail on the first new rule, then on that rule."""

    def test(wl: Workload) -> None:
        if ph.target is None:
            ph.generated += 1
            summary.examples += 1
            if on_example is not None:
                on_example(summary)
        else:
            ph.shrink_steps += 1
            if (ph.max_shrinks is not None and ph.shrink_steps > ph.max_shrinks
                    and wl not in ph.failing):
                return  # shrink budget spent: only already-seen failures still fail
        events, report, bad = evaluate(rt, wl, spec)
        for rule, status, message in bad:
            if rule in ph.excluded or (ph.target is not None and rule != ph.target):
                continue
            ph.target = rule
            ph.failing.add(wl)
            ph.last = (wl, events, report, status, message)
            raise _Found(rule)

    return test


def _settings(examples: int, db: DirectoryBasedExampleDatabase | None, shrink: bool) -> settings:
    phases = [Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=max(1, examples), deadline=None, database=db, phases=phases,
                    verbosity=Verbosity.quiet, report_multiple_bugs=False, print_blob=False,
                    suppress_health_check=list(HealthCheck), derandomize=False)


def search(runtime: str | RuntimeSpec, *, examples: int, seed: int, out: str | Path | None = None,
           max_shrinks: int | None = None, max_failures: int | None = None,
           workloads: st.SearchStrategy[Workload] | None = None,
           on_example: Callable[[FuzzSummary], None] | None = None,
           on_failure: Callable[[Failure], None] | None = None) -> FuzzSummary:
    """Search `examples` generated workloads for failures of `runtime`; shrink and write each.

    `max_failures` stops after that many distinct failing rules (None: spend the budget).
    `out` (optional) receives, per failing rule, ``<rule>.kvt``, ``<rule>.workload.json`` and
    ``<rule>.repro`` (the one-line command), plus ``summary.json`` and the example database.
    """
    rt = resolve(runtime) if isinstance(runtime, str) else runtime
    spec = spec_mod.load()
    if workloads is not None:
        strategy = workloads
    elif rt.workloads is not None:  # the runtime's own (e.g. vllm_workloads for vllm:…)
        strategy = getattr(kst, rt.workloads)()
    else:
        strategy = kst.workloads()
    out_dir = Path(out) if out is not None else None
    db = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        db = DirectoryBasedExampleDatabase(str(out_dir / ".hypothesis"))
    summary = FuzzSummary(rt.name, seed)
    started = time.perf_counter()
    found: set[str] = set()
    phase_no = 0
    while summary.examples < examples and (max_failures is None
                                            or len(summary.failures) < max_failures):
        ph = _Phase(frozenset(found), max_shrinks)

        test = _property(ph, rt, spec, summary, on_example)
        digest = f"{rt.name}|{','.join(sorted(found))}".encode()
        test.__qualname__ = test.__name__ = "kvclaims_fuzz"
        # the database key: one per runtime and set of rules already found
        test._hypothesis_internal_add_digest = digest  # type: ignore[attr-defined]
        wrapped = hypothesis_seed(seed + phase_no)(given(wl=strategy)(test))
        # @seed switches the example database off; the database is what makes failures replay,
        # so the settings (with it) are set after the seed
        wrapped._hypothesis_internal_use_settings = _settings(  # type: ignore[attr-defined]
            examples - summary.examples, db, max_shrinks != 0)
        try:
            wrapped()
        except Exception:  # noqa: BLE001, S110 -- _Found, or Hypothesis's wrapper of it
            pass  # (e.g. a flaky final replay); ph.last holds the minimal failure either way
        summary.shrink_steps += ph.shrink_steps
        if ph.target is None or ph.last is None:
            break  # the budget was spent without a new failure
        wl, events, report, status, message = ph.last
        failure = Failure(ph.target, status, message, wl, events, report,
                          found_after=summary.examples, shrink_steps=ph.shrink_steps)
        if out_dir is not None:
            failure = write_failure(failure, rt.name, out_dir, spec)
        summary.failures.append(failure)
        if on_failure is not None:
            on_failure(failure)
        found.add(ph.target)
        phase_no += 1
    summary.seconds = time.perf_counter() - started
    if out_dir is not None:
        (out_dir / "summary.json").write_text(json.dumps(summary_data(summary), indent=2) + "\n")
    return summary


# ---- files --------------------------------------------------------------------------------------
def workload_to_data(wl: Workload, runtime: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"report_version": WORKLOAD_FORMAT, "kind": WORKLOAD_KIND}
    if runtime is not None:
        data["runtime"] = runtime
    data.update(asdict(wl))
    return data


def workload_from_data(data: dict[str, Any]) -> Workload:
    """Inverse of :func:`workload_to_data`; raises ValueError on anything else."""
    # Files written before issue 20 carry `"kvclaims_workload": 1` instead.
    if not ((data.get("kind") == WORKLOAD_KIND and data.get("report_version") == WORKLOAD_FORMAT)
            or data.get(WORKLOAD_KIND) == WORKLOAD_FORMAT):
        raise ValueError(f"not a kvclaims workload file (kind: {WORKLOAD_KIND}, "
                         f"report_version: {WORKLOAD_FORMAT})")
    try:
        prefixes = tuple(
            PrefixSpec(p["prefix_id"], p["blocks"],
                       ClaimSpec(**p["claim"]) if p.get("claim") else None, p.get("request_id"))
            for p in data["prefixes"])
        requests = tuple(RequestSpec(**{**r, "chunks": tuple(r["chunks"])})
                         for r in data["requests"])
        wl = Workload(data["usable"], prefixes, requests, data.get("run_id", "microruntime"))
    except (KeyError, TypeError) as err:
        raise ValueError(f"bad workload file: {err}") from None
    wl.check()
    return wl


def _slug(rule: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in rule)


def write_failure(f: Failure, runtime: str, out_dir: Path, spec: spec_mod.Spec) -> Failure:
    """Write `<rule>.kvt`, `<rule>.workload.json`, `<rule>.repro`; re-read and re-check the .kvt."""
    from kvclaims.trace.dsl import read_kvt
    from kvclaims.trace.write import write_kvt

    stem = out_dir / _slug(f.rule)
    kvt, wfile, repro = (stem.with_suffix(".kvt"), stem.with_suffix(".workload.json"),
                         stem.with_suffix(".repro"))
    buf = io.StringIO()
    write_kvt(f.events, buf, spec=spec)
    kvt.write_text(buf.getvalue())
    wfile.write_text(json.dumps(workload_to_data(f.workload, runtime), indent=2) + "\n")
    command = replay_line(runtime, wfile)
    repro.write_text(command + "\n")
    rechecked, n, report = None, None, f.report
    if f.events:
        back = list(read_kvt(kvt, spec=spec))
        n = len(back)
        report = decide_trace(spec, back, file=str(kvt))  # its findings point into the .kvt
        rechecked = any(x.rule == f.rule and x.status == f.status for x in findings_of(report))
    return Failure(f.rule, f.status, f.message, f.workload, f.events, report, f.found_after,
                   f.shrink_steps, kvt, wfile, command, rechecked, n)


def replay_line(runtime: str, workload_file: Path) -> str:
    """The one-line reproduction command written beside each failure."""
    return (f"kvclaims fuzz --runtime {shlex.quote(runtime)} "
            f"--replay {shlex.quote(str(workload_file))}")


def summary_data(s: FuzzSummary) -> dict[str, Any]:
    """summary.json (checker/kvclaims/schemas/fuzz-summary.schema.json)."""
    return {
        "report_version": SUMMARY_VERSION,
        "runtime": s.runtime, "seed": s.seed, "examples": s.examples,
        "shrink_steps": s.shrink_steps, "seconds": round(s.seconds, 3),
        "failures_by_rule": s.by_rule(),
        "failures": [{
            "rule": f.rule, "status": f.status, "message": f.message,
            "found_after": f.found_after, "events": len(f.events), "kvt_events": f.kvt_events,
            "rechecked": f.rechecked, "kvt": str(f.kvt) if f.kvt else None,
            "workload": str(f.workload_file) if f.workload_file else None,
            "command": f.command,
        } for f in s.failures],
    }


# ---- commands ---------------------------------------------------------------------------------
def _err(message: str) -> int:
    from rich.console import Console

    Console(stderr=True, highlight=False, markup=False, soft_wrap=True).print(f"kvclaims fuzz: {message}")
    return EXIT_USAGE


def fuzz_command(runtime: str, examples: int, seed: int, out: str,
                 max_shrinks: int | None = None) -> int:
    """`kvclaims fuzz`: search, show progress, print a closing summary. Exit 0 if no failure,
    1 if any, 2 on a usage error (unknown or unavailable runtime, bad numbers)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if examples < 1:
        return _err("--examples must be at least 1")
    if max_shrinks is not None and max_shrinks < 0:
        return _err("--max-shrinks must be >= 0")
    try:
        rt = resolve(runtime)
    except RuntimeUnavailable as err:
        return _err(str(err))
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    progress = Progress(TextColumn("[bold]fuzz[/] {task.description}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("{task.fields[found]}"),
                        TimeElapsedColumn(), console=console, transient=True)
    with progress:
        task = progress.add_task(rt.name, total=examples, found="no failure")

        def tick(s: FuzzSummary) -> None:
            if s.examples % 10 == 0 or s.examples == examples:
                progress.update(task, completed=s.examples)

        def hit(f: Failure) -> None:
            progress.console.print(f"[red]failure[/] {f.rule} ({f.status}) after {f.found_after} "
                                   f"examples, shrunk to {len(f.events)} events → {f.kvt}")
            progress.update(task, found=f"{len(found)} failing rule(s)")

        found: list[Failure] = []

        def on_failure(f: Failure) -> None:
            found.append(f)
            hit(f)

        summary = search(rt, examples=examples, seed=seed, out=out, max_shrinks=max_shrinks,
                         on_example=tick, on_failure=on_failure)
    print_summary(summary, Console(highlight=False, soft_wrap=True))
    return EXIT_FAILURES if summary.failures else EXIT_OK


def print_summary(s: FuzzSummary, console: Any) -> None:
    rate = s.examples / s.seconds if s.seconds else 0.0
    console.print(f"{s.runtime}: {s.examples} examples, {s.shrink_steps} shrink steps, "
                  f"{s.seconds:.1f} s ({rate:.0f} examples/s), seed {s.seed}")
    if not s.failures:
        console.print("no failures")
        return
    console.print(f"{len(s.failures)} distinct failure(s) by rule:")
    for f in s.failures:
        check = "" if f.rechecked is None else ("  re-checked" if f.rechecked else
                                                 "  RE-CHECK DIFFERS")
        console.print(f"  {f.rule} ({f.status}): {len(f.events)} events after shrinking, found "
                      f"after {f.found_after} examples{check}")
        console.print(f"    {f.message}")
        if f.kvt is not None:
            console.print(f"    trace {f.kvt}   workload {f.workload_file}")
            console.print(f"    reproduce: {f.command}")


def replay_command(runtime: str, workload_file: str, kvt_out: str | None = None) -> int:
    """Re-run one saved workload through `runtime`, print its report; exit as `kvclaims check`
    would (0 conformant, 1 violation, 3 inconclusive, 2 usage error)."""
    from kvclaims.explain import strips_for_report
    from kvclaims.report.text import console_for, render

    try:
        rt = resolve(runtime)
        wl = workload_from_data(json.loads(Path(workload_file).read_text()))
    except (RuntimeUnavailable, ValueError, OSError) as err:
        return _err(str(err))
    spec = spec_mod.load()
    events, report, bad = evaluate(rt, wl, spec)
    console = console_for()  # the report `kvclaims check` prints: wrapped, never cut
    if report is None:
        console.print(f"{rt.name}: {bad[0][2]}")
        return EXIT_FAILURES
    if kvt_out is not None:
        from kvclaims.trace.write import write_kvt

        with open(kvt_out, "w") as fh:
            write_kvt(events, fh, spec=spec)
    render(report, spec, console, strips_for_report(report, spec))
    return exit_code([report])


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kvclaims.fuzz.driver [fuzz] --runtime R --examples N --seed S --out DIR`
    or `python -m kvclaims.fuzz.driver replay --runtime R WORKLOAD.json [--kvt OUT]`."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m kvclaims.fuzz.driver")
    sub = ap.add_subparsers(dest="cmd")
    f = sub.add_parser("fuzz")
    f.add_argument("--runtime", required=True)
    f.add_argument("--examples", type=int, default=1000)
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", default="fuzz-out")
    f.add_argument("--max-shrinks", type=int, default=None)
    r = sub.add_parser("replay")
    r.add_argument("--runtime", required=True)
    r.add_argument("workload")
    r.add_argument("--kvt", default=None)
    args = ap.parse_args(argv)
    if args.cmd == "replay":
        return replay_command(args.runtime, args.workload, args.kvt)
    if args.cmd == "fuzz":
        return fuzz_command(args.runtime, args.examples, args.seed, args.out, args.max_shrinks)
    ap.print_help()
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
