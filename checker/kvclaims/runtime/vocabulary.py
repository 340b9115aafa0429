"""The spec names the MicroRuntime emits, looked up once and checked against spec/ at import.

Event names, field names, fixed values (victim reasons, feasibility strings, tiers, offload outcome
types) all come from the spec tables (docs/model.md §5, §6); a name the spec lacks fails at import,
never mid-run. Nothing here is decided: it is the runtime's dictionary.
"""

from __future__ import annotations

from kvclaims import spec as spec_mod
from kvclaims.check.state import EventNames
from kvclaims.spec import Spec, SpecError


class Names(EventNames):
    """Spec values used by the MicroRuntime; its event names are the checker's own table
    (kvclaims.check.state.EventNames), so producer and checker share one list of names."""

    def __init__(self, spec: Spec):
        super().__init__(spec)
        v = spec.values
        self.cached_reason = v["cached_victim_reason"]
        self.uncached_reason = v["uncached_victim_reason"]
        self.infeasible = v["infeasible"]
        self.restore_infeasible = v["restore_infeasible"]
        self.post_hoc = v["post_hoc_registration"]
        c = spec.offload_constants
        self.gpu_tier = c["gpu_tier"]
        self.host_tier = c["host_tier"]
        self.restore_source = c["restore_source"]
        # offload outcome type -> the event that answers it (spec/lifecycle.toml)
        self.outcome_events = dict(spec.offload_outcome_events)
        self.fields = frozenset(spec.fields)
        # State names the runtime reports as `claim_status` on post-release losses.
        self.states = frozenset(spec.claim.states)
        self.spec = spec

    def outcome_type_for(self, event: str) -> str:
        for k, e in self.outcome_events.items():
            if e == event:
                return k
        raise SpecError(f"no offload outcome type answered by {event}")

    def state(self, name: str) -> str:
        if name not in self.states:
            raise SpecError(f"spec/lifecycle.toml lacks claim state {name}")
        return name

    def mode(self, spelling: str) -> str:
        if self.spec.canonical_mode(spelling) is None:
            raise SpecError(f"spec/modes.toml lacks protection mode spelling {spelling}")
        return spelling


NAMES = Names(spec_mod.load())
