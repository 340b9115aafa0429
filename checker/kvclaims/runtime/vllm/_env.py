"""Process environment for running vLLM's scheduler on CPU without a model or the network.

Must be imported before vLLM: it selects the CPU platform, keeps Hugging Face offline, puts vLLM's
model-inspection cache in a private directory and quiets vLLM's startup warnings.
"""

from __future__ import annotations

import logging
import os
import tempfile

_ROOT = os.path.join(tempfile.gettempdir(), f"kvclaims-vllm-{os.getuid()}")

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("VLLM_CACHE_ROOT", os.path.join(_ROOT, "cache"))
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
# The default in 0.33.0 and 0.34.0: KV events carry 64-bit integer hashes.
os.environ.setdefault("VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES", "1")
logging.getLogger("vllm").setLevel(logging.ERROR)

# A config.json-only tiny llama: ModelConfig reads it, no weights are ever loaded.
TINY_LLAMA = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
    "num_key_value_heads": 1, "num_hidden_layers": 1, "vocab_size": 100000,
    "max_position_embeddings": 8192, "rms_norm_eps": 1e-5,
    "torch_dtype": "float16", "bos_token_id": 1, "eos_token_id": 2,
}


def tiny_model_dir() -> str:
    import json

    d = os.path.join(_ROOT, "tiny_llama")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "config.json")
    text = json.dumps(TINY_LLAMA, sort_keys=True)
    try:
        with open(path) as fh:
            if fh.read() == text:
                return d
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return d
