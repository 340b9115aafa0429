"""How a runtime's KV event batches are carried on NATS JetStream (docs/watch-nats.md): one message
per batch, its identity in headers, its payload the batch as the runtime published it.

Decides nothing about claims. It fixes the wire contract between `kvclaims relay` (the only
writer) and `kvclaims watch nats://...` (the reader):

- headers `Kvclaims-Instance` (the publishing engine), `Kvclaims-Epoch` (the publisher's run, as
  the relay counts runs: a new one begins where the numbering goes back), `Kvclaims-Seq` (the
  batch number in that run), `Kvclaims-Topic`; and `Nats-Msg-Id` = instance:epoch:seq, so
  JetStream's duplicate window drops a batch published twice;
- connections retry for ever (a server restart is a pause, not an end), with the caller's
  deadlines deciding when waiting stops.
"""

from __future__ import annotations

import asyncio
from typing import Any

INSTANCE = "Kvclaims-Instance"
EPOCH = "Kvclaims-Epoch"
SEQ = "Kvclaims-Seq"
TOPIC = "Kvclaims-Topic"
MSG_ID = "Nats-Msg-Id"
MISSING_NATS = ("needs nats-py, which is not installed: pip install 'kvclaims[nats]'")
RETRY_S = 0.25


def msg_id(instance: str, epoch: int, seq: int) -> str:
    return f"{instance}:{epoch}:{seq}"


def headers(instance: str, epoch: int, seq: int, topic: bytes) -> dict[str, str]:
    return {INSTANCE: instance, EPOCH: str(epoch), SEQ: str(seq),
            TOPIC: topic.decode("utf-8", "replace"), MSG_ID: msg_id(instance, epoch, seq)}


def identity(hdrs: dict[str, str] | None) -> tuple[str, int, int] | None:
    """(instance, epoch, seq) of a message, None when it does not carry them all."""
    h = hdrs or {}
    try:
        return h[INSTANCE], int(h[EPOCH]), int(h[SEQ])
    except (KeyError, ValueError):
        return None


def check_url(url: str) -> str | None:
    """Why `url` is not a NATS server address, None when it is one."""
    if not url.startswith(("nats://", "tls://")) or len(url.split("://", 1)[1]) == 0:
        return f"{url}: not a NATS server address (nats://HOST:PORT)"
    return None


async def connect(url: str, connect_timeout: float = 5.0) -> Any:
    """A connection that reconnects for ever once made; raises when the server cannot be
    reached at first (the client would otherwise retry the first connection for ever too)."""
    import nats

    host, _, port = url.split("://", 1)[1].rpartition(":")
    _, writer = await asyncio.wait_for(asyncio.open_connection(host or "127.0.0.1",
                                                               int(port or 4222)),
                                       connect_timeout)
    writer.close()

    async def quiet(_err: Exception) -> None:  # reconnects are expected: no log noise
        return None

    return await nats.connect(servers=[url], connect_timeout=connect_timeout,
                              max_reconnect_attempts=-1, reconnect_time_wait=RETRY_S,
                              allow_reconnect=True, error_cb=quiet, disconnected_cb=None,
                              name="kvclaims")


async def ensure_stream(js: Any, stream: str, subject: str | None) -> bool:
    """Create `stream` (file storage, limits retention) if it is missing; True when created."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=stream, subjects=[subject] if subject else None,
                                         storage=StorageType.FILE))
        return True
    if subject and subject not in (info.config.subjects or []):
        raise LookupError(f"stream {stream} exists but does not take subject {subject} (its "
                          f"subjects: {', '.join(info.config.subjects or []) or 'none'})")
    return False


class Stopped(Exception):
    """`stop()` became true while waiting for the server."""


async def retry(op: Any, *, stop: Any = None) -> Any:
    """Run the coroutine factory `op` until it succeeds (the server may be restarting); raises
    Stopped if `stop()` becomes true first."""
    while True:
        try:
            return await op()
        except Exception as err:  # noqa: BLE001 - only transient errors are retried
            if not transient(err):
                raise
            if stop is not None and stop():
                raise Stopped from None
            await asyncio.sleep(RETRY_S)


def transient(err: BaseException) -> bool:
    """Whether an error is the server being away or restarting (retry), not a refusal."""
    from nats import errors as ne
    from nats.js import errors as je

    if isinstance(err, (ne.TimeoutError, ne.NoRespondersError, ne.ConnectionReconnectingError,
                        ne.ConnectionClosedError, ne.StaleConnectionError, ne.NoServersError,
                        ne.FlushTimeoutError, je.ServiceUnavailableError,
                        je.NoStreamResponseError, asyncio.TimeoutError, ConnectionError)):
        return True
    return isinstance(err, je.APIError) and getattr(err, "code", None) == 503
