"""Fixtures for the tests that run vLLM 0.33.0's real scheduler code (scripts/test-vllm).

These tests run under .venv-vllm. vLLM is imported here unconditionally: without it the tests
fail at collection, never skip.
"""

from __future__ import annotations

import socket

import pytest

import vllm  # noqa: F401  (absent vLLM is a failure, not a skip)
from kvclaims.runtime.vllm.probe import run_probe


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
