"""Process environment for SGLang's memory-cache layer on CPU without a model or the network.

Must be imported before SGLang. `sglang.srt.mem_cache.memory_pool` imports `sglang.srt.configs`,
whose multimodal model configs import `torchvision` at module level (image transforms, never
called by the KV cache). The only torchvision wheels the package registry serves are CUDA builds
(their `_C.so` needs `libtorch_cuda.so`), which cannot load beside the CPU torch. When torchvision
cannot be imported, a placeholder package stands in for it: every name in it is an
:class:`Absent` that raises on any use, so a code path that really needed torchvision fails
loudly instead of computing anything. Nothing of SGLang is replaced.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import sys
import types
import warnings
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SGLANG_DISABLE_REQUEST_LOGGING", "1")
logging.getLogger("sglang").setLevel(logging.ERROR)
# SGLang's quantization modules warn at import that they need CUDA (AWQ, GGUF): true, irrelevant
# to the memory cache, and noise on every command.
warnings.filterwarnings("ignore", category=UserWarning, module=r"sglang\.")

PLACEHOLDER_MODULES = ("torchvision", "torchvision.transforms",
                       "torchvision.transforms.functional", "torchvision.io")


class Absent:
    """A torchvision name on a machine without a CPU torchvision: any use raises."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> Absent:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Absent(f"{self._name}.{attr}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{self._name} was called, but torchvision is absent here "
                           "(kvclaims.trace.sglang_env: CPU-only, no CUDA torchvision)")

    def __repr__(self) -> str:
        return f"<absent {self._name}>"


def _placeholder(name: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__path__ = []  # a package, so submodule imports resolve to the placeholders

    def attr_of(attr: str) -> Absent:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Absent(f"{name}.{attr}")

    mod.__getattr__ = attr_of  # type: ignore[method-assign]
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
    mod.__kvclaims_placeholder__ = True
    return mod


def _install_placeholders() -> bool:
    if "torchvision" in sys.modules:
        return bool(getattr(sys.modules["torchvision"], "__kvclaims_placeholder__", False))
    usable = False
    if importlib.util.find_spec("torchvision") is not None:
        try:
            import torchvision  # noqa: F401

            usable = True
        except Exception:  # a CUDA build beside the CPU torch
            for k in [k for k in sys.modules if k.split(".")[0] == "torchvision"]:
                del sys.modules[k]
    if usable:
        return False
    # transformers decides once (lru_cache) whether torchvision is there: let it see the truth
    # before the placeholders exist, so it never routes work to them.
    try:
        from transformers.utils import import_utils

        import_utils.is_torchvision_available()
    except ImportError:
        pass
    for name in PLACEHOLDER_MODULES:
        sys.modules[name] = _placeholder(name)
    return True


TORCHVISION_PLACEHOLDER = _install_placeholders()
