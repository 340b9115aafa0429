"""KV-RM transport and reservation numbers (bench/kvrm.md): transfer groups per decode step for
merge-staged vs greedy unsorted vs one transfer per block, and peak reserved KV blocks vs static
over-reservation (B x W), on seeded mixed-length workloads. Run: .venv/bin/python bench/kvrm_bench.py"""

from __future__ import annotations

import random

from kvclaims.runtime.kvrm import KvrmClaim, KvrmRequest, KvrmWorkload, kvrm_runtime


def workload(seed: int) -> KvrmWorkload:
    rng = random.Random(seed)
    B, W = 8, 32
    claims = (KvrmClaim("claim:sys", "sys", 6),)
    reqs = []
    for j in range(24):
        reuse = rng.random() < 0.5
        base = 6 if reuse else 0
        prompt = rng.randint(1, 12)
        decode = rng.randint(0, W - base - prompt)
        reqs.append(KvrmRequest(f"r{j}", rng.randint(0, 40), prompt, decode,
                                "claim:sys" if reuse else None))
    return KvrmWorkload(B, W, 160, claims, tuple(reqs), None, f"bench-{seed}")


def main() -> None:
    rows = []
    for name in ("merge_staged", "greedy_unsorted", "one_per_block"):
        groups = steps = pairs = peak = 0
        for seed in range(20):
            r = kvrm_runtime(workload(seed), coalescer=name)
            groups += sum(r.groups_per_step)
            steps += len(r.groups_per_step)
            pairs += sum(r.pairs_per_step)
            peak = max(peak, r.peak_blocks)
        rows.append((name, groups / steps, pairs / steps, peak))
    print("| coalescer | transfer groups / step | mapped blocks / step |")
    print("|---|---|---|")
    for name, g, p, _ in rows:
        print(f"| {name} | {g:.2f} | {p:.2f} |")
    peaks = [kvrm_runtime(workload(s)).peak_blocks for s in range(20)]
    print(f"\npeak physical KV blocks held (claims + active), max over 20 seeds: {max(peaks)}, "
          f"mean {sum(peaks) / len(peaks):.1f}; static over-reservation B x W = {8 * 32} "
          f"(+6 claimed = {8 * 32 + 6})")


if __name__ == "__main__":
    main()
