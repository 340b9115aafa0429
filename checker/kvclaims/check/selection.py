"""Which rules a verdict counts: `--select` / `--ignore` (and their configuration keys), applied
to a decided report (docs/cli.md "Leaving rules out"; the rules are docs/model.md §6).

Decides, on data only: which rule ids a list of names means (the names the report prints,
e.g. `no-silent-loss`, or full ids, `R-no-silent-loss`, resolved from spec/rules.toml), and what
the report of a trace says once rules are left out. Fail-closed by construction:

- a left-out rule's *violations* are not counted: they leave the findings and the verdict, and
  the report says how many there were, of which rules, and who left them out;
- a left-out rule's *unknowns* stay: leaving a rule out supplies no evidence, so a finding that
  says the evidence is missing (a stream gap, an unknown event) keeps the trace inconclusive;
- so a trace whose only violations are of left-out rules is conformant *on the rules counted*,
  and every view prints that qualification beside the verdict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from kvclaims.check.verdict import (
    CONFORMANT,
    INCONCLUSIVE,
    NOT_EXERCISED,
    UNKNOWN,
    VIOLATION,
    Report,
    claim_verdict,
)
from kvclaims.spec import Spec


@dataclass(frozen=True)
class RuleSelection:
    """The rules left out of a verdict (full ids, in the spec's order) and who left them out:
    `--select`, `--ignore`, or a configuration file's path."""

    left_out: tuple[str, ...]
    by: str


def printed_name(spec: Spec, rule_id: str) -> str:
    """The name the text report prints for a rule: its id without the prefix most rule ids
    share (read from the spec: the family with the most members)."""
    family = _family_prefix(spec)
    return rule_id.removeprefix(family) if family else rule_id


def _family_prefix(spec: Spec) -> str:
    heads = Counter(rid.split("-", 1)[0] for rid in spec.rules if "-" in rid)
    if not heads:
        return ""
    head, n = heads.most_common(1)[0]
    return head + "-" if n > 1 else ""


def rule_names(spec: Spec) -> dict[str, str]:
    """Every accepted spelling of a rule (its printed name and its full id) → its full id."""
    names = {}
    for rid in spec.rules:
        names[printed_name(spec, rid)] = rid
        names[rid] = rid
    return names


def resolve(spec: Spec, names: Iterable[str]) -> tuple[str, ...]:
    """The full rule ids `names` mean, in the spec's order; ValueError naming the first unknown
    one and every valid name."""
    known = rule_names(spec)
    ids = set()
    for name in names:
        if name not in known:
            choices = ", ".join(printed_name(spec, rid) for rid in spec.rules)
            raise ValueError(f"{name!r} is not a rule; one of {choices} (or its full id, "
                             f"e.g. {next(iter(spec.rules))})")
        ids.add(known[name])
    return tuple(rid for rid in spec.rules if rid in ids)


def selection(spec: Spec, select: Iterable[str], ignore: Iterable[str], by: str,
              ) -> RuleSelection | None:
    """The rules left out by `select` (full ids; empty: every rule) and `ignore` (full ids);
    None when every rule is counted."""
    chosen = set(select) or set(spec.rules)
    chosen -= set(ignore)
    left_out = tuple(rid for rid in spec.rules if rid not in chosen)
    return RuleSelection(left_out, by) if left_out else None


def apply(report: Report, sel: RuleSelection | None) -> Report:
    """`report` counting only the selected rules (see the module docstring); the selection and
    what it took out are recorded in `extra["rules_left_out"]` for every view to print."""
    if sel is None:
        return report
    out = set(sel.left_out)
    kept, dropped = [], Counter[str]()
    keep_at: list[int] = []
    for i, f in enumerate(report.findings):
        if f.rule in out and f.status == VIOLATION:
            dropped[f.rule] += 1
            continue
        kept.append(f)
        keep_at.append(i)
    counts = dict(report.finding_counts)
    not_counted = {}
    for rid in sel.left_out:
        if dropped[rid] and not any(f.rule == rid for f in kept):
            not_counted[rid] = counts.pop(rid, dropped[rid])
        elif dropped[rid]:
            not_counted[rid] = dropped[rid]
    claims = []
    for c in report.claims:
        rules = {rid: st for rid, st in c.rules.items() if rid not in out or st == UNKNOWN}
        if rules != c.rules:
            floor = UNKNOWN if c.verdict == INCONCLUSIVE and c.mode is None else NOT_EXERCISED
            c = replace(c, rules=rules, verdict=claim_verdict(rules, floor))
        claims.append(c)
    verdict = report.verdict
    if verdict == VIOLATION and not any(f.status == VIOLATION for f in kept):
        undecided = any(f.status == UNKNOWN for f in kept) or any(
            c.verdict == INCONCLUSIVE for c in claims)
        verdict = INCONCLUSIVE if undecided else CONFORMANT
    extra = dict(report.extra)
    stream = extra.get("stream")
    if stream is not None and "locations" in stream:  # one location per finding, kept aligned
        extra["stream"] = {**stream, "locations": [stream["locations"][i] for i in keep_at]}
    extra["rules_left_out"] = {"rules": list(sel.left_out), "by": sel.by,
                               "violations_not_counted": not_counted}
    return replace(report, verdict=verdict, findings=tuple(kept), finding_counts=counts,
                   claims=tuple(claims), extra=extra)


def summary(report: Report, spec: Spec) -> str | None:
    """One line saying which rules the verdict left out, by whom, and what was not counted
    (every view prints it beside the verdict); None when every rule was counted."""
    left = report.extra.get("rules_left_out")
    if not left:
        return None
    names = ", ".join(printed_name(spec, rid) for rid in left["rules"])
    not_counted = left["violations_not_counted"]
    if not_counted:
        what = "; not counted: " + ", ".join(
            f"{printed_name(spec, rid)} ×{n}" for rid, n in not_counted.items())
    else:
        what = "; no violation of them was found"
    return (f"rules left out by {left['by']}: {names}{what} (the verdict is on the other rules"
            f" only; unknowns of left-out rules still count)")
