"""vLLM's real scheduler behind the fuzzer's runtime protocol (`vllm:stock`, `vllm:plugin`).

kvclaims.runtime.interface defines the protocol (reset / submit / step / events); this adapter
implements it on top of the harness (harness.py: vLLM's own `Scheduler` + `KVCacheManager` on
CPU, no model), with stock vLLM or with the claim-aware plug-in (scheduler_plugin.py) as the
scheduler class. A :class:`~kvclaims.runtime.workload.Workload` maps onto vLLM as follows:

- ``usable`` → ``num_gpu_blocks = usable + 1`` (block 0 is vLLM's null block), block size 16;
- each resident prefix → a prompt of ``blocks × 16`` distinct tokens, run to completion (one
  output token) before any active request, so its blocks sit in vLLM's prefix cache, freed;
- each prefix's claim → a :class:`~kvclaims.runtime.vllm.harness.ClaimDecl` declared before the
  first request, on the prefix's tokens, ``required_blocks = claim.required``; its mode is the
  adapter's ``mode`` (default ``soft_priority``) when the claim is protected, ``none`` (best
  effort) when it is not. Stock vLLM has no claim interface, so the harness writes the declared
  claim's acceptance and materialization itself (``declared_by = "harness"``);
- ``submit(request)`` → vLLM's ``add_request`` at once: the request's prompt is the reused
  prefix's tokens (``reuses``), if any, followed by ``sum(chunks) × 16`` fresh tokens; one output
  token. Chunking is vLLM's own; ``attention`` and the other MicroRuntime-only fields are ignored;
- ``step()`` → one ``schedule()`` / ``update_from_output()`` round; ``False`` once no request is
  left, or nothing was scheduled for ``patience`` rounds in a row (a request vLLM keeps waiting;
  the plug-in leaves none waiting behind claims: soft ones give way, a deferral is refused within
  its declared bound, docs/model.md §6 R-yield / R-progress), or after ``max_steps`` rounds.

Why ``soft_priority`` by default: its rule bundle has R-no-silent-loss but not R-hard / R-explicit,
so what the checker finds on stock vLLM is exactly the unreported loss of the resident prefix
(with ``hard_exclude`` stock vLLM also breaks R-hard and R-explicit on the same eviction).
``vllm:plugin,mode=hard_exclude`` exercises the plug-in's refusal with attribution.

The harness (and so vLLM) is imported on first use: importing this module never needs vLLM;
:func:`kvclaims.runtime.interface.resolve` says so when it is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kvclaims.runtime.workload import RequestSpec, Workload
from kvclaims.trace.model import Event

BLOCK_SIZE = 16
DEFAULT_MODE = "soft_priority"
# Protection modes a declared claim can take here (docs/model.md §2 spellings the harness and plug-in use).
MODES = ("soft_priority", "hard_exclude", "demotable", "none")
ON_CONFLICT = ("refuse", "defer", "demote")
VARIANTS = ("stock", "plugin")
MAX_MODEL_LEN = 4096
MAX_BATCHED_TOKENS = 2048


def prefix_tokens(index: int, blocks: int) -> list[int]:
    """The tokens of the `index`-th resident prefix: distinct from every other prompt's."""
    return [1_000 + 100_000 * index + k for k in range(blocks * BLOCK_SIZE)]


def fresh_tokens(index: int, blocks: int) -> list[int]:
    """The fresh tokens of the `index`-th submitted active request."""
    return [10_000_000 + 100_000 * index + k for k in range(blocks * BLOCK_SIZE)]


