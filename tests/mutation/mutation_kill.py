"""Deciding mutants and tallying the kill rate per rule and mode (issue 15 item 3).

A mutant is killed when the public decision path (kvclaims.run.check_path, engine auto) gives it
a non-conformant verdict: violation or inconclusive. An input error means the operator wrote an
invalid trace (an operator bug, reported as such, never counted as a kill). A mutant that
survives is either a checker bug or an operator that does not truly break its rule; a survivor
may be claimed equivalent only with a reason in EQUIVALENT (mutation_equivalent), at most
MAX_EQUIVALENT of a rule's mutants; a checker bug already reported is a known gap
(mutation_known). Kill rates count known gaps as survivors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from kvclaims.check.verdict import INCONCLUSIVE, INPUT_ERROR, VIOLATION
from mutation_equivalent import EQUIVALENT
from mutation_known import known_gap
from mutation_ops import Mutant
from mutation_seeds import Decider
from mutation_view import SPEC

KILLED = (VIOLATION, INCONCLUSIVE)
MAX_EQUIVALENT = 0.02


@dataclass(frozen=True, slots=True)
class Outcome:
    mutant: Mutant
    verdict: str
    named: bool  # the targeted rule is among the findings
    rules: tuple[str, ...]  # rules of the findings
    error: str | None = None

    @property
    def killed(self) -> bool:
        return self.verdict in KILLED

    @property
    def equivalent(self) -> bool:
        return not self.killed and self.mutant.id in EQUIVALENT

    @property
    def known(self) -> bool:
        """A survivor of a reported checker gap (mutation_known)."""
        return not self.killed and not self.equivalent and known_gap(self.mutant) is not None


def decide(decider: Decider, m: Mutant) -> Outcome:
    rep = decider.decide(m.events, m.skews)
    rules = tuple(sorted({f.rule for f in rep.findings}))
    err = rep.error.message if rep.error is not None else None
    return Outcome(m, rep.verdict, m.rule in rules, rules, err)


@dataclass
class Row:
    total: int = 0
    killed: int = 0
    named: int = 0
    equivalent: int = 0
    known: int = 0  # survivors of reported checker gaps (mutation_known)
    survivors: list[Outcome] = field(default_factory=list)
    invalid: list[Outcome] = field(default_factory=list)

    def add(self, o: Outcome) -> None:
        self.total += 1
        if o.verdict == INPUT_ERROR:
            self.invalid.append(o)
        elif o.killed:
            self.killed += 1
            self.named += o.named
        elif o.equivalent:
            self.equivalent += 1
        elif o.known:
            self.known += 1
        else:
            self.survivors.append(o)

    @property
    def rate(self) -> float:
        judged = self.total - self.equivalent
        return self.killed / judged if judged else 1.0


def tally(outcomes: Iterable[Outcome]) -> dict[tuple[str, str], Row]:
    rows: dict[tuple[str, str], Row] = {}
    for o in outcomes:
        rows.setdefault((o.mutant.rule, o.mutant.mode), Row()).add(o)
    return rows


def by_rule(rows: dict[tuple[str, str], Row]) -> dict[str, Row]:
    out: dict[str, Row] = {}
    for (rule, _), r in rows.items():
        t = out.setdefault(rule, Row())
        t.total += r.total
        t.killed += r.killed
        t.named += r.named
        t.equivalent += r.equivalent
        t.known += r.known
        t.survivors += r.survivors
        t.invalid += r.invalid
    return out


def equivalent_within_limit(rows: dict[str, Row]) -> list[str]:
    """Rules whose equivalent-claimed mutants exceed MAX_EQUIVALENT of their mutants."""
    return [rule for rule, r in rows.items() if r.equivalent > MAX_EQUIVALENT * r.total]


def table(rows: dict[tuple[str, str], Row]) -> str:
    lines = ["| rule | mode | mutants | killed | kill rate | targeted rule named | "
             "equivalent | known gap | other survivors | invalid |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = {rule: k for k, rule in enumerate(SPEC.rules)}
    modes = {mode: k for k, mode in enumerate(SPEC.modes)}
    for (rule, mode), r in sorted(rows.items(), key=lambda x: (
            order.get(x[0][0], len(order)), modes.get(x[0][1], len(modes)), x[0][1])):
        lines.append(f"| {rule} | {mode} | {r.total} | {r.killed} | {100 * r.rate:.1f}% | "
                     f"{r.named} | {r.equivalent} | {r.known} | {len(r.survivors)} | "
                     f"{len(r.invalid)} |")
    return "\n".join(lines)

