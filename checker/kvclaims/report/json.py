"""JSON report, version 2 (documented in docs/report-format.md): one object per input file.

Adapts a decided :class:`Report` to the stable machine format other tools parse; it decides
nothing. Field names are part of the contract: change them only with a new `report_version`.
Version 2: `result` (the overall result, what the exit code says) first; `gates` always a list;
an input error's report holds the error and the findings on the part read (`scope`), no
reconstructed outcome.
"""

from __future__ import annotations

from typing import Any

import msgspec

from kvclaims.check.verdict import Report
from kvclaims.report.location import event_number, location
from kvclaims.report.order import order_summary

REPORT_VERSION = 2


def to_dict(report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "result": report.result,
        "file": report.file,
        "verdict": report.verdict,
        "gates": [{"bundle": g.bundle, "status": g.status, "passed": g.passed,
                   "missing": list(g.missing), "violated": list(g.violated),
                   "written_order_only": g.written_order_only} for g in report.gates],
        "error": None if report.error is None else {
            "line": report.error.line, "column": report.error.column,
            "message": report.error.message},
        "scope": "whole_trace" if report.error is None else "part_read",
        "events": report.events,
        "findings": [
            {
                "status": f.status,
                "rule": f.rule,
                "claim_id": f.claim_id,
                "request_id": f.request_id,
                "line": f.line,
                "column": f.column,
                "event_index": f.event_index,
                # the one spelling every view prints (kvclaims.report.location)
                "event_number": event_number(f.event_index),
                "location": location(report.file, f.line, f.column, f.event_index),
                "event": f.event,
                "state_before": f.state_before,
                "message": f.message,
            }
            for f in report.findings
        ],
        "finding_counts": report.finding_counts,
        # The rules --select/--ignore (or a configuration file) left out of the verdict, by
        # whom, and the violations of them not counted (kvclaims.check.selection); null: none.
        "rules_left_out": report.extra.get("rules_left_out"),
        "engine": report.extra.get("engine", "replay"),
        "order": order_summary(report.extra),
        "claims": [
            {
                "claim_id": c.claim_id,
                "mode": c.mode,
                "mode_spelling": c.mode_spelling,
                "final_state": c.final_state,
                "verdict": c.verdict,
                "rules": c.rules,
                "victims": c.victims,
                "harmed_positions": list(c.harmed_positions),
                "leading_blocks_survived": c.leading_blocks_survived,
                "surviving_blocks": c.surviving_blocks,
                "required_blocks": c.required_blocks,
                "materialized": c.materialized,
                "lost_after_release": c.lost_after_release,
                "protected_blocks": c.protected_blocks,
            }
            for c in report.claims
        ],
        "requests": [
            {
                "request_id": r.request_id,
                "outcome": r.outcome,
                "blocking_claim_ids": list(r.blocking_claim_ids),
                "capacity_shortfall_blocks": r.capacity_shortfall_blocks,
                "free_blocks_before_allocate": r.free_blocks_before_allocate,
                "feasibility": r.feasibility,
                "future_reuse_admitted": r.future_reuse_admitted,
                "allocated_blocks": r.allocated_blocks,
            }
            for r in report.requests
        ],
        "prefixes": [
            {
                "prefix_id": p.prefix_id,
                "blocks": p.blocks,
                "victims": p.victims,
                "cached_victims": p.cached_victims,
                "lost_positions": list(p.lost_positions),
                "leading_blocks_survived": p.leading_blocks_survived,
                "remaining_blocks": p.remaining_blocks,
            }
            for p in report.prefixes
        ],
        "cached_resident_victims": report.cached_resident_victims,
        "resident_preserved": report.resident_preserved,
        "protected_resident_blocks": report.protected_resident_blocks,
    }
    if report.error is not None:
        # No reconstructed outcome from a trace that was not read to its end.
        for key in ("order", "claims", "requests", "prefixes", "cached_resident_victims",
                    "resident_preserved", "protected_resident_blocks"):
            del out[key]
    stream = report.extra.get("stream")
    if stream is not None:  # a KV event stream (kvclaims.kvstream): where each finding is
        for f, where in zip(out["findings"], stream["locations"]):
            f.update(where)
        out["stream"] = {k: v for k, v in stream.items() if k != "locations"}
    return out


def render(report: Report) -> str:
    return msgspec.json.encode(to_dict(report)).decode()
