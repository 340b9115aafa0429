"""The MicroRuntime's arbitration policies and fault switches, as data (docs/model.md §6, papers P1.5).

A policy fixes how the runtime treats claims under active pressure; the protection mode spelling it
advertises in `resident_claim_accepted` decides which rule bundle the checker applies. A fault
switch makes one policy misbehave in one named way; each names the rule (spec/rules.toml) it
breaks. Rule ids are looked up in the spec at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kvclaims import spec as spec_mod

NATIVE = "native"
SOFT_PRIORITY = "soft_priority"
WRITE_NO_ADMIT = "write_no_admit"
HARD_EXCLUDE = "hard_exclude"
RESIDENT_RESERVE = "resident_reserve"
DEMOTE_ON_CONFLICT = "demote_on_conflict"
EXPIRING = "expiring"
OFFLOADABLE = "offloadable"
POLICIES = (NATIVE, SOFT_PRIORITY, WRITE_NO_ADMIT, HARD_EXCLUDE, RESIDENT_RESERVE,
            DEMOTE_ON_CONFLICT, EXPIRING, OFFLOADABLE)

# Policies with no claim interface: they never accept a claim (L1, L2).
CLAIMLESS = frozenset({NATIVE, WRITE_NO_ADMIT})
# Policies that exclude protected blocks from the free queue and refuse/defer with attribution.
EXCLUDING = frozenset({HARD_EXCLUDE, RESIDENT_RESERVE, DEMOTE_ON_CONFLICT, EXPIRING})
# Excluding policies that may defer (docs/model.md §6 R-progress): they declare their deferral bound,
# `defer_attempts` steps, on the trace's first event (demote_on_conflict never defers).
DEFERRING = EXCLUDING - {DEMOTE_ON_CONFLICT}

# The protection_mode spelling each claim-accepting policy advertises (spec/modes.toml aliases).
MODE_SPELLING = {
    SOFT_PRIORITY: "soft_priority",
    HARD_EXCLUDE: "hard_exclude",
    RESIDENT_RESERVE: "reserve",
    DEMOTE_ON_CONFLICT: "demotable",
    EXPIRING: "expiring",
    OFFLOADABLE: "offloadable",
}
BEST_EFFORT_SPELLING = "none"

TAIL_FIRST = "tail_first"  # vLLM: a finished request's blocks are freed tail first
HEAD_FIRST = "head_first"  # a runtime freeing in allocation order (used for L6)
FREE_ORDERS = (TAIL_FIRST, HEAD_FIRST)


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    defer_attempts: int = 0  # excluding policies: defer this many times before refusing
    reserve_blocks: int | None = None  # resident_reserve: active headroom kept (None: largest)
    declared_mode: str | None = None  # a lowering: the mode spelling advertised instead
    free_order: str = TAIL_FIRST

    def __post_init__(self) -> None:
        if self.name not in POLICIES:
            raise ValueError(f"unknown policy {self.name!r}; one of {', '.join(POLICIES)}")
        if self.free_order not in FREE_ORDERS:
            raise ValueError(f"unknown free order {self.free_order!r}")
        if self.defer_attempts < 0:
            raise ValueError("defer_attempts must be >= 0")

    @property
    def mode_spelling(self) -> str | None:
        if self.declared_mode is not None:
            return self.declared_mode
        return MODE_SPELLING.get(self.name)


# ---- fault switches ---------------------------------------------------------------------------
SILENT_LOSS = "silent_loss"
HARM_TWICE = "harm_twice"
HARM_WITHOUT_BREAK = "harm_without_break"
SMEARED_ATTRIBUTION = "smeared_attribution"
WRONG_SHORTFALL = "wrong_shortfall"
WRONG_FREE = "wrong_free"
POST_HOC_ACCEPTANCE = "post_hoc_acceptance"
EXPIRY_AFTER_LOSS = "expiry_after_loss"
RESTORE_FROM_RECOMPUTE = "restore_from_recompute"
WRONG_CLAIM_OUTCOME = "wrong_claim_outcome"
DEFER_FOREVER = "defer_forever"
OVER_PROTECTION = "over_protection"


@dataclass(frozen=True, slots=True)
class Fault:
    name: str
    rule: str  # the rule id it breaks (spec/rules.toml)
    policies: tuple[str, ...]  # the policies it can be switched on for
    what: str = field(default="")
    also: tuple[str, ...] = ()  # rules the same misbehaviour may break as well

    @property
    def rules(self) -> frozenset[str]:
        return frozenset((self.rule, *self.also))


def _faults() -> dict[str, Fault]:
    rules = spec_mod.load().rules

    def rule(rid: str) -> str:
        return rules[rid].id  # KeyError: the spec lost a rule the faults break

    excl = (HARD_EXCLUDE, RESIDENT_RESERVE, DEMOTE_ON_CONFLICT, EXPIRING)
    accepting = (SOFT_PRIORITY, *excl, OFFLOADABLE)
    table = (
        Fault(SILENT_LOSS, rule("R-no-silent-loss"), (SOFT_PRIORITY,),
              "a predicate-breaking loss is not reported (no harm, no later loss reports)"),
        Fault(HARM_TWICE, rule("R-harm"), (SOFT_PRIORITY,),
              "the next loss after harm is reported as harm again"),
        Fault(HARM_WITHOUT_BREAK, rule("R-harm"), (SOFT_PRIORITY,),
              "harm is reported for a loss that keeps the predicate true"),
        Fault(SMEARED_ATTRIBUTION, rule("R-attribution"), excl,
              "a refusal names every known claim as blocking, not only the protected ones",
              (rule("R-yield"),)),  # naming a claim that gives way is also over-protection
        Fault(WRONG_SHORTFALL, rule("R-attribution"), excl,
              "capacity_shortfall_blocks is one too many"),
        Fault(WRONG_FREE, rule("R-attribution"), excl,
              "free_blocks_before_allocate counts protected blocks as free"),
        Fault(POST_HOC_ACCEPTANCE, rule("R-acceptance"), accepting,
              "the claim is named after its blocks materialized (claim_registration post_hoc)"),
        Fault(EXPIRY_AFTER_LOSS, rule("R-expiry"), (EXPIRING,),
              "a claim whose duration ended loses blocks before its expiry is reported",
              # the loss itself stands (docs/model.md §6 R-release-order): the late expiry excuses nothing
              (rule("R-hard"), rule("R-no-silent-loss"), rule("R-release-order"))),
        Fault(RESTORE_FROM_RECOMPUTE, rule("R-offload"), (OFFLOADABLE,),
              "an offloaded claim is recomputed and reported as restored"),
        Fault(WRONG_CLAIM_OUTCOME, rule("R-offload"), (OFFLOADABLE,),
              "a restoration failure names another claim as the outcome's claim"),
        Fault(DEFER_FOREVER, rule("R-progress"), (HARD_EXCLUDE, RESIDENT_RESERVE, EXPIRING),
              "a request it should refuse is deferred past the declared bound and never decided"),
        Fault(OVER_PROTECTION, rule("R-yield"), (SOFT_PRIORITY,),
              "a request that would evict soft claims is refused, naming them as blocking",
              (rule("R-attribution"),)),  # naming a claim that gives way is also a smear
    )
    return {f.name: f for f in table}


FAULTS = _faults()
