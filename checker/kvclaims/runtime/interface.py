"""The runtime protocol the fuzzer drives (ARCHITECTURE.md: runtimes produce events; docs/model.md §2, §5).

A runtime under test is anything with four methods:

- ``reset(workload)`` — a fresh pool of ``workload.usable`` blocks holding ``workload.prefixes``
  (with their claims); ``workload.requests`` is ignored, requests come through ``submit``;
- ``submit(request)`` — queue an active request (:class:`~kvclaims.runtime.workload.RequestSpec`);
- ``step()`` — make progress; return ``False`` once nothing is left to do;
- ``events()`` — every event emitted since ``reset``, in order, as :class:`~kvclaims.trace.model.Event`
  (spec event names and fields, as the checker reads them).

The MicroRuntime implements it through :class:`MicroAdapter`, the vLLM harness through
kvclaims.runtime.vllm.fuzz_adapter (``vllm:stock|plugin``, needs vLLM: scripts/setup-runtime); KV-RM will
implement it in its own module. To fuzz your own runtime, write a class with these methods and a
zero-argument factory, then name it ``py:your.module:factory`` wherever a runtime is asked for
(``kvclaims fuzz --runtime py:your.module:factory``, ``kvclaims.pytest_plugin.fuzz_runtime``):

    class MyRuntime:
        def reset(self, workload): self.client = start_pool(workload.usable, workload.prefixes)
        def submit(self, request): self.client.enqueue(request)
        def step(self): return self.client.tick()
        def events(self): return [Event(e["event"], e) for e in self.client.telemetry()]

    def factory() -> MyRuntime: return MyRuntime()
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

from kvclaims.runtime import policies as P
from kvclaims.runtime.micro import run
from kvclaims.runtime.workload import RequestSpec, Workload
from kvclaims.trace.model import Event


@runtime_checkable
class Runtime(Protocol):
    def reset(self, workload: Workload) -> None: ...
    def submit(self, request: RequestSpec) -> None: ...
    def step(self) -> bool: ...
    def events(self) -> Sequence[Event]: ...


class RuntimeUnavailable(Exception):
    """The named runtime does not exist (yet) or cannot start here: a usage error (exit 2)."""


@dataclass(frozen=True, slots=True)
class RuntimeSpec:
    """A parsed ``--runtime`` name and the factory it denotes."""

    name: str
    factory: Callable[[], Runtime]
    # The runtime's default workload strategy, by name: a zero-argument function of
    # kvclaims.fuzz.strategies returning a Hypothesis strategy of Workloads (the fuzzer, above
    # the runtimes, looks it up); None: kvclaims.fuzz.strategies.workloads().
    workloads: str | None = None


class MicroAdapter:
    """The MicroRuntime behind the protocol: each ``step`` serves the next submitted request.

    The MicroRuntime runs a whole workload at once and is deterministic, so the events after k
    steps are those of the workload with the first k requests (a prefix of the next run's).
    """

    def __init__(self, policy: P.Policy, faults: Sequence[str] = ()):
        self.policy = policy
        self.faults = tuple(faults)
        self._base: Workload | None = None
        self._queued: list[RequestSpec] = []
        self._served = 0
        self._events: tuple[Event, ...] = ()
        self.fired: frozenset[str] = frozenset()

    def reset(self, workload: Workload) -> None:
        self._base = replace(workload, requests=())
        self._queued = []
        self._served = 0
        self._rerun()

    def submit(self, request: RequestSpec) -> None:
        self._queued.append(request)

    def step(self) -> bool:
        if self._served >= len(self._queued):
            return False
        self._served += 1
        self._rerun()
        return self._served < len(self._queued)

    def events(self) -> Sequence[Event]:
        return self._events

    def _rerun(self) -> None:
        if self._base is None:
            raise RuntimeError("reset() before submit()/step()")
        wl = replace(self._base, requests=tuple(self._queued[: self._served]))
        result = run(wl, self.policy, self.faults)
        self._events, self.fired = result.events, result.fired


def drive(runtime: Runtime, workload: Workload) -> Sequence[Event]:
    """Run `workload` through any runtime: reset with its pool and prefixes, submit its requests
    in order, step until idle, return the events."""
    runtime.reset(workload)
    for r in workload.requests:
        runtime.submit(r)
    while runtime.step():
        pass
    return runtime.events()


def _micro(arg: str) -> RuntimeSpec:
    """``micro:<policy>[,key=value…][+fault…]``, e.g. ``micro:hard_exclude,defer_attempts=2+wrong_free``."""
    body, *faults = arg.split("+")
    name, *params = body.split(",")
    kw: dict[str, object] = {}
    for p in params:
        key, _, value = p.partition("=")
        if key not in ("defer_attempts", "reserve_blocks", "free_order", "declared_mode"):
            raise RuntimeUnavailable(f"micro: unknown policy parameter {key!r}")
        kw[key] = int(value) if key in ("defer_attempts", "reserve_blocks") else value
    try:
        policy = P.Policy(name, **kw)  # type: ignore[arg-type]
    except (ValueError, TypeError) as err:
        raise RuntimeUnavailable(f"micro: {err}") from None
    for f in faults:
        if f not in P.FAULTS:
            raise RuntimeUnavailable(f"micro: unknown fault {f!r}; one of {', '.join(P.FAULTS)}")
        if name not in P.FAULTS[f].policies:
            raise RuntimeUnavailable(f"micro: fault {f} applies to "
                                     f"{', '.join(P.FAULTS[f].policies)}, not {name}")
    return RuntimeSpec(f"micro:{arg}", lambda: MicroAdapter(policy, faults))


def _module_factory(module: str, attr: str, *args: str) -> Callable[[], Runtime]:
    try:
        mod = importlib.import_module(module)
    except Exception as err:  # noqa: BLE001 - any failure while importing the user's module
        raise RuntimeUnavailable(f"cannot import {module}: {type(err).__name__}: {err}") from None
    make = getattr(mod, attr, None)
    if make is None:
        raise RuntimeUnavailable(f"{module} has no {attr}") from None
    return lambda: make(*args)


# Runtimes that will implement the protocol in their own module, with a `fuzz_runtime(variant)`.
_PLANNED = {"kvrm": ("kvclaims.runtime.kvrm", ("",))}

VLLM_MISSING = ("vLLM is not installed in this environment: run scripts/setup-runtime "
                "vllm==VERSION and use that environment's bin/kvclaims")


def vllm_installed() -> bool:
    """Whether the vLLM distribution is installed here (by its metadata: a directory named `vllm`
    on sys.path, such as tests/vllm, is not vLLM)."""
    try:
        importlib.metadata.version("vllm")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _vllm(name: str, arg: str) -> RuntimeSpec:
    """``vllm[:<stock|plugin>[,mode=M][,on_conflict=C]]``: the installed vLLM's real scheduler
    (0.34.0 or 0.33.0; bare ``vllm`` is ``vllm:stock``; stock, or the claim-aware plug-in) through kvclaims.runtime.vllm.fuzz_adapter; vLLM is imported here, lazily,
    so that everything else works without it."""
    from kvclaims.runtime.vllm import fuzz_adapter as fa  # no vLLM import at module level

    variant, *params = arg.split(",")
    variant = variant or fa.VARIANTS[0]  # bare `vllm`: stock
    if variant not in fa.VARIANTS:
        raise RuntimeUnavailable(f"vllm: variant one of {', '.join(fa.VARIANTS)}")
    kw: dict[str, str] = {}
    for p in params:
        key, _, value = p.partition("=")
        allowed = {"mode": fa.MODES, "on_conflict": fa.ON_CONFLICT}.get(key)
        if allowed is None:
            raise RuntimeUnavailable(f"vllm: unknown parameter {key!r}; mode=… or on_conflict=…")
        if value not in allowed:
            raise RuntimeUnavailable(f"vllm: {key} one of {', '.join(allowed)}")
        kw[key] = value
    if not vllm_installed():
        raise RuntimeUnavailable(VLLM_MISSING)
    try:
        importlib.import_module("kvclaims.runtime.vllm.harness")
    except ImportError as err:
        raise RuntimeUnavailable(f"vLLM could not be imported here ({err}); "
                                 "run scripts/setup-runtime vllm==VERSION and use that "
                                 "environment's bin/kvclaims") from None

    return RuntimeSpec(name, lambda: fa.fuzz_runtime(variant, **kw), "vllm_workloads")


def _sglang(name: str, arg: str) -> RuntimeSpec:
    """``sglang[:<stock|plugin>][,mode=M][,on_conflict=C]``: SGLang's real radix tree (stock, or
    the claim-aware tree) through kvclaims.runtime.sglang.fuzz_adapter; SGLang is imported here,
    lazily (it lives in its own environment: scripts/setup-runtime sglang==0.5.23)."""
    from kvclaims.runtime.sglang import fuzz_adapter as fa  # no SGLang import at module level

    variant, *params = arg.split(",") if arg else ("stock",)
    if variant not in fa.VARIANTS:
        raise RuntimeUnavailable(f"sglang: variant one of {', '.join(fa.VARIANTS)}")
    kw: dict[str, str] = {}
    for p in params:
        key, _, value = p.partition("=")
        allowed = {"mode": fa.MODES, "on_conflict": fa.ON_CONFLICT}.get(key)
        if allowed is None:
            raise RuntimeUnavailable(f"sglang: unknown parameter {key!r}; mode=… or on_conflict=…")
        if value not in allowed:
            raise RuntimeUnavailable(f"sglang: {key} one of {', '.join(allowed)}")
        kw[key] = value
    hint = "run scripts/setup-runtime sglang==0.5.23 and use the bin/kvclaims it prints"
    try:
        importlib.metadata.version("sglang")
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeUnavailable(f"SGLang is not installed in this environment: {hint}") from None
    try:
        importlib.import_module("kvclaims.runtime.sglang.harness")
    except ImportError as err:
        raise RuntimeUnavailable(f"SGLang could not be imported here ({err}); {hint}") from None

    # The vLLM workload strategy fits SGLang's geometry too (token prompts, pressure).
    return RuntimeSpec(name, lambda: fa.fuzz_runtime(variant, **kw), "vllm_workloads")


def resolve(name: str) -> RuntimeSpec:
    """Parse a runtime name: ``micro:…``, ``vllm:stock|plugin``, ``kvrm``, ``py:module:factory``.
    Raises RuntimeUnavailable (a usage error) for unknown or not-yet-available runtimes."""
    kind, _, arg = name.partition(":")
    if kind == "micro":
        return _micro(arg)
    if kind == "vllm":
        return _vllm(name, arg)
    if kind == "sglang":
        return _sglang(name, arg)
    if kind == "py":
        module, _, attr = arg.rpartition(":")
        if not module or not attr:
            raise RuntimeUnavailable("py:<module>:<factory> expected, e.g. py:mypkg.fuzz:factory")
        return RuntimeSpec(name, _module_factory(module, attr))
    if kind in _PLANNED:
        module, variants = _PLANNED[kind]
        if arg not in variants:
            raise RuntimeUnavailable(f"{kind}: variant one of {', '.join(v or '(none)' for v in variants)}")
        try:
            mod = importlib.import_module(module)
        except ImportError:
            raise RuntimeUnavailable(f"runtime {name} is not available yet ({module} is not "
                                     "installed); use micro:<policy>[+fault]") from None
        if not hasattr(mod, "fuzz_runtime"):
            raise RuntimeUnavailable(f"runtime {name} is not available yet ({module} does not "
                                     "implement the fuzz runtime interface); use "
                                     "micro:<policy>[+fault]")
        args = (arg,) if arg else ()
        return RuntimeSpec(name, _module_factory(module, "fuzz_runtime", *args))
    raise RuntimeUnavailable(f"unknown runtime {name!r}; expected micro:<policy>[+fault], "
                             "vllm:<stock|plugin>, sglang[:plugin], kvrm or py:<module>:<factory>")
