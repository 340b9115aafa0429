"""The MicroRuntime's arbiter mechanism table for its default scenario (papers P1.5.4; docs/model.md §2).

Decides, for each arbiter mechanism, the actions it takes when resident and active live KV do not
both fit, whether the resident set survives, whether the active request is served and its KV
reusable, and the named labels and costs, all computed from the scenario (live-KV model,
headroom, feasibility, cost model) rather than written down. Pure data; no events.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

# ArbiterAction values (papers P1.5.4)
SERVE = "serve"
EVICT_RESIDENT = "evict_resident"
DEFER_ACTIVE = "defer_active"
NO_ADMIT = "no_admit_active_reuse"
OFFLOAD_RESIDENT = "offload_resident"
OFFLOAD_ACTIVE = "offload_active"
BOUND_ACTIVE_LIVE = "bound_active_live"
RECOMPUTE_SPLIT = "recompute_split"
ROUTE_ELSEWHERE = "route_elsewhere"
REFUSE_RESIDENCY_CLAIM = "refuse_residency_claim"
RELAX = "relax_resident_protection"
INCREASE_CAPACITY = "increase_capacity"

# Active service outcomes as the table states them.
SERVED = "yes"
NOT_SERVED = "no (infeasible)"
AFTER_DELAY = "yes (after delay)"
IF_FEASIBLE = "only if feasible"
BOUNDED = "bounded"


@dataclass(frozen=True, slots=True)
class ResidentPrefix:
    prefix_id: str
    blocks: int
    value: float


@dataclass(frozen=True, slots=True)
class CostModel:
    defer_per_step: float = 1.0
    defer_steps: int = 1
    resident_offload_per_block: float = 0.05
    active_offload_per_block: float = 0.05
    recompute_per_block: float = 0.10
    route: float = 4.0
    extra_capacity_per_block: float = 0.20


@dataclass(frozen=True, slots=True)
class Scenario:
    residents: tuple[ResidentPrefix, ...]
    active_chunks: tuple[int, ...]
    active_reuse_value: float
    usable: int
    active_service_value: float = 13.0  # (choice) the papers give no number; oracle input only
    costs: CostModel = CostModel()

    @property
    def protected(self) -> int:
        return sum(p.blocks for p in self.residents)

    @property
    def resident_value(self) -> float:
        return sum(p.value for p in self.residents)

    @property
    def live_by_step(self) -> tuple[int, ...]:
        return tuple(accumulate(self.active_chunks))  # full attention accumulates

    @property
    def max_live(self) -> int:
        return max(self.live_by_step)

    @property
    def headroom(self) -> int:
        return self.usable - self.protected

    @property
    def feasible(self) -> bool:
        return self.protected + self.max_live <= self.usable

    @property
    def blocked_step(self) -> int | None:
        """1-based step whose live blocks first exceed the unprotected headroom."""
        for i, live in enumerate(self.live_by_step, 1):
            if live > self.headroom:
                return i
        return None

    def labels(self) -> tuple[str, ...]:
        out = []
        if len(self.active_chunks) > 1:
            out.append("active_live_kv_accumulation")
        if self.blocked_step is not None:
            out += ["protected_resident_headroom_exhausted", "active_admission_blocked",
                    "resident_protection_requires_deferral", "chunking_not_live_bounding"]
        if not self.feasible:
            out.append("physical_capacity_infeasible")
        return tuple(out)


DEFAULT_SCENARIO = Scenario(
    residents=(ResidentPrefix("small_hot", 30, 9.0), ResidentPrefix("small_warm", 30, 8.0)),
    active_chunks=(20, 20, 20, 10),
    active_reuse_value=13.0,
    usable=80,
)


@dataclass(frozen=True, slots=True)
class MechanismOutcome:
    mechanism: str
    actions: tuple[str, ...]
    resident_survives: bool | None  # None: the oracle (it picks another row)
    active_served: str | None
    active_reusable: bool | None
    victim_harm: float = 0.0
    cost: float = 0.0
    notes: tuple[str, ...] = ()  # named reasons, labels and numbers, as the table spells them

    def utility(self, s: Scenario) -> float:
        return ((s.resident_value if self.resident_survives else 0.0)
                + (s.active_service_value if self.active_served in (SERVED, AFTER_DELAY,
                                                                   BOUNDED) else 0.0)
                + (s.active_reuse_value if self.active_reusable else 0.0) - self.cost)


def _num(x: float) -> str:
    return f"{x:g}" if x != int(x) else str(int(x))


def mechanism_table(s: Scenario = DEFAULT_SCENARIO) -> tuple[MechanismOutcome, ...]:
    """Every arbiter mechanism's outcome in scenario `s` (papers P1.5.4), oracle last."""
    c = s.costs
    harm = s.resident_value
    feasible = s.feasible
    over = max(0, s.max_live - s.headroom)  # active blocks beyond the unprotected headroom
    live = "[" + ",".join(str(x) for x in s.live_by_step) + "]"
    evicts = not feasible
    rows = [
        MechanismOutcome("native_eviction", (EVICT_RESIDENT, SERVE) if evicts else (SERVE,),
                         not evicts, SERVED, True, harm if evicts else 0.0,
                         notes=(_num(harm), "residents_remain_allocation_victims")),
        MechanismOutcome("resident_victim_exclusion", (DEFER_ACTIVE,) if evicts else (SERVE,),
                         True, NOT_SERVED if evicts else SERVED, not evicts,
                         notes=("active_live_exceeds_resident_headroom",)),
        MechanismOutcome("write_no_admit_only",
                         (NO_ADMIT, EVICT_RESIDENT, SERVE) if evicts else (NO_ADMIT, SERVE),
                         not evicts, SERVED, False, harm if evicts else 0.0,
                         notes=(_num(harm), "active_live_still_consumes_kv")),
        MechanismOutcome("ordinary_chunking", (SERVE,), not evicts, SERVED, True,
                         harm if evicts else 0.0,
                         notes=(live, f"step {s.blocked_step}",
                                *(x for x in s.labels() if x == "chunking_not_live_bounding"))),
        MechanismOutcome("active_deferral", (DEFER_ACTIVE,), True, AFTER_DELAY, False,
                         cost=c.defer_per_step * c.defer_steps,
                         notes=(f"{c.defer_steps} step", _num(c.defer_per_step * c.defer_steps),
                                "deferred_until_headroom")),
        MechanismOutcome("resident_reserve", (REFUSE_RESIDENCY_CLAIM,), True, IF_FEASIBLE,
                         False, notes=("resident_reserve_full",)),
        MechanismOutcome("offload_resident", (OFFLOAD_RESIDENT, SERVE), True, SERVED, True,
                         cost=s.protected * c.resident_offload_per_block,
                         notes=(f"{s.protected}×{_num(c.resident_offload_per_block)}",)),
        MechanismOutcome("offload_active", (OFFLOAD_ACTIVE, NO_ADMIT, SERVE), True, BOUNDED,
                         False, cost=over * c.active_offload_per_block,
                         notes=("headroom window",)),
        MechanismOutcome("bounded_active_live", (BOUND_ACTIVE_LIVE, SERVE), True, BOUNDED, False,
                         cost=over * c.recompute_per_block, notes=("beyond window",)),
        MechanismOutcome("recompute_split", (RECOMPUTE_SPLIT, SERVE), True, SERVED, False,
                         cost=sum(s.active_chunks) * c.recompute_per_block,
                         notes=(f"max live {max(s.active_chunks)}",
                                f"{sum(s.active_chunks)}×{_num(c.recompute_per_block)}")),
        MechanismOutcome("route_elsewhere", (ROUTE_ELSEWHERE,), True, SERVED, False,
                         cost=c.route, notes=(_num(c.route), "routed_to_other_kv_budget")),
        MechanismOutcome("relax_resident_protection", (RELAX, SERVE) if evicts else (SERVE,),
                         not evicts, SERVED, True, harm if evicts else 0.0,
                         notes=(_num(harm), "relaxed_resident_blocks = max(0, max_live − "
                                "headroom)")),
        MechanismOutcome("capacity_scaling", (INCREASE_CAPACITY, SERVE) if evicts else (SERVE,),
                         True, SERVED, True, cost=over * c.extra_capacity_per_block,
                         notes=(f"{over} blocks", f"×{_num(c.extra_capacity_per_block)}",
                                "feasible_without_extra_capacity = "
                                + ("yes" if feasible else "no"))),
    ]
    best = max(rows, key=lambda r: r.utility(s))
    rows.append(MechanismOutcome("oracle_arbiter", best.actions, None, None, None,
                                 notes=("argmax total utility",)))
    return tuple(rows)
