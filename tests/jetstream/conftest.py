"""The `nats_server` fixture: a real `nats-server -js` per test, killed after it (js_harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from js_harness import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path):
    server = NatsServer(tmp_path / "js-store", tmp_path / "nats-server.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()
