"""What the 60/70/80 probe (docs/model.md §8) establishes about one runtime, as data.

Every runtime harness (vLLM, SGLang) answers the probe with one :class:`ProbeFacts`; the
`kvclaims probe` command renders it (text, or one JSON object with the keys of
:data:`JSON_KEYS`, in that order). The verdict is the one the checker's decision path
(run.decide_trace) gives for the trace the harness recorded: a probe never decides a verdict of
its own. The numbers come from the runtime's real code at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

# The keys of `kvclaims probe --format json`, in the order they are written. The plug-in keys
# (shortfall_blocks, free_blocks) are written only for a claim-aware run.
JSON_KEYS = ("report_version", "runtime", "runtime_version", "verdict", "victims",
             "surviving_positions", "rerequest_hit_blocks")
PLUGIN_JSON_KEYS = ("shortfall_blocks", "free_blocks")


@dataclass(frozen=True)
class ProbeFacts:
    runtime: str                      # "vllm" | "sglang"
    runtime_version: str              # the installed package's version, read at run time
    plugin: bool                      # claim-aware extension on
    verdict: str                      # run.decide_trace over the recorded trace
    victims: int                      # claimed blocks (positions) lost
    surviving_positions: tuple[int, ...]  # claim positions still served after the active request
    rerequest_hit_blocks: int | None  # blocks the re-request of the claimed prompt hit
    shortfall_blocks: int | None = None  # plug-in refusal: blocks the active request lacked
    free_blocks: int | None = None       # plug-in refusal: free blocks when it was refused
