# SGLang's memory-cache layer (RadixCache, PagedTokenToKVPoolAllocator, MHATokenToKVPool) on CPU,
# no model, no GPU. Sourced by scripts/setup-runtime (contract in docs/sglang.md): defines
# DEFAULT_VERSION, KNOWN_VERSIONS, runtime_ok VPY VERSION and install_runtime VPY VERSION.
# Recipe (measured, shared/reference/runtimes-cpu.md): the torch CPU build first (a plain
# `pip install sglang` pulls a CUDA torch), then sglang --no-deps, then only what the imports of
# sglang.srt.mem_cache ask for.
DEFAULT_VERSION=0.5.23
KNOWN_VERSIONS="0.5.23"

# The modules the kvclaims SGLang harness imports (kvclaims.runtime.sglang).
SGLANG_PROBE_IMPORTS='
from sglang.srt.mem_cache.radix_cache import RadixCache, RadixKey
from sglang.srt.mem_cache.allocator.paged import PagedTokenToKVPoolAllocator
from sglang.srt.mem_cache.memory_pool import MHATokenToKVPool, ReqToTokenPool
from sglang.srt.disaggregation.kv_events import ZmqEventPublisher, KVEventBatch
'

SGLANG_SH_CHECKER="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../checker" && pwd)"

runtime_ok() {  # VPY VERSION: exit 0 when sglang==VERSION and its mem-cache imports are there
  PYTHONPATH="$SGLANG_SH_CHECKER${PYTHONPATH:+:$PYTHONPATH}" "$1" - "$2" "$SGLANG_PROBE_IMPORTS" <<'PY' >/dev/null 2>&1
import sys, importlib.metadata as md
assert md.version("sglang") == sys.argv[1], md.version("sglang")
assert md.version("torch").startswith("2.13.0")
import kvclaims.trace.sglang_env  # noqa: F401  (the torchvision placeholder, before SGLang)
exec(sys.argv[2])
PY
}

install_runtime() {  # VPY VERSION: install sglang==VERSION (CPU) into VPY's environment
  local vpy="$1" version="$2"
  local pip=(pip_install)  # scripts/setup-runtime's (pip's expected noise filtered)
  declare -F pip_install >/dev/null || pip=("$vpy" -m pip install --quiet --disable-pip-version-check)
  # torch==2.13.0 resolves to the local CPU build; a plain 'torch' would fetch a CUDA build.
  "${pip[@]}" torch==2.13.0
  "${pip[@]}" --no-deps "sglang==$version"
  # What importing the memory-cache layer and the KV event publisher asks for (measured one
  # ModuleNotFoundError at a time); versions as sglang 0.5.23 pins them where it pins them.
  # torchvision is not installed: the registry serves only CUDA builds, which cannot load beside
  # the CPU torch; kvclaims.trace.sglang_env puts a placeholder in its place (docs/sglang.md).
  "${pip[@]}" numpy msgspec pyzmq pydantic psutil packaging requests orjson pybase64 pillow \
    starlette tqdm ipython aiohttp dill 'transformers==5.25.0' 'apache-tvm-ffi==0.1.11' \
    sentencepiece 'compressed-tensors==0.20.1' gguf 'triton==3.8.0'
  # Those may not replace the CPU torch: check.
  "$vpy" -c 'import torch; assert torch.__version__.startswith("2.13.0"), torch.__version__'
  runtime_ok "$vpy" "$version" || {
    echo "sglang.sh: sglang==$version imports failed:" >&2
    "$vpy" -c "$SGLANG_PROBE_IMPORTS" >&2 || true
    return 1
  }
}
