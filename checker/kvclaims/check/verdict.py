"""Verdict data: findings, per-claim and per-request results, the trace report (docs/model.md §6-§7).

Pure data, rendered last by kvclaims.report. Three-valued: a rule is pass, violation, unknown or
not exercised for a claim; a trace is conformant, violation or inconclusive (input_error when the
input could not be read to its end). Three levels are kept apart (docs/report-format.md): the
rules' verdict (`Report.verdict`), each gate's status (`Gate.status`), and the overall result
(`Report.result`, what the exit code says), which every view shows first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

PASS = "pass"
VIOLATION = "violation"
UNKNOWN = "unknown"
NOT_EXERCISED = "not_exercised"

CONFORMANT = "conformant"
INCONCLUSIVE = "inconclusive"
INPUT_ERROR = "input_error"

# A gate's status: PASS, UNKNOWN (passed on the written order of a partly ordered trace only) or
# GATE_FAIL; the overall result of a trace whose rules do not fail but whose gate does.
GATE_FAIL = "fail"
GATE_FAILED = "gate_failed"

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
    # The gate read the events in the written order of a partly ordered trace: a pass there is
    # not a pass of every admissible order, so it is unknown (a miss is a miss in that order).
    written_order_only: bool = False

    @property
    def status(self) -> str:
        if self.missing or self.violated:
            return GATE_FAIL
        return UNKNOWN if self.written_order_only else PASS

    @property
    def passed(self) -> bool:
        return self.status == PASS


@dataclass(frozen=True, slots=True)
class InputProblem:
    # 1-based; None when the input could not be opened at all (there is no line to point at)
    line: int | None
    column: int | None
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

    @property
    def result(self) -> str:
        """The overall result, what the exit code says: input_error, violation, gate_failed,
        inconclusive or conformant (the first that applies)."""
        if self.verdict in (INPUT_ERROR, VIOLATION):
            return self.verdict
        statuses = {g.status for g in self.gates}
        if GATE_FAIL in statuses:
            return GATE_FAILED
        if self.verdict == INCONCLUSIVE or UNKNOWN in statuses:
            return INCONCLUSIVE
        return CONFORMANT

    def first_violation(self) -> Finding | None:
        for f in self.findings:
            if f.status == VIOLATION:
                return f
        return None


def claim_verdict(rules: dict[str, str], floor: str = NOT_EXERCISED) -> str:
    """A claim's verdict from its rule statuses (the worst wins; `floor` is a status the claim
    has whatever its rules say, e.g. UNKNOWN for an accepted claim without a mode)."""
    worst = floor
    for st in rules.values():
        worst = worse(worst, st)
    return VIOLATION if worst == VIOLATION else INCONCLUSIVE if worst == UNKNOWN else CONFORMANT


def levels_agree(claims: tuple[ClaimResult, ...], findings: tuple[Finding, ...], verdict: str,
                 possible: frozenset[tuple[str, str | None]] | None = None,
                 ) -> tuple[ClaimResult, ...]:
    """Claims whose rule statuses and verdicts agree with the trace's decided findings.

    The per-claim tables of a partly ordered trace come from one chosen order (docs/model.md §6 over
    every admissible order, docs/partial.md); a status that order shows but the decided findings
    do not is a finding some order avoids: unknown at every level. A (rule, claim) with a
    decided finding takes that finding's status. Unless the trace is conformant (then no order
    fails anything), a pass is unknown when some order could fail that rule for that claim:
    `possible` names those pairs (None: every pair the claim exercises).
    """
    decided: dict[tuple[str, str | None], str] = {}
    for f in findings:
        key = (f.rule, f.claim_id)
        decided[key] = worse(decided.get(key, NOT_EXERCISED), f.status)
    out = []
    for c in claims:
        rules = {}
        for rid, st in c.rules.items():
            key = (rid, c.claim_id)
            if key in decided:
                st = decided[key]
            elif st in (VIOLATION, UNKNOWN):
                st = UNKNOWN
            elif verdict != CONFORMANT and st == PASS and (possible is None or key in possible):
                st = UNKNOWN
            rules[rid] = st
        floor = UNKNOWN if c.verdict == INCONCLUSIVE and c.mode is None else NOT_EXERCISED
        verdict_c = claim_verdict(rules, floor)
        if rules != c.rules or verdict_c != c.verdict:
            c = replace(c, rules=rules, verdict=verdict_c)
        out.append(c)
    return tuple(out)


def claims_carry_findings(claims: tuple[ClaimResult, ...], findings: tuple[Finding, ...],
                          ) -> tuple[ClaimResult, ...]:
    """Claims whose rule statuses include every finding that names them: a finding about a claim
    (e.g. a refusal blaming it before it was accepted) is that claim's status too, so no level
    reads kinder than another. Only the claims findings name are touched."""
    named: dict[str, dict[str, str]] = {}
    for f in findings:
        if f.claim_id is not None:
            rules = named.setdefault(f.claim_id, {})
            rules[f.rule] = worse(rules.get(f.rule, NOT_EXERCISED), f.status)
    if not named:
        return claims
    out = []
    for c in claims:
        extra = named.get(c.claim_id)
        if extra:
            rules = dict(c.rules)
            for rid, st in extra.items():
                rules[rid] = worse(rules.get(rid, NOT_EXERCISED), st)
            floor = UNKNOWN if c.verdict == INCONCLUSIVE else NOT_EXERCISED
            verdict_c = claim_verdict(rules, floor)
            if rules != c.rules or verdict_c != c.verdict:
                c = replace(c, rules=rules, verdict=verdict_c)
        out.append(c)
    return tuple(out)
