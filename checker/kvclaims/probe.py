"""`kvclaims probe RUNTIME`: run a runtime's 60/70/80 probe (docs/model.md §8) and show its facts.

This module decides nothing: it finds the runtime's harness, `kvclaims.runtime.<RUNTIME>.probe`,
calls its `probe_facts(plugin)` (a :class:`~kvclaims.runtime.probe_facts.ProbeFacts`, whose verdict
the harness took from run.decide_trace over the trace it recorded) and renders it, as text or as
one JSON object with the keys of JSON_KEYS (+ PLUGIN_JSON_KEYS for the claim-aware run). A runtime
that is not installed in this environment is a usage error naming scripts/setup-runtime, never a
traceback. Exit code: the verdict's, as for `kvclaims check` (0 conformant, 1 violation,
3 inconclusive), 2 for a usage error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import re
from typing import Any

from kvclaims.runtime.probe_facts import JSON_KEYS, PLUGIN_JSON_KEYS, ProbeFacts

_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


class ProbeUnavailable(Exception):
    """The runtime has no probe, or is not installed in this environment (a usage error)."""


def probe_module_name(runtime: str) -> str:
    return f"kvclaims.runtime.{runtime}.probe"


def _installed(runtime: str) -> bool:
    """The runtime's distribution is installed here (by its metadata: a directory of that name
    on sys.path, such as tests/vllm, is not the runtime)."""
    try:
        importlib.metadata.version(runtime)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _setup_hint(runtime: str) -> str:
    return (f"run `scripts/setup-runtime {runtime}==VERSION` and use the bin/kvclaims of the "
            "environment it prints")


def load_probe(runtime: str) -> Any:
    """The runtime's `probe_facts` function; ProbeUnavailable when there is none or the runtime
    is not installed here."""
    if not _NAME.match(runtime):
        raise ProbeUnavailable(f"probe: {runtime!r} is not a runtime name")
    try:
        found = importlib.util.find_spec(probe_module_name(runtime)) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise ProbeUnavailable(f"probe: no probe for runtime {runtime!r} "
                               f"(kvclaims.runtime.{runtime}.probe does not exist)")
    if not _installed(runtime):
        raise ProbeUnavailable(f"probe: {runtime} is not installed in this environment: "
                               + _setup_hint(runtime))
    try:
        mod = importlib.import_module(probe_module_name(runtime))
    except ImportError as err:
        raise ProbeUnavailable(f"probe: {runtime} could not be imported here ({err}): "
                               + _setup_hint(runtime)) from None
    fn = getattr(mod, "probe_facts", None)
    if fn is None:
        raise ProbeUnavailable(f"probe: {probe_module_name(runtime)} has no probe_facts")
    return fn


def to_json_object(facts: ProbeFacts) -> dict[str, Any]:
    """The JSON object, keys in JSON_KEYS order (+ PLUGIN_JSON_KEYS for a claim-aware run)."""
    from kvclaims.report.json import REPORT_VERSION

    values = {"report_version": REPORT_VERSION, "runtime": facts.runtime,
              "runtime_version": facts.runtime_version, "verdict": facts.verdict,
              "victims": facts.victims,
              "surviving_positions": list(facts.surviving_positions),
              "rerequest_hit_blocks": facts.rerequest_hit_blocks,
              "shortfall_blocks": facts.shortfall_blocks, "free_blocks": facts.free_blocks}
    keys = JSON_KEYS + (PLUGIN_JSON_KEYS if facts.plugin else ())
    return {k: values[k] for k in keys}


def _positions(ps: tuple[int, ...]) -> str:
    """0-9 for a contiguous run, else the list; "none" for no position."""
    if not ps:
        return "none"
    if list(ps) == list(range(ps[0], ps[-1] + 1)) and len(ps) > 1:
        return f"{ps[0]}-{ps[-1]} ({len(ps)})"
    return ", ".join(map(str, ps)) + f" ({len(ps)})"


def to_text(facts: ProbeFacts) -> str:
    rows = [("runtime", f"{facts.runtime} {facts.runtime_version} "
                        f"({'claim-aware plug-in' if facts.plugin else 'stock'})"),
            ("verdict", facts.verdict),
            ("victims", str(facts.victims)),
            ("surviving positions", _positions(facts.surviving_positions)),
            ("re-request hit blocks", "-" if facts.rerequest_hit_blocks is None
             else str(facts.rerequest_hit_blocks))]
    if facts.plugin:
        rows += [("refusal shortfall blocks", "-" if facts.shortfall_blocks is None
                  else str(facts.shortfall_blocks)),
                 ("free blocks at refusal", "-" if facts.free_blocks is None
                  else str(facts.free_blocks))]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def render(facts: ProbeFacts, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_json_object(facts))
    return to_text(facts)


def exit_code(facts: ProbeFacts) -> int:
    from kvclaims.check.verdict import INCONCLUSIVE
    from kvclaims.run import EXIT_CODES

    return EXIT_CODES.get(facts.verdict, EXIT_CODES[INCONCLUSIVE])
