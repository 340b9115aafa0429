"""The same workloads give the same verdicts on every supported vLLM version (issue 23 item 7).

A fixed set of fuzz workloads (traces/vllm/workloads.json: drawn once from
kvclaims.fuzz.strategies.vllm_workloads with a fixed seed, plus the 60/70/80 geometry) is run
through the installed vLLM's real scheduler, stock and with the claim-aware plug-in (the fuzzer's
`vllm:…` runtimes, kvclaims.runtime.vllm.fuzz_adapter), and each trace is decided by
run.decide_trace (kvclaims.fuzz.driver.evaluate: the decision `check` makes). The verdicts are
written per version (traces/vllm/<version>/verdicts.json). tests/vllm/test_versions.py, run in
each version's environment, re-derives the installed version's file, and checks that every
version's file says the same: what one vLLM version does to a claim, the other does too.
Docs: docs/vllm.md "Versions".
"""

from __future__ import annotations

import json
import os
from typing import Any

# The fuzzer's vLLM runtimes each workload is decided under (docs/fuzz.md).
RUNTIMES = ("vllm:stock", "vllm:stock,mode=hard_exclude", "vllm:plugin",
            "vllm:plugin,mode=hard_exclude")
WORKLOADS = "workloads.json"
VERDICTS = "verdicts.json"
SEED = 23
EXAMPLES = 12


def draw_workloads(examples: int = EXAMPLES, seed: int = SEED) -> list[Any]:
    """`examples` distinct workloads drawn from vllm_workloads with a fixed seed, after the
    60/70/80 geometry (only when regenerating workloads.json: the draw depends on Hypothesis's
    version, the committed file does not)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    from kvclaims.fuzz.strategies import vllm_workloads
    from kvclaims.runtime.workload import ClaimSpec, PrefixSpec, RequestSpec, Workload

    probe = Workload(80, (PrefixSpec("resident", 60, ClaimSpec("claim:resident", 60)),),
                     (RequestSpec("active", (70,)),), run_id="probe-60-70-80")
    out = [probe]

    @hseed(seed)
    @settings(max_examples=examples * 4, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(wl=vllm_workloads())
    def collect(wl: Workload) -> None:
        if len(out) <= examples and wl not in out:
            out.append(wl)

    collect()
    return out


def write_workloads(path: str, workloads: list[Any]) -> None:
    from kvclaims.fuzz.driver import workload_to_data

    with open(path, "w") as fh:
        json.dump([workload_to_data(w) for w in workloads], fh, indent=1, sort_keys=True)
        fh.write("\n")


def read_workloads(path: str) -> list[Any]:
    from kvclaims.fuzz.driver import workload_from_data

    with open(path) as fh:
        return [workload_from_data(d) for d in json.load(fh)]


def verdicts(workloads: list[Any]) -> dict[str, Any]:
    """For the installed vLLM: {"vllm": version, "verdicts": {"<index>|<runtime>": {"verdict",
    "victims", "violated"}}}."""
    from kvclaims import spec as spec_mod
    from kvclaims.check.verdict import VIOLATION
    from kvclaims.fuzz.driver import evaluate
    from kvclaims.runtime.interface import resolve
    from kvclaims.runtime.vllm import adapter

    spec = spec_mod.load()
    out: dict[str, Any] = {}
    for name in RUNTIMES:
        rt = resolve(name)
        for i, wl in enumerate(workloads):
            _, rep, failing = evaluate(rt, wl, spec)
            out[f"{i}|{name}"] = {
                "verdict": rep.result if rep is not None else failing[0][1],
                "victims": sum(c.victims for c in rep.claims) if rep is not None else None,
                "violated": sorted({rule for rule, status, _ in failing
                                    if status == VIOLATION}),
            }
    return {"vllm": adapter.installed_version(), "verdicts": out}


def write_verdicts(traces_dir: str) -> str:
    """traces/vllm/<installed version>/verdicts.json from traces/vllm/workloads.json."""
    from kvclaims.runtime.vllm import adapter

    data = verdicts(read_workloads(os.path.join(traces_dir, WORKLOADS)))
    path = os.path.join(traces_dir, adapter.installed_version(), VERDICTS)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return path
