"""Fixtures for the tests that run vLLM's real scheduler code (scripts/test-vllm).

These tests run under a vLLM environment, .venv-vllm-VERSION (scripts/setup-runtime vllm==VERSION,
0.34.0 or 0.33.0), and hold for every supported version. vLLM is imported here unconditionally:
without it the tests fail at collection, never skip.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

import vllm  # noqa: F401  (absent vLLM is a failure, not a skip)
from kvclaims.runtime.vllm import adapter
from kvclaims.runtime.vllm.probe import run_probe

TRACES_ROOT = Path(__file__).resolve().parents[2] / "traces" / "vllm"


@pytest.fixture(scope="session")
def stock_probe():
    r = run_probe(plugin=False)
    yield r
    r.harness.close()


@pytest.fixture(scope="session")
def plugin_probe():
    r = run_probe(plugin=True)
    yield r
    r.harness.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ports():
    return free_port(), free_port()


@pytest.fixture(scope="session")
def vllm_traces() -> Path:
    """traces/vllm/<installed version>/ (scripts/regen-vllm-traces); it must exist."""
    d = TRACES_ROOT / adapter.installed_version()
    assert d.is_dir(), f"no recorded traces for vLLM {adapter.installed_version()}: {d}"
    return d
