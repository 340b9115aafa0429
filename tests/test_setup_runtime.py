"""scripts/setup-runtime's usage errors and the vLLM runtime's declared versions (issue 23 item 1).

An unknown runtime or version, or a malformed argument, is a clear error with exit 2 that names
what is known, and creates no environment. scripts/runtimes/vllm.sh's KNOWN_VERSIONS are the
versions kvclaims.runtime.vllm.adapter supports, and its DEFAULT_VERSION is the newest. (The
installs themselves run in the vLLM stage of scripts/test, which sets both environments up.)
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kvclaims.runtime.vllm import adapter  # importable without vLLM: it imports vLLM lazily

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "scripts" / "setup-runtime"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SETUP), *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


@pytest.mark.parametrize(("args", "message"), [
    (("nosuch==1.0",), "unknown runtime 'nosuch'"),
    (("../vllm==0.34.0",), "unknown runtime '../vllm'"),
    (("vllm==9.9.9",), "unknown vllm version '9.9.9' (known: 0.33.0 0.34.0)"),
    (("vllm==",), "unknown vllm version"),
    ((), "usage: scripts/setup-runtime NAME==VERSION"),
    (("vllm==0.34.0", "extra"), "usage: scripts/setup-runtime NAME==VERSION"),
])
def test_usage_errors_exit_2_and_create_nothing(args: tuple[str, ...], message: str) -> None:
    before = sorted(p.name for p in ROOT.glob(".venv-*"))
    res = _run(*args)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert "vllm" in res.stderr  # the known runtimes are named
    assert res.stdout == ""
    assert sorted(p.name for p in ROOT.glob(".venv-*")) == before


def _vllm_sh(expr: str) -> str:
    return subprocess.run(["bash", "-c", f". scripts/runtimes/vllm.sh && echo {expr}"],
                          capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()


def test_vllm_versions_agree_with_the_adapter() -> None:
    known = _vllm_sh("$KNOWN_VERSIONS").split()
    assert sorted(known) == sorted(adapter.SUPPORTED_VERSIONS)
    newest = max(known, key=lambda v: tuple(int(x) for x in v.split(".")))
    assert _vllm_sh("$DEFAULT_VERSION") == newest == "0.34.0"
