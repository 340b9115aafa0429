"""What the MicroRuntime is asked to run: resident prefixes, their claims, active requests.

Pure data (docs/model.md §2, papers P1.7.1): a prefix is an ordered run of logical blocks; a claim on it
has identity, a `leading_prefix_at_least(n)` predicate, a footprint (the prefix's blocks), a value,
an optional duration in allocation epochs, and, when offloadable, an injected restore failure with
its claim-scoped outcome. An active request has a chunk schedule and an attention mode; its live KV
per step is decided here (§2: full attention accumulates, a sliding window caps, recompute holds
one chunk), so `max_live` is the footprint the arbiter must fit.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate

FULL_ATTENTION = "full_attention"
SLIDING_WINDOW = "sliding_window"
RECOMPUTE = "recompute_free_between_chunks"
ATTENTION_MODES = (FULL_ATTENTION, SLIDING_WINDOW, RECOMPUTE)


@dataclass(frozen=True, slots=True)
class ClaimSpec:
    claim_id: str
    required: int  # n of leading_prefix_at_least(n)
    protected: bool = True  # False: a best-effort claim (protection_mode none)
    predicted_value: float = 1.0
    duration_steps: int | None = None  # TTL in allocation epochs (expiring policy)
    restore_fails: bool = False  # offloadable: the restoration of its offload fails (injected)
    failure_outcome: str = "refusal"  # claim_scoped_outcome_type after a failed restoration
    priority: int | None = None  # claim_priority (soft claims: lower gives way first; docs/model.md §6)

    @property
    def predicate(self) -> str:
        return f"leading_prefix_at_least({self.required})"


@dataclass(frozen=True, slots=True)
class PrefixSpec:
    prefix_id: str
    blocks: int
    claim: ClaimSpec | None = None
    request_id: str | None = None  # the resident request that computed it (default: prefix_id)

    @property
    def owner_request(self) -> str:
        return self.request_id or self.prefix_id


@dataclass(frozen=True, slots=True)
class RequestSpec:
    request_id: str
    chunks: tuple[int, ...]
    attention: str = FULL_ATTENTION
    window: int | None = None
    future_reuse_requested: bool = True
    reuses: str | None = None  # prefix_id of a claimed object this request reuses

    def live_by_step(self) -> tuple[int, ...]:
        """Live blocks after each chunk (docs/model.md §2)."""
        cumulative = tuple(accumulate(self.chunks))
        if self.attention == FULL_ATTENTION:
            return cumulative
        if self.attention == SLIDING_WINDOW:
            w = self.window or 0
            return tuple(min(w, c) for c in cumulative)
        return tuple(self.chunks)

    @property
    def total(self) -> int:
        return sum(self.chunks)

    @property
    def max_live(self) -> int:
        return max(self.live_by_step(), default=0)


@dataclass(frozen=True, slots=True)
class Workload:
    usable: int
    prefixes: tuple[PrefixSpec, ...]
    requests: tuple[RequestSpec, ...]
    run_id: str = "microruntime"

    def check(self) -> None:
        """Workloads the MicroRuntime models: everything else is a usage error."""
        if self.usable <= 0:
            raise ValueError("usable must be positive")
        if sum(p.blocks for p in self.prefixes) > self.usable:
            raise ValueError("resident prefixes exceed the pool")
        ids = [p.prefix_id for p in self.prefixes]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate prefix ids")
        claims = [p.claim.claim_id for p in self.prefixes if p.claim is not None]
        if len(set(claims)) != len(claims):
            raise ValueError("duplicate claim ids")
        for p in self.prefixes:
            if p.blocks <= 0:
                raise ValueError(f"prefix {p.prefix_id} has no blocks")
            if p.claim is not None and not 1 <= p.claim.required <= p.blocks:
                raise ValueError(f"claim {p.claim.claim_id}: predicate needs 1..{p.blocks} blocks")
        for r in self.requests:
            if not r.chunks or min(r.chunks) <= 0:
                raise ValueError(f"request {r.request_id}: chunks must be positive")
            if r.attention not in ATTENTION_MODES:
                raise ValueError(f"request {r.request_id}: unknown attention {r.attention}")
            if r.attention == SLIDING_WINDOW and (r.window or 0) < max(r.chunks):
                raise ValueError(f"request {r.request_id}: window below the largest chunk")
            if r.max_live > self.usable:
                raise ValueError(f"request {r.request_id}: live KV exceeds the whole pool")
            if r.reuses is not None and r.reuses not in ids:
                raise ValueError(f"request {r.request_id} reuses unknown prefix {r.reuses}")


def sixty_seventy_eighty(usable: int = 80, *, claim: ClaimSpec | None = None,
                         chunks: tuple[int, ...] = (70,), run_id: str = "microruntime") -> Workload:
    """The papers' 60/70/80 scenario: resident prefix `resident` of 60 blocks, active `active`."""
    return Workload(
        usable=usable,
        prefixes=(PrefixSpec("resident", 60, claim),),
        requests=(RequestSpec("active", chunks),),
        run_id=run_id,
    )
