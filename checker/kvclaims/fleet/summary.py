"""The closing summary of a check of several files (docs/fleet.md "Summary").

Counts what the decided reports say; it decides nothing. Text: one line of files, results,
findings, events and time. JSON: one extra object after the per-file ones, told apart by
`"kind": "summary"`, with the same `report_version` as the per-file reports. `seconds` is the
only field that differs between two runs of the same check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kvclaims.check.verdict import (
    CONFORMANT,
    GATE_FAILED,
    INCONCLUSIVE,
    INPUT_ERROR,
    UNKNOWN,
    VIOLATION,
    Report,
)

SUMMARY_KIND = "summary"
# The overall results in the order the summary lists them (the exit code's order, then pass).
RESULTS = (INPUT_ERROR, VIOLATION, GATE_FAILED, INCONCLUSIVE, CONFORMANT)


@dataclass(frozen=True)
class Summary:
    files: int
    results: dict[str, int]  # overall result -> files with it (every key of RESULTS)
    events: int
    violations: int  # violation findings listed, over every file
    unknowns: int  # unknown findings listed
    exit_code: int
    seconds: float


def summarize(reports: Sequence[Report], seconds: float) -> Summary:
    from kvclaims.run import exit_code

    results = {r: 0 for r in RESULTS}
    for rep in reports:
        results[rep.result] = results.get(rep.result, 0) + 1
    statuses = [f.status for rep in reports for f in rep.findings]
    return Summary(files=len(reports), results=results,
                   events=sum(rep.events for rep in reports),
                   violations=statuses.count(VIOLATION), unknowns=statuses.count(UNKNOWN),
                   exit_code=exit_code(reports), seconds=seconds)


def text_line(s: Summary) -> str:
    """e.g. `checked 3 files: 1 violation, 2 conformant; 4 findings (1 violation, 3 unknown);
    1,234 events in 0.52 s`."""
    results = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in s.results.items() if n)
    files = "file" if s.files == 1 else "files"
    findings = s.violations + s.unknowns
    return (f"checked {s.files} {files}: {results or 'none'}; {findings} "
            f"finding{'' if findings == 1 else 's'} ({s.violations} violation"
            f"{'' if s.violations == 1 else 's'}, {s.unknowns} unknown); {s.events:,} events "
            f"in {s.seconds:.2f} s")


def to_dict(s: Summary) -> dict[str, Any]:
    from kvclaims.report.json import REPORT_VERSION

    return {"kind": SUMMARY_KIND, "report_version": REPORT_VERSION, "files": s.files,
            "results": dict(s.results), "events": s.events,
            "findings": {VIOLATION: s.violations, UNKNOWN: s.unknowns},
            "exit_code": s.exit_code, "seconds": round(s.seconds, 3)}
