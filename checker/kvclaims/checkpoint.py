"""A live stream check's state as bytes, and back: what `kvclaims watch nats://...` checkpoints
(docs/watch-nats.md; docs/model.md §6 R-stream).

A checkpoint is the whole deciding state of one :class:`kvclaims.kvstream.StreamCheck` (the
Sequencer, the manifest join, the streaming replay and the events it decides at the end) together
with the watch's own position (per instance: the run and batch number last handed to the checker),
so that a watch restarted from it decides the rest of the stream exactly as an uninterrupted one
would. It decides nothing itself.

Layout: a msgpack :class:`Header` (format number, kvclaims version, digests of the spec tables and
of the claim manifest, and the position) and the pickled state. The spec is never in the bytes:
every object reachable from the loaded spec is written as a reference into the spec the reader
loads, which must have the same digest. A checkpoint written by another kvclaims version, another
format, other spec tables or another claim manifest is refused with a :class:`CheckpointError`
saying which, never resumed from: its state would be decided by different rules.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
from collections import OrderedDict
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import msgspec

from kvclaims import __version__
from kvclaims import spec as spec_mod
from kvclaims.check.replay import Replay
from kvclaims.spec import Spec
from kvclaims.trace.kv_records import Sequencer

# 2: the stream check keeps its joined events up to a bound and its batch numbers as runs
FORMAT = 2
MAGIC = b"KVCLAIMS-CHECKPOINT\n"
_ATOMS = (str, int, float, bool, type(None), bytes)


class CheckpointError(Exception):
    """A checkpoint that cannot be resumed from (another version, spec or manifest; damaged)."""


class Mark(msgspec.Struct, frozen=True):
    """The last batch of one instance handed to the checker: (run, batch number). A message at or
    below it is a redelivery or a duplicate publish and is dropped before the checker sees it."""

    epoch: int
    seq: int


class Header(msgspec.Struct, frozen=True):
    """What a checkpoint is, readable without unpickling anything."""

    format: int
    kvclaims_version: str
    spec_digest: str
    manifest_digest: str
    stream: str
    durable: str
    stream_seq: int  # the JetStream sequence of the last message decided
    records: int  # messages handed to the checker so far
    marks: dict[str, Mark]


def spec_digest() -> str:
    """The loaded spec tables' digest (kvclaims.spec.digest)."""
    return spec_mod.digest()


def manifest_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _walk(o: Any, seen: dict[int, int], out: list[Any]) -> None:
    """Every non-atomic object reachable from the spec, in a deterministic order."""
    stack = [o]
    while stack:
        x = stack.pop()
        if isinstance(x, _ATOMS) or id(x) in seen:
            continue
        seen[id(x)] = len(out)
        out.append(x)
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            kids = [getattr(x, f.name) for f in dataclasses.fields(x)]
        elif isinstance(x, (dict, MappingProxyType)):
            kids = [v for kv in x.items() for v in kv]
        elif isinstance(x, (tuple, list)):
            kids = list(x)
        elif isinstance(x, (set, frozenset)):
            kids = sorted(x, key=repr)
        else:
            kids = []
        stack.extend(reversed(kids))


def _spec_objects(spec: Spec) -> tuple[dict[int, int], list[Any]]:
    seen: dict[int, int] = {}
    out: list[Any] = []
    _walk(spec, seen, out)
    return seen, out


def _restore_replay(obj: Replay, state: dict[str, Any]) -> None:
    """Rebuild a Replay: its constructor makes the event handlers (bound to `obj`), then the
    saved state replaces everything else."""
    obj.__init__(state["spec"], state["file"])  # type: ignore[misc]
    obj.__dict__.update(state)


def _blank_replay() -> Replay:
    return Replay.__new__(Replay)


def _blank_sequencer() -> Sequencer:
    return Sequencer.__new__(Sequencer)


def _restore_sequencer(obj: Sequencer, state: dict[str, Any]) -> None:
    """The digest window comes packed (one msgpack bytes, not 65,536 pickled tuples)."""
    seen = msgspec.msgpack.decode(state["_seen"])
    obj.__dict__.update(state)
    obj._seen = OrderedDict((seq, (digest, record)) for seq, digest, record in seen)


