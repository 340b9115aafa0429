"""The 60/70/80 probe (MODEL.md §8) on vLLM 0.33's real scheduler: stock and claim-aware.

Geometry as in shared/reference/vllm-0.33.md: block_size 16, 81 GPU blocks (block 0 is the null
block, 80 usable). A resident request of 960 tokens (60 blocks) runs and finishes, its prefix
claimed (`claim:resident`, hard_exclude, leading_prefix_at_least(60)); an active request of 1120
tokens (70 blocks) arrives; then the resident prompt is requested again. Every number comes from
vLLM's own classes at run time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


# ---- traces/vllm/ ----------------------------------------------------------------------------
def write_traces(out_dir: str) -> list[str]:
    """Regenerate traces/vllm/: the probe through stock vLLM and through the plug-in (refuse and
    demote), the stock KV event stream vLLM published (msgpack records) with its claim manifest,
    the restore-failure witness and its controls (restore.py), the queueing traces
    (queueing.py), and expected.json. `.kvt` files are byte-for-byte reproducible; the `.kvbatches` file keeps
    vLLM's own payloads, whose `ts` is wall-clock time."""
    import json
    import os

    import msgspec

    from kvclaims import spec as spec_mod
    from kvclaims.check.replay import check_events
    from kvclaims.runtime.vllm.harness import external_hash
    from kvclaims.trace.vllm_events import (
        Manifest,
        ManifestClaim,
        encode_records,
        manifest_toml,
    )

    spec = spec_mod.load()
    os.makedirs(out_dir, exist_ok=True)
    written: list[str] = []
    expected: dict[str, dict[str, Any]] = {}
    runs = [("stock-probe", dict(plugin=False)),
            ("plugin-probe", dict(plugin=True)),
            ("plugin-demote", dict(plugin=True, mode="demotable", on_conflict="demote"))]
    enc = msgspec.msgpack.Encoder()
    for name, kw in runs:
        r = run_probe(**kw)
        h = r.harness
        label = WORKLOAD + ("" if "mode" not in kw else f"; claim mode {kw['mode']}, "
                            f"on_conflict {kw['on_conflict']}")
        path = os.path.join(out_dir, f"{name}.kvt")
        h.write_kvt(path, [f"generated by scripts/regen-vllm-traces ({name})",
                           *h.provenance(label, seed=0)])
        written.append(path)
        rep = check_events(spec, h.events, path)
        expected[f"{name}.kvt"] = {
            "verdict": rep.verdict,
            "violated": sorted({f.rule for f in rep.findings if f.status == "violation"}),
            "claim_victims": rep.claims[0].victims,
            "vllm_surviving_positions_after_active": [r.surviving_positions[0],
                                                      r.surviving_positions[-1]],
            "active_outcome": r.active_outcome,
            "rerequest_prefix_hit_blocks": r.rerequest_hit_blocks,
        }
        if name == "stock-probe":
            rec = os.path.join(out_dir, f"{name}.kvbatches")
            with open(rec, "wb") as fh:
                fh.write(encode_records((i, enc.encode(b)) for i, b in enumerate(h.kv_batches)))
            written.append(rec)
            man = os.path.join(out_dir, "claims.toml")
            hs = [external_hash(x) for x in h.claim_hashes[CLAIM_ID]]
            with open(man, "w") as fh:
                fh.write("# claim manifest for stock-probe.kvbatches: the resident prefix's chain "
                         "of block hashes\n# (vLLM 0.33.0, sha256, block_size 16), as KV events "
                         "carry them\n")
                fh.write(manifest_toml(Manifest([ManifestClaim(CLAIM_ID, hs, "hard_exclude",
                                                               "resident")], usable_blocks=80)))
            written.append(man)
            expected[f"{name}.kvbatches"] = {"verdict": "violation", "claims": "claims.toml",
                                             # no admission on the stream: no R-explicit
                                             "violated": ["R-hard", "R-no-silent-loss"]}
        h.close()
    # The restore-failure witness and its controls (restore.py).
    from kvclaims.runtime.vllm import restore

    more, exp = restore.write_traces(out_dir, spec)
    written.extend(more)
    expected.update(exp)
    # Requests queued behind claims: soft claims give way, hard ones defer within the bound
    # (queueing.py; MODEL §6 R-yield, R-progress).
    from kvclaims.runtime.vllm import queueing

    more, exp = queueing.write_traces(out_dir, spec)
    written.extend(more)
    expected.update(exp)
    ex = os.path.join(out_dir, "expected.json")
    with open(ex, "w") as fh:
        json.dump(expected, fh, indent=1, sort_keys=True)
        fh.write("\n")
    written.append(ex)
    return written
