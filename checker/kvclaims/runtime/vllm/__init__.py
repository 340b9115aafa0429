"""Real vLLM (0.33.0, 0.34.0) on CPU as a trace producer (docs/model.md §5, §8; ARCHITECTURE.md).

`harness` drives vLLM's own `Scheduler` + `KVCacheManager` + `BlockPool` (no model, no GPU) and
records a trace in the reference telemetry vocabulary; `scheduler_plugin` is a claim-aware
`Scheduler` subclass loaded through vLLM's own `scheduler_cls` setting; `probe` runs the 60/70/80
workload through both; `adapter` is the one module where the supported vLLM versions differ.
Needs vLLM installed (scripts/setup-runtime vllm==VERSION); importing this package alone does not
import vLLM.
"""

PLUGIN_QUALNAME = "kvclaims.runtime.vllm.scheduler_plugin.ClaimAwareScheduler"
STOCK_QUALNAME = "vllm.v1.core.sched.scheduler.Scheduler"
