"""kvclaims as a pytest plug-in: check traces and fuzz runtimes inside a user's test suite.

Registered through the ``pytest11`` entry point (``kvclaims = "kvclaims.pytest_plugin"``), or with
``pytest_plugins = ["kvclaims.pytest_plugin"]`` in a conftest. It adapts the checker and the fuzz
driver to pytest; it decides nothing itself: the verdict is kvclaims.run's, the one `check` shows.

Fixtures:

- ``kvclaims_check(trace, expect="conformant", options=None)`` — check a trace file (``.kvt`` or
  JSON Lines, a path) or a list of :class:`~kvclaims.trace.model.Event` (or a PartialTrace) with
  the options of `kvclaims check` (a kvclaims.run.Options: engine, skew, gates); if the overall
  result (``conformant``, ``violation``, ``gate_failed``, ``inconclusive``, ``input_error``) is
  not `expect`, fail
  the test with the text report: each finding located (file:line:column, event index), the quoted
  line, the claim's state before, and the rule's sentence. Returns the Report.
- ``kvclaims_fuzz(runtime, examples=…, seed=…)`` — run a `kvclaims fuzz` style search (output
  under the test's tmp_path); fail with the minimal failing trace's report if the runtime breaks a
  rule. Returns the FuzzSummary.

The same two are plain functions, :func:`check_trace` and :func:`fuzz_runtime`, for use without
fixtures. See docs/fuzz.md.

pytest loads this module at the start of every run in an environment where kvclaims is installed,
so it imports nothing of kvclaims (nor rich, msgspec, z3) until a fixture or function is used:
about 2 ms of start-up when unused (bench/startup.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from kvclaims.check.verdict import Report
    from kvclaims.trace.model import Event

__all__ = ["check_trace", "fuzz_runtime", "kvclaims_check", "kvclaims_fuzz", "render_report"]


def render_report(report: Report) -> str:
    """The `kvclaims check` text report as plain text (no colour), for failure messages: lines
    are written whole, as `kvclaims check` writes them off a terminal (pytest shows the message
    as it is; a width here would fold a line at a place that depends on the file's path)."""
    import io

    from rich.console import Console

    from kvclaims import spec as spec_mod
    from kvclaims.explain import strips_for_report
    from kvclaims.report.text import UNWRAPPED, render

    buf = io.StringIO()
    console = Console(file=buf, width=UNWRAPPED, color_system=None, highlight=False, soft_wrap=True,
                      force_terminal=False)
    spec = spec_mod.load()
    render(report, spec, console, strips_for_report(report, spec))
    return buf.getvalue()


def check_trace(trace: str | os.PathLike[str] | Iterable[Event], expect: str | None = None,
                *, name: str | None = None, options: Any = None) -> Report:
    """Check `trace` (a path, events, or a PartialTrace) as `kvclaims check` does with
    `options` (a kvclaims.run.Options); fail the running test unless the overall result is
    `expect` (``conformant``, the default, ``violation``, ``gate_failed``, ``inconclusive`` or
    ``input_error``)."""
    from kvclaims import spec as spec_mod
    from kvclaims.check.verdict import CONFORMANT
    from kvclaims.run import Options, decide_path, decide_trace
    from kvclaims.trace.model import PartialTrace

    expect = CONFORMANT if expect is None else expect
    spec = spec_mod.load()
    options = Options() if options is None else options
    if isinstance(trace, (str, os.PathLike)):
        report = decide_path(os.fspath(trace), spec, options)
    else:
        events = trace if isinstance(trace, PartialTrace) else list(trace)
        report = decide_trace(spec, events, options, name or "<events>")
    if report.result != expect:
        pytest.fail(f"kvclaims: expected {expect}, got {report.result}\n"
                    + render_report(report), pytrace=False)
    return report


def fuzz_runtime(runtime: str, *, examples: int = 200, seed: int = 0,
                 out: str | os.PathLike[str] | None = None, max_shrinks: int | None = None,
                 workloads: Any = None, expect_rule: str | None = None) -> Any:
    """Search `examples` workloads of `runtime` (``micro:…``, ``py:module:factory``, …).

    Without `expect_rule`, fail the test if any rule fails, showing the minimal trace's report and
    where its `.kvt`, workload and reproduction command were written (under `out`). With
    `expect_rule`, fail unless that rule is found (for testing that a known fault is caught).
    Returns the :class:`~kvclaims.fuzz.driver.FuzzSummary`."""
    from pathlib import Path

    from kvclaims.fuzz.driver import search
    from kvclaims.runtime.interface import RuntimeUnavailable

    try:
        summary = search(runtime, examples=examples, seed=seed,
                         out=None if out is None else Path(out), max_shrinks=max_shrinks,
                         workloads=workloads, max_failures=1 if expect_rule else None)
    except RuntimeUnavailable as err:
        pytest.fail(f"kvclaims fuzz: {err}", pytrace=False)
    if expect_rule is not None:
        if not any(f.rule == expect_rule for f in summary.failures):
            got = ", ".join(f.rule for f in summary.failures) or "no failure"
            pytest.fail(f"kvclaims fuzz {runtime}: expected {expect_rule} within {examples} "
                        f"examples (seed {seed}), got {got}", pytrace=False)
        return summary
    if summary.failures:
        parts = [(f"kvclaims fuzz {runtime}: {len(summary.failures)} failing rule(s) in "
                  f"{summary.examples} examples (seed {seed})")]
        for f in summary.failures:
            parts.append(f"--- {f.rule} ({f.status}), minimal trace of {len(f.events)} events")
            if f.report is not None:
                parts.append(render_report(f.report))
            else:
                parts.append(f.message)
            if f.kvt is not None:
                parts.append(f"trace: {f.kvt}\nworkload: {f.workload_file}\n"
                             f"reproduce: {f.command}")
        pytest.fail("\n".join(parts), pytrace=False)
    return summary


@pytest.fixture(scope="session")  # stateless: usable inside @given tests
def kvclaims_check() -> Callable[..., Report]:
    """``kvclaims_check(trace, expect="conformant")``: see :func:`check_trace`."""
    return check_trace


@pytest.fixture
def kvclaims_fuzz(tmp_path: Path) -> Callable[..., Any]:
    """``kvclaims_fuzz(runtime, examples=200, seed=0, …)``: see :func:`fuzz_runtime`; failures
    are written under the test's tmp_path unless `out` is given."""

    def run(runtime: str, **kw: Any) -> Any:
        kw.setdefault("out", tmp_path / "kvclaims-fuzz")
        return fuzz_runtime(runtime, **kw)

    return run
