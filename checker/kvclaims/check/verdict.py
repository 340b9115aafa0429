"""Verdict data: findings, per-claim and per-request results, the trace report (MODEL.md §6-§7).

Pure data, rendered last by kvclaims.report. Three-valued: a rule is pass, violation, unknown or
not exercised for a claim; a trace is conformant, violation or inconclusive (input_error when the
input could not be read to its end).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASS = "pass"
VIOLATION = "violation"
UNKNOWN = "unknown"
NOT_EXERCISED = "not_exercised"

CONFORMANT = "conformant"
INCONCLUSIVE = "inconclusive"
INPUT_ERROR = "input_error"

# Severity order used to combine statuses: the worst wins.
_RANK = {NOT_EXERCISED: 0, PASS: 1, UNKNOWN: 2, VIOLATION: 3}


def worse(a: str, b: str) -> str:
    return a if _RANK[a] >= _RANK[b] else b


@dataclass(frozen=True, slots=True)
class Finding:
    status: str  # violation | unknown
    rule: str
    message: str
    line: int
    column: int
    event_index: int
    event: str
    claim_id: str | None = None
    request_id: str | None = None
    state_before: str | None = None
    quote: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimResult:
    claim_id: str
    mode: str | None
    mode_spelling: str | None
    final_state: str
    verdict: str
    rules: dict[str, str]
    victims: int
    harmed_positions: tuple[int, ...]
    leading_blocks_survived: int | None
    surviving_blocks: int | None
    required_blocks: int | None
    materialized: bool | None
    lost_after_release: int
    protected_blocks: int


@dataclass(frozen=True, slots=True)
class RequestResult:
    request_id: str
    outcome: str  # served | refused | deferred | unknown
    blocking_claim_ids: tuple[str, ...]
    capacity_shortfall_blocks: int | None
    free_blocks_before_allocate: int | None
    feasibility: str | None
    future_reuse_admitted: bool | None
    allocated_blocks: int


@dataclass(frozen=True, slots=True)
class PrefixResult:
    prefix_id: str
    blocks: int
    victims: int
    cached_victims: int
    lost_positions: tuple[int, ...]
    leading_blocks_survived: int
    remaining_blocks: int


@dataclass(frozen=True, slots=True)
class Gate:
    bundle: str
    requirements: tuple[str, ...]
    missing: tuple[str, ...]
    violated: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.missing and not self.violated


@dataclass(frozen=True, slots=True)
class InputProblem:
    line: int
    column: int
    message: str
    unknown: bool = False


@dataclass(frozen=True, slots=True)
class Report:
    file: str
    verdict: str
    events: int
    findings: tuple[Finding, ...]
    finding_counts: dict[str, int]
    claims: tuple[ClaimResult, ...]
    requests: tuple[RequestResult, ...]
    prefixes: tuple[PrefixResult, ...]
    cached_resident_victims: int
    resident_preserved: bool
    protected_resident_blocks: int
    gates: tuple[Gate, ...] = ()
    error: InputProblem | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def first_violation(self) -> Finding | None:
        for f in self.findings:
            if f.status == VIOLATION:
                return f
        return None
