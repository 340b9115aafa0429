"""Hypothesis workloads through stock vLLM and through the claim-aware plug-in (docs/model.md §6).

Stock vLLM: the checker finds silent loss exactly when vLLM evicted a block of the protected
prefix (counted independently, from vLLM's own BlockRemoved events). Plug-in: no claimed block is
ever evicted and every trace is conformant.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims.check.replay import check_events
from kvclaims.runtime.vllm.harness import ClaimDecl, VllmHarness, external_hash

BS = 16

workloads = st.fixed_dictionaries({
    "resident": st.integers(2, 8),
    "spare": st.integers(0, 12),
    "actives": st.lists(st.tuples(st.integers(1, 24), st.booleans()), min_size=1, max_size=4),
})

SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _run(w, plugin: bool):
    r = w["resident"]
    usable = r + w["spare"] + 2
    tokens = tuple(1000 + i for i in range(r * BS))
    h = VllmHarness(claims=[ClaimDecl("claim:p", tokens, prefix_id="p")], plugin=plugin,
                    num_blocks=usable + 1, max_model_len=2048, max_num_batched_tokens=2048)
    h.add_request("resident", tokens)
    h.run_until_idle(patience=2)
    for k, (blocks, abort) in enumerate(w["actives"]):
        rid = f"a{k}"
        h.add_request(rid, [100_000 * (k + 1) + i for i in range(min(blocks, usable) * BS)],
                      max_tokens=2)
        if abort:
            h.step()
            h.abort(rid)
        h.run_until_idle(patience=2)
    claimed = {external_hash(x) for x in h.claim_hashes["claim:p"]}
    evicted = sum(1 for b in h.kv_batches for e in b.events
                  if type(e).__name__ == "BlockRemoved" and set(e.block_hashes) & claimed)
    h.close()
    return h, evicted


@SETTINGS
@given(workloads)
def test_stock_silent_loss_iff_prefix_evicted(spec, w):
    h, evicted = _run(w, plugin=False)
    rep = check_events(spec, h.events, "stock")
    claim = rep.claims[0]
    assert (claim.rules["R-no-silent-loss"] == "violation") == (evicted > 0), (w, evicted)
    if evicted == 0:
        assert rep.verdict == "conformant", [f.message for f in rep.findings]


@SETTINGS
@given(workloads)
def test_plugin_never_loses_and_is_conformant(spec, w):
    h, evicted = _run(w, plugin=True)
    rep = check_events(spec, h.events, "plugin")
    assert evicted == 0
    assert rep.verdict == "conformant", (w, [f.message for f in rep.findings])
    assert rep.claims[0].victims == 0
