"""vLLM 0.34.0 and 0.33.0 give the same verdicts on the same workloads (issue 23; docs/vllm.md).

traces/vllm/workloads.json holds fuzz workloads (drawn once from the fuzzer's vLLM strategy with
a fixed seed, and the 60/70/80 geometry); traces/vllm/<version>/verdicts.json the verdicts,
victims and violated rules each version's real scheduler gives them under the fuzzer's vLLM
runtimes (kvclaims.fuzz.vllm_versions). Run in each version's environment, this suite re-derives
the installed version's file from vLLM itself and requires every supported version's file to say
the same: together the two runs show both versions agree. The recorded probe/restore/queueing
traces are compared across versions here too (same events, same verdicts; they differ only where
they name the version: the provenance header and an offloadable claim's cache identity).
"""

from __future__ import annotations

import json
from pathlib import Path

import vllm

from kvclaims.runtime.vllm import adapter
from kvclaims.fuzz import vllm_versions as V

TRACES_ROOT = Path(__file__).resolve().parents[2] / "traces" / "vllm"


def _verdicts(version: str) -> dict:
    return json.loads((TRACES_ROOT / version / V.VERDICTS).read_text())


def test_every_supported_version_has_recorded_verdicts() -> None:
    for v in adapter.SUPPORTED_VERSIONS:
        data = _verdicts(v)
        assert data["vllm"] == v
        workloads = V.read_workloads(str(TRACES_ROOT / V.WORKLOADS))
        assert len(data["verdicts"]) == len(workloads) * len(V.RUNTIMES)


def test_installed_version_regenerates_its_verdicts() -> None:
    workloads = V.read_workloads(str(TRACES_ROOT / V.WORKLOADS))
    got = V.verdicts(workloads)
    assert got["vllm"] == vllm.__version__
    assert got == _verdicts(vllm.__version__)


def test_the_versions_agree_on_every_workload() -> None:
    ref, *others = adapter.SUPPORTED_VERSIONS
    base = _verdicts(ref)["verdicts"]
    kinds = {(k.split("|")[1], v["verdict"]) for k, v in base.items()}
    # the workloads exercise both outcomes: stock vLLM loses claims, and sometimes does not
    assert ("vllm:stock", "violation") in kinds and ("vllm:stock", "conformant") in kinds
    assert {v["verdict"] for k, v in base.items() if "plugin" in k} == {"conformant"}
    for other in others:
        assert _verdicts(other)["verdicts"] == base, other


def test_recorded_traces_agree_across_versions() -> None:
    ref, *others = adapter.SUPPORTED_VERSIONS

    def body(version, path):
        # the version is named in the provenance header and in an offloadable claim's
        # cache identity ("vllm-VERSION:sha256:…"): a different vLLM is a different cache
        return path.read_text().replace(version, "<vllm>").splitlines()

    names = sorted(p.name for p in (TRACES_ROOT / ref).glob("*.kvt"))
    assert len(names) >= 10
    for other in others:
        assert sorted(p.name for p in (TRACES_ROOT / other).glob("*.kvt")) == names
        for n in names:
            assert body(other, TRACES_ROOT / other / n) == body(ref, TRACES_ROOT / ref / n), (other, n)
        assert json.loads((TRACES_ROOT / other / "expected.json").read_text()) == json.loads(
            (TRACES_ROOT / ref / "expected.json").read_text())
