"""Real vLLM 0.33 on CPU as a trace producer (docs/model.md §5, §8; ARCHITECTURE.md runtimes).

`harness` drives vLLM's own `Scheduler` + `KVCacheManager` + `BlockPool` (no model, no GPU) and
records a trace in the reference telemetry vocabulary; `scheduler_plugin` is a claim-aware
`Scheduler` subclass loaded through vLLM's own `scheduler_cls` setting; `probe` runs the 60/70/80
workload through both. Needs vLLM 0.33.0 (scripts/setup-vllm); importing this package alone does
not import vLLM.
"""

VLLM_VERSION = "0.33.0"
PLUGIN_QUALNAME = "kvclaims.runtime.vllm.scheduler_plugin.ClaimAwareScheduler"
STOCK_QUALNAME = "vllm.v1.core.sched.scheduler.Scheduler"
