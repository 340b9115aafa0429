"""vLLM's and SGLang's KV event record files behind the importer interface (docs/formats.md,
docs/vllm.md, docs/sglang.md): the same readers as before, unchanged.

Both runtimes publish msgpack `KVEventBatch`es in ZMQ frames `[topic, seq, payload]`; a record
file (what `kvclaims watch --record` writes) is read by kvclaims.trace.kv_records.read_frames and
each batch decoded by kvclaims.trace.vllm_events.decode_batch, which takes both of vLLM's wire
layouts (events as tagged maps since PR #42892, and the older all-array events) and SGLang's
(the same array batch, `attn_dp_rank` in the rank's place). The two differ only in the hash
function a manifest's `token_ids` are hashed with and in how copies count (spec/streams.toml).
"""

from __future__ import annotations

from typing import Any

from kvclaims.trace.formats import base
from kvclaims.trace.kv_records import Frame, looks_like_records, read_frames
from kvclaims.trace.vllm_events import Batch, decode_batch, stream_format


class VllmImporter:
    name = "vllm"

    @property
    def declaration(self) -> base.Declaration:
        return base.declarations()[self.name]

    def detect(self, head: bytes) -> bool:
        return looks_like_records(head)

    def frames(self, data: bytes, file: str) -> list[Frame]:
        return read_frames(data, file)

    def decoder(self) -> base.Decoder:
        return MsgpackDecoder(self.name)


class MsgpackDecoder:
    """A msgpack `KVEventBatch` read as its stream format declares it (spec/streams.toml);
    it holds only the format's name, so a checkpoint can pickle it (kvclaims.checkpoint)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, payload: Any, seq: int | None) -> Batch:
        return decode_batch(payload, seq, stream_format(self.name))

    def __getstate__(self) -> str:
        return self.name

    def __setstate__(self, name: str) -> None:
        self.name = name


class SglangImporter(VllmImporter):
    name = "sglang"

    def detect(self, head: bytes) -> bool:
        return False  # the same layout as vLLM's: named by --input-format sglang only
