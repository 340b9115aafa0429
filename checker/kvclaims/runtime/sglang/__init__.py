"""Real SGLang 0.5.23 memory-cache code on CPU as a trace producer (docs/sglang.md; docs/model.md
§5, §8).

`harness` drives SGLang's own `RadixCache` with its own `PagedTokenToKVPoolAllocator` and
`MHATokenToKVPool` (no model, no GPU; the scheduler loop around them is the harness's) and records
a trace in the reference telemetry vocabulary; `plugin` is a claim-aware `RadixCache` subclass the
harness is configured with (`tree_cache_cls`); `probe` runs the 60/70/80 workload through both;
`fuzz_adapter` runs Hypothesis workloads for `kvclaims fuzz --runtime sglang[:plugin]`. Needs SGLang
(`scripts/setup-runtime sglang==0.5.23`); importing this package alone does not import SGLang.
"""

SGLANG_VERSION = "0.5.23"
PLUGIN_QUALNAME = "kvclaims.runtime.sglang.plugin.ClaimAwareRadixCache"
STOCK_QUALNAME = "sglang.srt.mem_cache.radix_cache.RadixCache"