class _Pickler(pickle.Pickler):
    def __init__(self, fh: io.BytesIO, spec: Spec) -> None:
        super().__init__(fh, protocol=5)
        self._ids, self._objs = _spec_objects(spec)

    def persistent_id(self, obj: Any) -> int | None:
        if isinstance(obj, _ATOMS):
            return None
        i = self._ids.get(id(obj))
        return i if i is not None and self._objs[i] is obj else None

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is Replay:
            state = {k: v for k, v in obj.__dict__.items() if k != "_handlers"}
            return _blank_replay, (), state, None, None, _restore_replay
        if type(obj) is Sequencer:
            packed = msgspec.msgpack.encode([[seq, digest, record]
                                             for seq, (digest, record) in obj._seen.items()])
            return _blank_sequencer, (), {**obj.__dict__, "_seen": packed}, None, None, \
                _restore_sequencer
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, fh: io.BytesIO, spec: Spec) -> None:
        super().__init__(fh)
        self._objs = _spec_objects(spec)[1]

    def persistent_load(self, pid: Any) -> Any:
        return self._objs[pid]


def dump(header: Header, state: Any, spec: Spec) -> bytes:
    """A checkpoint's bytes: MAGIC, the header's length (4 bytes), the header, the state."""
    head = msgspec.msgpack.encode(header)
    body = io.BytesIO()
    _Pickler(body, spec).dump(state)
    return MAGIC + len(head).to_bytes(4, "big") + head + body.getvalue()


def read_header(data: bytes, where: str) -> tuple[Header, memoryview]:
    if not data.startswith(MAGIC):
        raise CheckpointError(f"{where}: not a kvclaims checkpoint")
    view = memoryview(data)[len(MAGIC):]
    n = int.from_bytes(view[:4], "big")
    try:
        header = msgspec.msgpack.decode(view[4:4 + n], type=Header)
    except msgspec.DecodeError:
        try:
            fmt = msgspec.msgpack.decode(view[4:4 + n]).get("format")
        except Exception:  # noqa: BLE001 - damaged: said below
            fmt = None
        if fmt != FORMAT:
            raise CheckpointError(f"{where}: checkpoint format {fmt}, this kvclaims reads "
                                  f"format {FORMAT}: start a new durable") from None
        raise CheckpointError(f"{where}: the checkpoint's header is damaged") from None
    return header, view[4 + n:]


def load(data: bytes, where: str, spec: Spec, manifest_bytes: bytes) -> tuple[Header, Any]:
    """The header and state of a checkpoint this kvclaims, spec and manifest can resume from;
    CheckpointError (saying what differs) otherwise."""
    header, body = read_header(data, where)
    differs: list[str] = []
    if header.format != FORMAT:
        differs.append(f"format {header.format} (this kvclaims reads {FORMAT})")
    if header.kvclaims_version != __version__:
        differs.append(f"kvclaims {header.kvclaims_version} (this is {__version__})")
    if header.spec_digest != spec_digest():
        differs.append("other spec tables")
    if header.manifest_digest != manifest_digest(manifest_bytes):
        differs.append("another claim manifest")
    if differs:
        raise CheckpointError(f"{where}: refused, the checkpoint was written with "
                              + ", ".join(differs) + ": its state would be decided by other "
                              "rules; start a new durable (or delete the checkpoint) to check "
                              "the stream again from its start")
    try:
        state = _Unpickler(io.BytesIO(bytes(body)), spec).load()
    except Exception as err:  # noqa: BLE001 - any damage is refused, never guessed around
        raise CheckpointError(f"{where}: the checkpoint's state is damaged ({err})") from None
    return header, state


def iter_marks(header: Header) -> Iterator[tuple[str, Mark]]:
    yield from sorted(header.marks.items())


__all__ = ["CheckpointError", "FORMAT", "Header", "Mark", "dump", "load", "manifest_digest",
           "read_header", "spec_digest"]
