"""Hypothesis strategies for KV-RM workloads: mixed lengths, asynchronous EOS, claims of each mode."""

from __future__ import annotations

from hypothesis import strategies as st

from kvclaims.runtime.kvrm import DEMOTABLE, EXPIRING, HARD, KvrmClaim, KvrmRequest, KvrmWorkload


@st.composite
def workloads(draw: st.DrawFn) -> KvrmWorkload:
    W = draw(st.integers(4, 10))
    B = draw(st.integers(1, 4))
    usable = draw(st.integers(W, 3 * W))
    claims = []
    for i in range(draw(st.integers(0, 2))):
        mode = draw(st.sampled_from((HARD, DEMOTABLE, EXPIRING)))
        claims.append(KvrmClaim(f"claim:{i}", f"p{i}", draw(st.integers(1, max(1, W // 3))),
                                mode, draw(st.integers(1, 6)) if mode == EXPIRING else None))
    if sum(c.blocks for c in claims) > usable:
        claims = claims[:1]
    reqs = []
    for j in range(draw(st.integers(1, 6))):
        reuse = draw(st.sampled_from([None] + [c for c in claims]))
        base = reuse.blocks if reuse else 0
        prompt = draw(st.integers(1, max(1, W - base)))
        decode = draw(st.integers(0, max(0, W - base - prompt)))
        reqs.append(KvrmRequest(f"r{j}", draw(st.integers(0, 5)), prompt, decode,
                                reuse.claim_id if reuse else None))
    window = draw(st.one_of(st.none(), st.integers(1, 4)))
    return KvrmWorkload(B, W, usable, tuple(claims), tuple(reqs), window)
