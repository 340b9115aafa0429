"""vLLM's own block hashes, as a KV event stream carries them (docs/vllm.md; docs/model.md §5).

A claim manifest may name a claim's blocks by token ids; the stream importer
(kvclaims.trace.vllm_events) and the vLLM harness (kvclaims.runtime.vllm) both hash them here,
with vLLM's own block hasher, so the input side needs no runtime. Needs vLLM installed; importing
this module alone does not import vLLM (each function imports it, after
:func:`vllm_environment`).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

# vLLM's private scratch directory for this user (its cache; the harness's tiny model config).
SCRATCH = os.path.join(tempfile.gettempdir(), f"kvclaims-vllm-{os.getuid()}")


def vllm_environment() -> None:
    """The process environment vLLM reads when it is imported: the CPU platform, Hugging Face
    offline, a private cache, quiet start-up, and 64-bit integer block hashes (the default of
    vLLM 0.33.0). Defaults only: what the caller set stays."""
    os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("VLLM_CACHE_ROOT", os.path.join(SCRATCH, "cache"))
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES", "1")
    logging.getLogger("vllm").setLevel(logging.ERROR)


def make_block_hasher(block_size: int, algo: str = "sha256") -> Callable[[Any], list[Any]]:
    """vLLM's own request block hasher, initialised as EngineCore does (v1/engine/core.py)."""
    vllm_environment()
    from vllm.utils.hashing import get_hash_fn_by_name
    from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash

    hash_fn = get_hash_fn_by_name(algo)
    init_none_hash(hash_fn)
    return get_request_block_hasher(block_size, hash_fn)


def chain_hashes(tokens: Sequence[int], hasher: Callable[[Any], list[Any]],
                 cache_salt: str | None = None) -> list[Any]:
    """The chained block hashes vLLM computes for a prompt (one per full block)."""
    vllm_environment()
    from vllm.sampling_params import SamplingParams
    from vllm.v1.request import Request

    req = Request("kvclaims-hash-probe", list(tokens), SamplingParams(max_tokens=1), None,
                  block_hasher=hasher, cache_salt=cache_salt)
    return list(req.block_hashes)


def external_hash(h: Any) -> Any:
    """A block hash as it appears in KV events (64-bit int by default)."""
    vllm_environment()
    from vllm.v1.core.kv_cache_utils import maybe_convert_block_hash

    return maybe_convert_block_hash(h)


def hash_text(h: Any) -> str:
    """A KV-event block hash as the trace's `block_hash` string: decimal for the default 64-bit
    integers, hex for raw digests (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES=0)."""
    return h.hex() if isinstance(h, (bytes, bytearray)) else str(h)
