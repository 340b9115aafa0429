"""The 60/70/80 probe (docs/model.md §8) on SGLang 0.5.23's real tree: stock and claim-aware.

Geometry as in the papers and shared/reference/runtimes-cpu.md: page_size 16, 80 pages. A resident
request of 960 tokens (60 pages) runs and finishes, its prefix claimed (`claim:resident`,
hard_exclude, leading_prefix_at_least(60)); an active request of 1120 tokens (70 pages) arrives;
then the resident prompt is requested again. Stock SGLang evicts the whole radix leaf: all 60 pages
at once (one `BlockRemoved` with 60 hashes), and the re-request matches none of them. Every number
comes from SGLang's own classes at run time; the verdict from run.decide_trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kvclaims.runtime.probe_facts import ProbeFacts
from kvclaims.runtime.sglang.harness import PAGE_SIZE, SglangHarness, SglClaim, installed_version

NUM_PAGES = 80
RESIDENT_PAGES = 60
ACTIVE_PAGES = 70
RESIDENT_TOKENS = tuple(1000 + i for i in range(RESIDENT_PAGES * PAGE_SIZE))
ACTIVE_TOKENS = tuple(50_000 + i for i in range(ACTIVE_PAGES * PAGE_SIZE))
CLAIM_ID = "claim:resident"
WORKLOAD = ("60/70/80: resident 960 tokens (60 pages, claimed) runs and finishes; active 1120 "
            "tokens (70 pages); resident prompt requested again")


def resident_claim(mode: str = "hard_exclude", on_conflict: str = "refuse") -> SglClaim:
    return SglClaim(CLAIM_ID, RESIDENT_TOKENS, mode=mode, prefix_id="resident",
                    on_conflict=on_conflict)


@dataclass
class ProbeResult:
    harness: SglangHarness
    surviving_positions: list[int]  # claim positions SGLang's tree still serves after active
    active_outcome: str
    rerequest_hit_blocks: int | None
    removed_batch_sizes: list[int]  # hashes per BlockRemoved SGLang published

    @property
    def events(self) -> list[Any]:
        return self.harness.events


def run_probe(plugin: bool, *, mode: str = "hard_exclude", on_conflict: str = "refuse",
              kv_events_endpoint: str | None = None, rerequest: bool = True) -> ProbeResult:
    h = SglangHarness(claims=[resident_claim(mode, on_conflict)], plugin=plugin,
                      num_pages=NUM_PAGES, page_size=PAGE_SIZE,
                      kv_events_endpoint=kv_events_endpoint, run_id="probe-60-70-80")
    h.comment("resident request (the claimed prefix)")
    h.add_request("resident", RESIDENT_TOKENS)
    h.step()
    h.comment("active request needing 70 pages")
    h.add_request("active", ACTIVE_TOKENS)
    h.step()
    surviving = h.still_cached(CLAIM_ID)
    active_outcome = h.outcomes["active"]
    hit = None
    if rerequest:
        h.comment("the resident prompt requested again")
        h.add_request("resident-again", RESIDENT_TOKENS)
        h.step()
        tokens = h.prefix_hit_tokens.get("resident-again")
        hit = None if tokens is None else tokens // PAGE_SIZE
    removed = [len(e.block_hashes) for b in h.kv_batches for e in b.events
               if type(e).__name__ == "BlockRemoved"]
    return ProbeResult(h, surviving, active_outcome, hit, removed)


def probe_facts(plugin: bool) -> ProbeFacts:
    """`kvclaims probe sglang [--plugin]`: the 60/70/80 probe on the installed SGLang's real tree.
    Surviving positions and the re-request's hit come from SGLang's own tree; the verdict, the
    victims and (plug-in) the refusal's shortfall and free counts from run.decide_trace over the
    trace the run recorded."""
    from kvclaims import spec as spec_mod
    from kvclaims.run import decide_trace

    r = run_probe(plugin)
    try:
        rep = decide_trace(spec_mod.load(), r.events, file="probe")
    finally:
        r.harness.close()
    claim = next((c for c in rep.claims if c.claim_id == CLAIM_ID), None)
    if claim is None:  # fail closed: a probe whose trace lost its claim has no facts to show
        raise RuntimeError(f"the probe's trace has no claim {CLAIM_ID} ({rep.verdict})")
    active = next((q for q in rep.requests if q.request_id == "active"), None)
    return ProbeFacts(
        runtime="sglang", runtime_version=installed_version(), plugin=plugin,
        verdict=rep.verdict, victims=claim.victims,
        surviving_positions=tuple(r.surviving_positions),
        rerequest_hit_blocks=r.rerequest_hit_blocks,
        shortfall_blocks=active.capacity_shortfall_blocks if plugin and active else None,
        free_blocks=active.free_blocks_before_allocate if plugin and active else None)


# ---- traces/sglang/ ---------------------------------------------------------------------------
TRACE_RUNS = (("stock-probe", dict(plugin=False)),
              ("plugin-probe", dict(plugin=True)),
              ("plugin-demote", dict(plugin=True, mode="demotable", on_conflict="demote")))


def write_traces(out_dir: str) -> list[str]:
    """Regenerate traces/sglang/: the probe through the stock tree and the claim-aware tree
    (refuse and demote) as `.kvt` with their provenance, the stock KV event stream SGLang published
    (msgpack records) with its claim manifest, and expected.json. `.kvt` files are byte-for-byte
    reproducible; the `.kvbatches` file keeps SGLang's own payloads, whose `ts` is wall-clock."""
    import json
    import os

    import msgspec

    from kvclaims import spec as spec_mod
    from kvclaims.run import decide_trace
    from kvclaims.trace.vllm_events import Manifest, ManifestClaim, encode_records, manifest_toml

    spec = spec_mod.load()
    os.makedirs(out_dir, exist_ok=True)
    written: list[str] = []
    expected: dict[str, Any] = {}
    enc = msgspec.msgpack.Encoder()
    for name, kw in TRACE_RUNS:
        r = run_probe(**kw)  # type: ignore[arg-type]
        h = r.harness
        label = WORKLOAD + ("" if "mode" not in kw else f"; claim mode {kw['mode']}, "
                            f"on_conflict {kw['on_conflict']}")
        path = os.path.join(out_dir, f"{name}.kvt")
        h.write_kvt(path, [f"generated by scripts/regen-sglang-traces ({name})",
                           *h.provenance(label)])
        rep = decide_trace(spec, h.events, file=path)
        written.append(path)
        expected[f"{name}.kvt"] = {
            "verdict": rep.verdict,
            "violated": sorted({f.rule for f in rep.findings if f.status == "violation"}),
            "claim_victims": rep.claims[0].victims,
            "sglang_surviving_positions_after_active": len(r.surviving_positions),
            "active_outcome": r.active_outcome,
            "rerequest_prefix_hit_blocks": r.rerequest_hit_blocks,
            "block_removed_hashes": r.removed_batch_sizes,
        }
        if name == "stock-probe":
            rec = os.path.join(out_dir, f"{name}.kvbatches")
            with open(rec, "wb") as fh:
                fh.write(encode_records((i, enc.encode(b)) for i, b in enumerate(h.kv_batches)))
            written.append(rec)
            man = os.path.join(out_dir, "claims.toml")
            with open(man, "w") as fh:
                fh.write("# claim manifest for stock-probe.kvbatches: the resident prefix's page "
                         "hashes\n# (SGLang 0.5.23's own KVCacheEventRecorder, page_size 16), as "
                         "its KV events carry them\n")
                fh.write(manifest_toml(Manifest([ManifestClaim(
                    CLAIM_ID, h.claim_hashes[CLAIM_ID], "hard_exclude", "resident")],
                    usable_blocks=NUM_PAGES)))
            written.append(man)
            expected[f"{name}.kvbatches"] = {"verdict": "violation", "claims": "claims.toml",
                                             "violated": ["R-hard", "R-no-silent-loss"]}
        h.close()
    ex = os.path.join(out_dir, "expected.json")
    with open(ex, "w") as fh:
        json.dump(expected, fh, indent=1, sort_keys=True)
        fh.write("\n")
    written.append(ex)
    return written
