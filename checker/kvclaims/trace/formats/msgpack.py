"""vLLM's and SGLang's KV event record files behind the importer interface (docs/formats.md,
docs/vllm.md, docs/sglang.md): the same readers as before, unchanged.

Both runtimes publish msgpack `KVEventBatch`es in ZMQ frames `[topic, seq, payload]`; a record
file (what `kvclaims watch --record` writes) is read by kvclaims.trace.kv_records.read_frames and
each batch decoded by kvclaims.trace.vllm_events.decode_batch, which takes both of vLLM's wire
layouts (events as tagged maps since PR #42892, and the older all-array events) and SGLang's
(the same array batch, `attn_dp_rank` in the rank's place). The two differ only in the hash
function a manifest's `token_ids` are hashed with (spec/formats.toml `manifest_runtime`).
"""

from __future__ import annotations

from kvclaims.trace.formats import base
from kvclaims.trace.kv_records import Frame, looks_like_records, read_frames
from kvclaims.trace.vllm_events import decode_batch


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
        return decode_batch


class SglangImporter(VllmImporter):
    name = "sglang"

    def detect(self, head: bytes) -> bool:
        return False  # the same layout as vLLM's: named by --input-format sglang only
