"""Fixtures for the tests that run SGLang 0.5.23's real memory-cache code (scripts/test-sglang).

These tests run in the environment `scripts/setup-runtime sglang==0.5.23` makes. SGLang is
imported here unconditionally: without it the tests fail at collection, never skip.
"""

from __future__ import annotations

import socket

import pytest

import sglang  # noqa: F401  (absent SGLang is a failure, not a skip)
from kvclaims.runtime.sglang.probe import run_probe


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


@pytest.fixture
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
