"""SGLang's own page hashes for a prompt, as its KV events carry them (docs/sglang.md).

The input side needs them to turn a claim manifest's `token_ids` into the hashes an SGLang KV
event stream names (trace/vllm_events.load_manifest with `runtime = "sglang"`), and the SGLang
harness and plug-in (runtime/sglang/) to know which pages a claim covers. Needs SGLang installed;
computes nothing of its own: SGLang's RadixCache and its event recorder do the hashing.
"""

from __future__ import annotations

from kvclaims.trace import sglang_env  # noqa: F401  (before SGLang: the torchvision placeholder)

from array import array  # noqa: E402
from typing import Sequence  # noqa: E402

from sglang.srt.mem_cache.base_prefix_cache import InsertParams  # noqa: E402
from sglang.srt.mem_cache.radix_cache import RadixCache, RadixKey  # noqa: E402

PAGE_SIZE = 16


def radix_key(tokens: Sequence[int], cache_salt: str | None = None) -> RadixKey:
    return RadixKey(array("q", tokens), cache_salt=cache_salt)


def page_hashes(tokens: Sequence[int], page_size: int = PAGE_SIZE,
                cache_salt: str | None = None) -> list[int]:
    """The page hashes SGLang publishes for a prompt (one per full page), computed by SGLang
    itself: a scratch `RadixCache` (no pools) inserts the tokens and its own
    `KVCacheEventRecorder` hashes them; the `BlockStored` hashes are read back."""
    scratch = RadixCache.create_simulated(page_size=page_size, enable_kv_cache_events=True)
    scratch.insert(InsertParams(key=radix_key(tokens, cache_salt)))
    out: list[int] = []
    for e in scratch.take_events():
        if type(e).__name__ == "BlockStored":
            out.extend(e.block_hashes)
    return out
