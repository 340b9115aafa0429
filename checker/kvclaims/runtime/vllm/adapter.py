"""The one place where the vLLM versions kvclaims drives differ (0.33.0, 0.34.0).

The harness, the claim-aware scheduler, the connector and the restore witness run unchanged on
every version in :data:`SUPPORTED_VERSIONS`; what changed between them is answered here, and
nowhere else, by looking at what the installed vLLM has (never by comparing version strings
outside this module):

- **platform set-up** (0.34.0): building a `VllmConfig` on an x86 CPU runs
  `CpuPlatform.check_and_update_config`, which from 0.34.0 raises unless a CPU Triton build is
  importable ("vLLM on x86 CPUs requires Triton (triton-cpu)"). Triton is only needed by the CPU
  model runner's kernels; the harness runs no model runner (docs/vllm.md: scheduler-level code
  only). :func:`platform_setup` therefore reports Triton as present to that one check, for the
  duration of the config's construction, and restores vLLM's own value afterwards. 0.33.0 makes
  no such check and is left as it is.
- **`ModelRunnerOutput`** (0.34.0): its `req_id_to_index` field is gone (vLLM derives the index
  from `req_ids`). :func:`model_runner_output` passes it only to a vLLM whose dataclass has it.

Everything else the harness uses (Scheduler, KVCacheManager, BlockPool, the KV event classes and
their wire format, KVConnectorBase_V1's hooks) is the same on both versions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
from collections.abc import Iterator, Sequence
from typing import Any

# The vLLM versions kvclaims is tested against (scripts/runtimes/vllm.sh: KNOWN_VERSIONS).
SUPPORTED_VERSIONS = ("0.33.0", "0.34.0")


def installed_version() -> str:
    """The installed vLLM distribution's version (its metadata, read at run time)."""
    return importlib.metadata.version("vllm")


def _cpu_platform_requires_triton() -> bool:
    """Whether this vLLM's CPU platform set-up refuses an x86 CPU without Triton (0.34.0 on)."""
    import inspect

    from vllm.platforms.cpu import CpuPlatform

    try:
        source = inspect.getsource(CpuPlatform.check_and_update_config)
    except (OSError, TypeError):  # pragma: no cover - source-less install: assume the check
        return True
    return "HAS_TRITON" in source


@contextlib.contextmanager
def platform_setup() -> Iterator[None]:
    """Around `VllmConfig(...)`: let a model-free, scheduler-level config be built on an x86 CPU
    without a CPU Triton build (see the module docstring); vLLM's own value is restored on exit."""
    import vllm.triton_utils as tu

    if tu.HAS_TRITON or not _cpu_platform_requires_triton():
        yield
        return
    saved = tu.HAS_TRITON
    tu.HAS_TRITON = True
    try:
        yield
    finally:
        tu.HAS_TRITON = saved


def _has_req_id_to_index() -> bool:
    from vllm.v1.outputs import ModelRunnerOutput

    return any(f.name == "req_id_to_index" for f in dataclasses.fields(ModelRunnerOutput))


def model_runner_output(req_ids: Sequence[str], sampled: Sequence[Sequence[int]]) -> Any:
    """A model-free `ModelRunnerOutput` for one step: `sampled[i]` is what request
    `req_ids[i]` sampled (empty while its prefill is not complete)."""
    from vllm.v1.outputs import ModelRunnerOutput

    kw: dict[str, Any] = {"req_ids": list(req_ids), "sampled_token_ids": [list(s) for s in sampled]}
    if _has_req_id_to_index():
        kw["req_id_to_index"] = {r: i for i, r in enumerate(req_ids)}
    return ModelRunnerOutput(**kw)
