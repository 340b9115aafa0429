"""Trace producers (ARCHITECTURE.md: runtimes produce events): the MicroRuntime (docs/model.md §8)."""

from kvclaims.runtime.micro import MicroRuntime, RunResult, run
from kvclaims.runtime.policies import FAULTS, POLICIES, Fault, Policy
from kvclaims.runtime.workload import ClaimSpec, PrefixSpec, RequestSpec, Workload

__all__ = ["MicroRuntime", "RunResult", "run", "FAULTS", "POLICIES", "Fault", "Policy",
           "ClaimSpec", "PrefixSpec", "RequestSpec", "Workload"]
