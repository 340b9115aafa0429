"""Survivors that are checker gaps, reported to the lead (issue 15 item 3), not equivalent mutants.

MODEL.md §6 and spec/rules.toml say these mutants are non-conformant and the checker passes them;
the checker is being changed elsewhere (check/replay.py, check/z3model.py), so the suite records
each class here with the reason instead of failing CI. A class is a rule, an operator and a mode,
optionally narrowed to exact mutant ids. The CI sample fails on a survivor outside every class,
and on a class none of whose sampled mutants survives any more (the checker was fixed: remove the
entry). bench/mutation.md repeats each reason and the kill rates count these mutants as survivors.
"""

from __future__ import annotations

from dataclasses import dataclass

from mutation_ops import Mutant
from mutation_view import SPEC, R


def _mode(name: str) -> str:
    if name not in SPEC.modes:
        raise KeyError(f"spec/modes.toml lacks mode {name}")
    return name


@dataclass(frozen=True, slots=True)
class Gap:
    rule: str
    operators: frozenset[str]
    mode: str
    reason: str
    ids: frozenset[str] | None = None  # None: every mutant of the class

    def covers(self, m: Mutant) -> bool:
        return (m.rule == self.rule and m.operator in self.operators and m.mode == self.mode
                and (self.ids is None or m.id in self.ids))


# The seeds whose best_effort claim silently lost its predicate under pressure, and the edits.
_SILENT_SEEDS = ("micro:resident_reserve/two", "micro:demote_on_conflict/two",
                 "micro:demote_on_conflict/two@best_effort", "micro:resident_reserve/two+batched",
                 "micro:demote_on_conflict/two+batched")
_STALLED = "stalled_behind_yielding"
_YIELD_EDITS = ("refusal of 10 blocks while soft claims hold 1",
                "deferral of 10 blocks while soft claims hold 1, then refusal")
_ARRIVAL = "arrival_left_waiting"
_ARRIVAL_EDITS = ("a request of 10 blocks arrives while claims hold 1; no decision",)
_SILENT_REASON = (
    "A best_effort claim that silently lost its predicate (allowed in its mode) still holds "
    "blocks and is still under responsibility, but the checker no longer counts its blocks "
    "(it skips silently lost claims): R-yield's unnamed form passes a refusal that only that "
    "claim's blocks stand in the way of, and R-progress's unreported deferral does not start "
    "for a request that arrives needing them and is never decided.")


def _ids(rule: str, operator: str, edits: tuple[str, ...]) -> frozenset[str]:
    return frozenset(f"{rule}|{operator}|{seed}|{edit}" for seed in _SILENT_SEEDS
                     for edit in edits)


GAPS: tuple[Gap, ...] = (
    Gap(R.release_order,
        frozenset({"release_moved_after_loss", "release_after_silent_loss",
                   "release_unordered_with_loss"}),
        _mode("best_effort"),
        "A best_effort claim's release written after its predicate-breaking loss is not "
        "reported: the replay and the Z3 engine report a late release only when the loss was "
        "a finding of the claim's bundle (docs/checking.md), while MODEL §6 R-release-order and "
        "spec/rules.toml say the late release is itself reported whatever the claim's mode."),
    Gap(R.yield_, frozenset({_STALLED}), _mode("best_effort"), _SILENT_REASON,
        _ids(R.yield_, _STALLED, _YIELD_EDITS)),
    Gap(R.progress, frozenset({_ARRIVAL}), _mode("best_effort"), _SILENT_REASON,
        _ids(R.progress, _ARRIVAL, _ARRIVAL_EDITS)),
)


def known_gap(m: Mutant) -> Gap | None:
    return next((g for g in GAPS if g.covers(m)), None)
