# vLLM for scripts/setup-runtime (sourced): scheduler-level code on CPU, no model, no GPU.
# Recipe (docs/vllm.md): torch 2.13.0's local CPU build, vllm --no-deps, then the packages its
# scheduler-level imports ask for. vLLM pins torch 2.14 (CUDA) and lark==1.2.2, hence its own venv.
# pip prints version-conflict warnings (torch, fastapi, llguidance, certifi): expected, harmless.
DEFAULT_VERSION=0.34.0
KNOWN_VERSIONS="0.33.0 0.34.0"

runtime_ok() {  # VPY VERSION: exit 0 when that vLLM and its scheduler-level imports are there
  "$1" - "$2" <<'PY' >/dev/null 2>&1
import sys, importlib.metadata as md, importlib.util as iu
assert md.version("vllm") == sys.argv[1]
assert md.version("torch").startswith("2.13.0")
for name in ("msgspec", "zmq", "cachetools", "transformers", "einops", "xgrammar", "cbor2"):
    assert iu.find_spec(name) is not None, name
from vllm.v1.core.sched.scheduler import Scheduler
PY
}

install_runtime() {  # VPY VERSION
  local vpy="$1" version="$2"
  # torch==2.13.0 resolves to the local CPU build; a plain 'torch' would fetch a CUDA build.
  pip_install torch==2.13.0
  pip_install --no-deps "vllm==$version"
  pip_install msgspec cachetools numpy psutil pydantic pyzmq regex cloudpickle packaging urllib3 \
    cbor2 'transformers>=5.16.1,<5.21' aiohttp requests openai-harmony openai pillow pybase64 \
    uvloop py-cpuinfo prometheus_client xgrammar==0.2.8 fastapi partial-json-parser llguidance \
    einops
}
