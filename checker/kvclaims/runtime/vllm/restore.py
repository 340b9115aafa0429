"""The restore-failure witness (docs/model.md §4 offloadable, §6 offloadable bundle) on vLLM's
real scheduler, with the host-tier connector (connector.py, through `kv_connector_module_path`)
and the claim-aware scheduler (scheduler_plugin.py, through `scheduler_cls`).

Geometry: block_size 16, 17 GPU blocks (block 0 is the null block, 16 usable). The claim
`claim:sys` covers a 64-token system prompt (4 blocks), mode `offloadable`.

Witness, one run:
  1. `r1` = system prompt + 32 tokens: computed, its full prompt blocks written through to the host
     tier; the plug-in pins the claim (`resident_claim_materialized`).
  2. generation 1: the plug-in offloads the claim (host copy present), a filler request takes every
     free block (vLLM evicts the claim's GPU copies: not a loss, the claim is in the host tier);
     `r2` = system prompt + other 32 tokens: the connector's lookup hits the host tier
     (`restore_required`), vLLM allocates, the worker loads the 4 blocks synchronously (content
     checked), `restored` from the offload tier, then `reuse_after_restore` once re-pinned.
  3. generation 2: offload, filler, a controlled CPU→GPU load failure injected for the claim's
     blocks; `r3`'s load fails, the worker reports `invalid_block_ids`, vLLM's
     `_handle_invalid_blocks` with `kv_load_failure_policy="fail"` evicts them and finishes `r3`
     with FINISHED_ERROR; the plug-in reports `restoration_failed` (outcome refusal, naming the
     claim) and `active_request_refused` (`infeasible_restore_claimed_kv`).

Controls (each rejected by the checker or the offloadable gate):
  - `wrong-claim`: a second claim `claim:other` is declared; the plug-in (option
    `misattribute_restore_failures_to`) names it in the failure outcome.
  - `unclaimed-failure`: generation 2 is replaced by a failure injected for an unclaimed prefix
    (`u1`'s, stored earlier): vLLM fails the request, no claim-scoped outcome exists.
  - `recompute`: `kv_load_failure_policy="recompute"`: vLLM reschedules `r3`, which is served by
    recompute; the plug-in (option `recompute_counts_as_restored`) reports it as restored.
  - `generic-counters`: stock `Scheduler` + the same connector, telemetry only the generic
    `generic_kv_blocks_*` counters (the harness declares the claim, as for the stock probe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvclaims.runtime.vllm.harness import ClaimDecl, VllmHarness

BLOCK_SIZE = 16
NUM_BLOCKS = 17
SYS_BLOCKS = 4
SYS_TOKENS = tuple(3000 + i for i in range(SYS_BLOCKS * BLOCK_SIZE))
OTHER_TOKENS = tuple(7000 + i for i in range(2 * BLOCK_SIZE))
UNCLAIMED_TOKENS = tuple(9000 + i for i in range(3 * BLOCK_SIZE))
CLAIM_ID = "claim:sys"
OTHER_ID = "claim:other"


def user(k: int, n: int = 2 * BLOCK_SIZE) -> tuple[int, ...]:
    return tuple(20_000 + 1000 * k + i for i in range(n))


VARIANTS = ("witness", "wrong-claim", "unclaimed-failure", "recompute", "generic-counters")

WORKLOAD = {
    "witness": "restore witness: r1 = sys(4 blocks, claimed, offloadable) + 32 tokens; gen 1: "
               "offload, filler takes every free block, r2 = sys + 32 restored from the host "
               "tier; gen 2: offload, filler, CPU->GPU load failure injected for the claim's "
               "blocks, r3 = sys + 32; kv_load_failure_policy fail",
    "wrong-claim": "control wrong-claim: as the witness, with a second claim claim:other (2 "
                   "blocks); the plug-in names claim:other in the failure outcome",
    "unclaimed-failure": "control unclaimed-failure: as the witness's generation 1, then a load "
                         "failure injected for an unclaimed prefix (u1, 3 blocks) evicted by a "
                         "filler; u2 = u1's prefix + 32 tokens",
    "recompute": "control recompute: as the witness, kv_load_failure_policy recompute; the "
                 "plug-in counts the recompute as restored",
    "generic-counters": "control generic-counters: as the witness through the stock Scheduler "
                        "and the same connector; only generic_kv_blocks_* counters",
}


@dataclass
class RestoreResult:
    harness: VllmHarness
    outcomes: dict[str, str]
    restore_checks: list[tuple[str, int, int]]
    load_errors: list[tuple[str, list[int]]]
    host_blocks: int

    @property
    def events(self) -> list[Any]:
        return self.harness.events


def _filler(h: VllmHarness, name: str, k: int) -> None:
    """A request that takes every free block (vLLM evicts cached blocks in LRU order)."""
    n = h.pool.get_num_free_blocks()
    h.comment(f"{name}: a request taking all {n} free blocks")
    h.add_request(name, tuple(60_000 + 1000 * k + i for i in range(n * BLOCK_SIZE)))
    h.step()


def run_restore(variant: str = "witness") -> RestoreResult:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")
    claims = [ClaimDecl(CLAIM_ID, SYS_TOKENS, mode="offloadable", prefix_id="sys")]
    options: dict[str, Any] = {}
    if variant == "wrong-claim":
        claims.append(ClaimDecl(OTHER_ID, OTHER_TOKENS, mode="offloadable", prefix_id="other"))
        options["misattribute_restore_failures_to"] = OTHER_ID
    if variant == "recompute":
        options["recompute_counts_as_restored"] = True
    stock = variant == "generic-counters"
    h = VllmHarness(claims=claims, plugin=not stock, num_blocks=NUM_BLOCKS,
                    block_size=BLOCK_SIZE, connector=True,
                    kv_load_failure_policy="recompute" if variant == "recompute" else "fail",
                    generic_counters=stock, plugin_options=options,
                    run_id=f"restore-{variant}")
    s = h.scheduler
    tier = h.worker_connector.tier

    def offload() -> None:
        if not stock:
            assert s.offload_claim(CLAIM_ID), "offload refused"
        else:
            h.comment("stock vLLM: no claim interface, nothing is told about the offload")

    h.comment("r1: the claimed system prompt + 32 tokens (written through to the host tier)")
    h.add_request("r1", SYS_TOKENS + user(1))
    if variant == "wrong-claim":
        h.add_request("o1", OTHER_TOKENS + user(9))
    if variant == "unclaimed-failure":
        h.add_request("u1", UNCLAIMED_TOKENS + user(8))
    h.step()
    h.comment("generation 1: offload the claim to the host tier")
    offload()
    _filler(h, "filler1", 1)
    h.comment("r2: the system prompt again: restore from the host tier")
    h.add_request("r2", SYS_TOKENS + user(2))
    h.step()
    if variant == "unclaimed-failure":
        h.comment("an unclaimed prefix: evicted by a filler, its load fails (injected)")
        _filler(h, "filler2", 2)
        hs = h.requests["u1"].block_hashes[:len(UNCLAIMED_TOKENS) // BLOCK_SIZE]
        tier.inject_load_failure(hs)
        h.add_request("u2", UNCLAIMED_TOKENS + user(3))
        h.step()
    else:
        h.comment("generation 2: offload again, then a controlled CPU->GPU load failure")
        offload()
        _filler(h, "filler2", 2)
        tier.inject_load_failure(h.claim_hashes[CLAIM_ID])
        h.add_request("r3", SYS_TOKENS + user(3))
        h.step()
        if variant == "recompute":
            h.comment("recompute policy: vLLM rescheduled r3")
            h.run_until_idle()
    return RestoreResult(h, dict(h.outcomes), list(h.restore_checks), list(h.load_errors),
                         len(tier.blocks))


def write_traces(out_dir: str, spec: Any) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """The witness and its controls as `restore-<variant>.kvt`, with expected verdicts and the
    offloadable gate's missing requirements."""
    import os

    from kvclaims.run import Options, check_path

    written: list[str] = []
    expected: dict[str, dict[str, Any]] = {}
    for variant in VARIANTS:
        r = run_restore(variant)
        h = r.harness
        path = os.path.join(out_dir, f"restore-{variant}.kvt")
        h.write_kvt(path, [f"generated by scripts/regen-vllm-traces (restore-{variant})",
                           *h.provenance(WORKLOAD[variant], seed=0),
                           "kv_connector HostTierConnector via kv_connector_module_path "
                           "kvclaims.runtime.vllm.connector, kv_load_failure_policy "
                           + h.vllm_config.kv_transfer_config.kv_load_failure_policy])
        written.append(path)
        rep = check_path(path, spec, Options(require=("offloadable",)))
        expected[f"restore-{variant}.kvt"] = {
            "verdict": rep.verdict,
            "violated": sorted({f.rule for f in rep.findings if f.status == "violation"}),
            "gate_offloadable_missing": list(rep.gates[0].missing),
            "gate_offloadable_violated": list(rep.gates[0].violated),
            "outcomes": {k: v for k, v in sorted(r.outcomes.items())},
            "restored_blocks_verified": sum(ok for _, _, ok in r.restore_checks),
            "load_errors": [[rid, bad] for rid, bad in r.load_errors],
        }
        h.close()
    return written, expected