class VllmAdapter:
    """The vLLM harness behind the runtime protocol (see the module docstring)."""

    def __init__(self, plugin: bool, mode: str = DEFAULT_MODE, on_conflict: str = "refuse",
                 max_steps: int = 64, patience: int = 3):
        if mode not in MODES:
            raise ValueError(f"mode one of {', '.join(MODES)}")
        if on_conflict not in ON_CONFLICT:
            raise ValueError(f"on_conflict one of {', '.join(ON_CONFLICT)}")
        self.plugin = plugin
        self.mode = mode
        self.on_conflict = on_conflict
        self.max_steps = max_steps
        self.patience = patience
        self.harness: Any = None  # the live VllmHarness between reset() and the end of a run
        self.last_harness: Any = None  # the previous run's (closed) harness, for inspection
        self._tokens: dict[str, list[int]] = {}
        self._submitted = 0
        self._steps = 0
        self._idle = 0
        self._events: tuple[Event, ...] = ()
        self._was_reset = False

    # ---- the protocol --------------------------------------------------------------------
    def reset(self, workload: Workload) -> None:
        from kvclaims.runtime.vllm.harness import ClaimDecl, VllmHarness

        self.close()
        workload.check()
        self._tokens = {p.prefix_id: prefix_tokens(i, p.blocks)
                        for i, p in enumerate(workload.prefixes)}
        claims = [ClaimDecl(p.claim.claim_id, tuple(self._tokens[p.prefix_id]),
                            mode=self.mode if p.claim.protected else "none",
                            prefix_id=p.prefix_id, required_blocks=p.claim.required,
                            on_conflict=self.on_conflict)
                  for p in workload.prefixes if p.claim is not None]
        h = VllmHarness(claims=claims, plugin=self.plugin, num_blocks=workload.usable + 1,
                        block_size=BLOCK_SIZE, max_model_len=MAX_MODEL_LEN,
                        max_num_batched_tokens=MAX_BATCHED_TOKENS, run_id=workload.run_id)
        self.harness = h
        for p in workload.prefixes:
            h.comment(f"resident prefix {p.prefix_id}: {p.blocks} blocks, request "
                      f"{p.owner_request}")
            h.add_request(p.owner_request, self._tokens[p.prefix_id])
            h.run_until_idle(max_steps=self.max_steps, patience=self.patience)
        self._submitted = self._steps = self._idle = 0
        self._events = tuple(h.events)
        self._was_reset = True

    def submit(self, request: RequestSpec) -> None:
        h = self._live()
        tokens = list(self._tokens.get(request.reuses, ())) if request.reuses else []
        tokens += fresh_tokens(self._submitted, request.total)
        self._submitted += 1
        h.comment(f"active request {request.request_id}: {request.total} fresh blocks"
                  + (f" after prefix {request.reuses}" if request.reuses else ""))
        h.add_request(request.request_id, tokens)

    def step(self) -> bool:
        if self.harness is None and self._was_reset:
            return False  # already idle (the harness is closed once a run is done)
        h = self._live()
        if not self._pending():
            return self._done()
        rec = h.step()
        self._steps += 1
        self._idle = 0 if rec.scheduled else self._idle + 1
        self._events = tuple(h.events)
        if not self._pending() or self._idle >= self.patience or self._steps >= self.max_steps:
            return self._done()
        return True

    def events(self) -> Sequence[Event]:
        return self._events if self.harness is None else tuple(self.harness.events)

    # ---- helpers -------------------------------------------------------------------------
    def close(self) -> None:
        """Shut the harness's scheduler down; its records stay readable as `last_harness`."""
        if self.harness is not None:
            self._events = tuple(self.harness.events)
            self.harness.close()
            self.last_harness, self.harness = self.harness, None

    def _live(self) -> Any:
        if self.harness is None:
            raise RuntimeError("reset() before submit()/step()")
        return self.harness

    def _pending(self) -> bool:
        running, waiting = self.harness.scheduler.get_request_counts()
        return running + waiting > 0

    def _done(self) -> bool:
        self.close()
        return False


def fuzz_runtime(variant: str, mode: str = DEFAULT_MODE, on_conflict: str = "refuse"
                 ) -> VllmAdapter:
    """A fresh adapter for `vllm:<variant>[,mode=…][,on_conflict=…]`."""
    if variant not in VARIANTS:
        raise ValueError(f"variant one of {', '.join(VARIANTS)}")
    return VllmAdapter(variant == "plugin", mode, on_conflict)
