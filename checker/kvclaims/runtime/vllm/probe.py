"""The 60/70/80 probe (docs/model.md §8) on vLLM's real scheduler (0.33.0, 0.34.0): stock and
claim-aware; :func:`probe_facts` answers `kvclaims probe vllm`.

Geometry as in the reference probe (docs/vllm.md): block_size 16, 81 GPU blocks (block 0 is the null
block, 80 usable). A resident request of 960 tokens (60 blocks) runs and finishes, its prefix
claimed (`claim:resident`, hard_exclude, leading_prefix_at_least(60)); an active request of 1120
tokens (70 blocks) arrives; then the resident prompt is requested again. Every number comes from
vLLM's own classes at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvclaims.runtime.probe_facts import ProbeFacts
from kvclaims.runtime.vllm.harness import ClaimDecl, VllmHarness

BLOCK_SIZE = 16
NUM_BLOCKS = 81
RESIDENT_BLOCKS = 60
ACTIVE_BLOCKS = 70
RESIDENT_TOKENS = tuple(1000 + i for i in range(RESIDENT_BLOCKS * BLOCK_SIZE))
ACTIVE_TOKENS = tuple(50_000 + i for i in range(ACTIVE_BLOCKS * BLOCK_SIZE))
CLAIM_ID = "claim:resident"
WORKLOAD = ("60/70/80: resident 960 tokens (60 blocks, claimed) runs and finishes; active 1120 "
            "tokens (70 blocks); resident prompt requested again")


def resident_claim(mode: str = "hard_exclude", on_conflict: str = "refuse",
                   duration_steps: int | None = None) -> ClaimDecl:
    return ClaimDecl(CLAIM_ID, RESIDENT_TOKENS, mode=mode, prefix_id="resident",
                     on_conflict=on_conflict, duration_steps=duration_steps)


@dataclass
class ProbeResult:
    harness: VllmHarness
    surviving_positions: list[int]  # claim positions vLLM's prefix cache still serves after active
    active_outcome: str
    rerequest_hit_blocks: int | None
    kv_batch_kinds: list[dict[str, int]]

    @property
    def events(self) -> list[Any]:
        return self.harness.events


def run_probe(plugin: bool, *, mode: str = "hard_exclude", on_conflict: str = "refuse",
              kv_events_endpoint: str | None = None, rerequest: bool = True,
              **kw: Any) -> ProbeResult:
    h = VllmHarness(claims=[resident_claim(mode, on_conflict)], plugin=plugin,
                    num_blocks=NUM_BLOCKS, block_size=BLOCK_SIZE,
                    kv_events_endpoint=kv_events_endpoint, run_id="probe-60-70-80", **kw)
    h.comment("resident request (the claimed prefix)")
    h.add_request("resident", RESIDENT_TOKENS)
    h.step()
    h.comment("active request needing 70 blocks")
    h.add_request("active", ACTIVE_TOKENS)
    h.step()
    surviving = h.still_cached(CLAIM_ID)
    active_outcome = h.outcomes["active"]
    hit = None
    if rerequest:
        h.comment("the resident prompt requested again")
        h.add_request("resident-again", RESIDENT_TOKENS)
        rec = h.step()
        tokens = rec.prefix_hit_tokens.get("resident-again")
        hit = None if tokens is None else tokens // BLOCK_SIZE
    kinds = []
    for b in h.kv_batches:
        k: dict[str, int] = {}
        for e in b.events:
            k[type(e).__name__] = k.get(type(e).__name__, 0) + 1
        kinds.append(k)
    return ProbeResult(h, surviving, active_outcome, hit, kinds)


def probe_facts(plugin: bool) -> ProbeFacts:
    """`kvclaims probe vllm [--plugin]` (kvclaims.probe): the 60/70/80 probe on
    the installed vLLM's real scheduler. Surviving positions and the re-request's hit come from
    vLLM's own prefix cache; the verdict, the victims and (plug-in) the refusal's shortfall and
    free counts from run.decide_trace over the trace the run recorded."""
    from kvclaims import spec as spec_mod
    from kvclaims.run import decide_trace
    from kvclaims.runtime.vllm import adapter

    r = run_probe(plugin)
    try:
        rep = decide_trace(spec_mod.load(), r.events, file="probe")
    finally:
        r.harness.close()
    claim = next((c for c in rep.claims if c.claim_id == CLAIM_ID), None)
    if claim is None:  # fail closed: a probe whose trace lost its claim has no facts to show
        raise RuntimeError(f"the probe's trace has no claim {CLAIM_ID} ({rep.result})")
    active = next((q for q in rep.requests if q.request_id == "active"), None)
    return ProbeFacts(
        runtime="vllm", runtime_version=adapter.installed_version(), plugin=plugin,
        verdict=rep.result, victims=claim.victims,
        surviving_positions=tuple(r.surviving_positions),
        rerequest_hit_blocks=r.rerequest_hit_blocks,
        shortfall_blocks=active.capacity_shortfall_blocks if plugin and active else None,
        free_blocks=active.free_blocks_before_allocate if plugin and active else None)


def main() -> None:  # pragma: no cover - manual use
    from kvclaims import spec as spec_mod
    from kvclaims.check.replay import check_events

    for plugin in (False, True):
        r = run_probe(plugin)
        rep = check_events(spec_mod.load(), r.events, "probe")
        print(("plug-in" if plugin else "stock"), rep.verdict, "surviving", r.surviving_positions,
              "active", r.active_outcome, "re-request hit", r.rerequest_hit_blocks, r.kv_batch_kinds)
        r.harness.close()


if __name__ == "__main__":  # pragma: no cover
    main()
