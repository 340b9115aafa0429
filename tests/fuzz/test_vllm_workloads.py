"""The vLLM side of the fuzzer that needs no vLLM: `vllm_workloads` (kvclaims.fuzz.strategies) and
the `vllm:…` runtime names in an environment without vLLM (the main venv). The runs against vLLM's
real scheduler are tests/vllm/test_fuzz_vllm.py (a vLLM environment, scripts/test-vllm)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import find, given, settings

from kvclaims.fuzz import strategies as kst
from kvclaims.fuzz.driver import EXIT_USAGE, fuzz_command
from kvclaims.runtime.interface import VLLM_MISSING, RuntimeUnavailable, resolve, vllm_installed
from kvclaims.runtime.workload import FULL_ATTENTION, Workload

NO_VLLM = not vllm_installed()


@settings(max_examples=200, deadline=None)
@given(wl=kst.vllm_workloads())
def test_vllm_workloads_are_well_formed(wl: Workload) -> None:
    wl.check()
    assert 2 <= wl.usable <= 16 and 1 <= len(wl.prefixes) <= 3 and 1 <= len(wl.requests) <= 3
    assert sum(p.blocks for p in wl.prefixes) < wl.usable  # room for an active request
    assert all(p.claim is not None for p in wl.prefixes)
    assert wl.prefixes[0].claim.protected  # type: ignore[union-attr]
    blocks = {p.prefix_id: p.blocks for p in wl.prefixes}
    for r in wl.requests:
        assert len(r.chunks) == 1 and r.attention == FULL_ATTENTION
        assert r.total + (blocks[r.reuses] if r.reuses else 0) <= wl.usable


def test_vllm_workloads_shrink_to_one_prefix_one_pool_sized_request() -> None:
    wl = find(kst.vllm_workloads(), lambda w: True)
    assert (wl.usable, len(wl.prefixes), len(wl.requests)) == (2, 1, 1)
    (p,), (r,) = wl.prefixes, wl.requests
    assert (p.blocks, p.claim.required, p.claim.protected, r.chunks, r.reuses) == \
        (1, 1, True, (2,), None)


@pytest.mark.skipif(not NO_VLLM, reason="vLLM is installed here")
@pytest.mark.parametrize("runtime", ["vllm:stock", "vllm:plugin", "vllm:plugin,mode=hard_exclude"])
def test_vllm_runtime_without_vllm_is_a_clear_usage_error(runtime: str, tmp_path: Path,
                                                          capsys) -> None:
    with pytest.raises(RuntimeUnavailable, match="vLLM is not installed in this environment"):
        resolve(runtime)
    assert fuzz_command(runtime, 5, 0, str(tmp_path), None) == EXIT_USAGE
    err = " ".join(capsys.readouterr().err.split())
    assert f"kvclaims fuzz: {VLLM_MISSING}" in err and "Traceback" not in err


@pytest.mark.skipif(not NO_VLLM, reason="vLLM is installed here")
def test_cli_without_vllm_exits_2() -> None:
    exe = Path(sys.executable).with_name("kvclaims")
    res = subprocess.run([str(exe), "fuzz", "--runtime", "vllm:stock", "--examples", "5"],
                         check=False, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2
    assert VLLM_MISSING in " ".join(res.stderr.split())


def test_bad_vllm_names_are_usage_errors_with_or_without_vllm() -> None:
    for name in ("vllm:other", "vllm:stock,mode=nope", "vllm:stock,colour=red"):
        with pytest.raises(RuntimeUnavailable, match="^vllm: "):
            resolve(name)


def test_adapter_module_imports_without_vllm() -> None:
    """kvclaims.runtime.vllm.fuzz_adapter imports the harness (and vLLM) only on reset()."""
    code = ("import sys; import kvclaims.runtime.vllm.fuzz_adapter as fa; "
            "assert 'vllm' not in sys.modules; a = fa.fuzz_runtime('plugin'); "
            "print(a.plugin, a.mode)")
    res = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["True", "soft_priority"]
