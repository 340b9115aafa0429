"""SGLang 0.5.23's real tree behind the fuzzer's runtime protocol (`sglang`, `sglang:plugin`).

kvclaims.runtime.interface defines the protocol (reset / submit / step / events); this adapter
implements it on the SGLang harness (harness.py: SGLang's own `RadixCache`, allocator and KV pool
on CPU, no model), with the stock tree or the claim-aware tree (plugin.py). A
:class:`~kvclaims.runtime.workload.Workload` maps onto SGLang as follows:

- ``usable`` → a pool of ``usable`` pages of 16 tokens;
- each resident prefix → a prompt of ``blocks × 16`` distinct tokens, run to completion before any
  active request, so its pages sit in SGLang's radix tree, unlocked;
- each prefix's claim → a :class:`~kvclaims.runtime.sglang.harness.SglClaim` on the prefix's
  tokens, ``required_pages = claim.required``, in the adapter's ``mode`` (default
  ``soft_priority``) when protected, ``none`` (best effort) when not; the stock tree has no claim
  interface, so the harness declares it (``declared_by = "harness"``);
- ``submit(request)`` → a request whose prompt is the reused prefix's tokens, if any, followed by
  ``sum(chunks) × 16`` fresh tokens; one output token;
- ``step()`` → one harness step; ``False`` once no request is left, or nothing was admitted for
  ``patience`` steps, or after ``max_steps``.

Workloads are kvclaims.fuzz.strategies.vllm_workloads (the same shape: a small pool, resident
prefixes with claims, requests that press on them). Importing this module never imports SGLang.
"""

from __future__ import annotations

from kvclaims.runtime.workload import Workload

# The workload's token layout and the protocol's driving are the vLLM adapter's (import-safe: it
# imports no vLLM): a block there is a page here, both 16 tokens.
from kvclaims.runtime.vllm.fuzz_adapter import (  # noqa: E402
    BLOCK_SIZE as PAGE_SIZE,
    MODES,
    ON_CONFLICT,
    VARIANTS,
    VllmAdapter,
    prefix_tokens,
)

DEFAULT_MODE = "soft_priority"


class SglangAdapter(VllmAdapter):
    """The SGLang harness behind the runtime protocol (see the module docstring). Submitting,
    stepping and closing are the vLLM adapter's (the two harnesses answer the same calls); the
    pool, the prefixes and the claims are SGLang's."""

    def reset(self, workload: Workload) -> None:
        from kvclaims.runtime.sglang.harness import SglangHarness, SglClaim

        self.close()
        workload.check()
        self._tokens = {p.prefix_id: prefix_tokens(i, p.blocks)
                        for i, p in enumerate(workload.prefixes)}
        claims = [SglClaim(p.claim.claim_id, tuple(self._tokens[p.prefix_id]),
                           mode=self.mode if p.claim.protected else "none",
                           prefix_id=p.prefix_id, required_pages=p.claim.required,
                           on_conflict=self.on_conflict)
                  for p in workload.prefixes if p.claim is not None]
        h = SglangHarness(claims=claims, plugin=self.plugin, num_pages=workload.usable,
                          page_size=PAGE_SIZE, run_id=workload.run_id)
        self.harness = h
        for p in workload.prefixes:
            h.comment(f"resident prefix {p.prefix_id}: {p.blocks} pages, request "
                      f"{p.owner_request}")
            h.add_request(p.owner_request, self._tokens[p.prefix_id])
            h.run_until_idle(max_steps=self.max_steps, patience=self.patience)
        self._submitted = self._steps = self._idle = 0
        self._events = tuple(h.events)
        self._was_reset = True

    def _pending(self) -> bool:
        return not self.harness.idle()


def fuzz_runtime(variant: str = "stock", mode: str = DEFAULT_MODE, on_conflict: str = "refuse"
                 ) -> SglangAdapter:
    """A fresh adapter for `sglang[:<variant>][,mode=…][,on_conflict=…]`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant one of {', '.join(VARIANTS)}")
    return SglangAdapter(variant == "plugin", mode, on_conflict)
