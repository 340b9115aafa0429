"""Every runtime KV-event format kvclaims reads, behind one interface (docs/formats.md).

`IMPORTERS` maps each `--input-format` name of a KV event stream to its importer
(kvclaims.trace.formats.base.Importer): `vllm` and `sglang` (msgpack record files, read as
before by kvclaims.trace.kv_records and decoded by kvclaims.trace.vllm_events), `dynamo`,
`trtllm` and `lmcache` (JSON Lines). :func:`detect` names the importer a file's first bytes
belong to, where that is unambiguous; a vLLM and an SGLang record cannot be told apart (the same
layout), so a msgpack record is `vllm` unless `--input-format sglang` says otherwise.
"""

from __future__ import annotations

from kvclaims.trace.formats.base import Importer
from kvclaims.trace.formats.dynamo import DynamoImporter
from kvclaims.trace.formats.lmcache import LmcacheImporter
from kvclaims.trace.formats.msgpack import SglangImporter, VllmImporter
from kvclaims.trace.formats.trtllm import TrtllmImporter

IMPORTERS: dict[str, Importer] = {i.name: i for i in (
    VllmImporter(), SglangImporter(), DynamoImporter(), TrtllmImporter(), LmcacheImporter())}
NAMES = tuple(IMPORTERS)
# Formats told apart by content, in the order detection tries them (sglang never: see above).
_DETECTED = ("vllm", "dynamo", "trtllm", "lmcache")


def detect(head: bytes) -> str | None:
    """The stream format whose records `head` starts with, or None."""
    for name in _DETECTED:
        if IMPORTERS[name].detect(head):
            return name
    return None


def importer(name: str) -> Importer:
    return IMPORTERS[name]


def manifest_runtime(name: str | None) -> str:
    """Whose hash function a claim manifest's `token_ids` are hashed with for a stream of
    format `name` (spec/formats.toml `manifest_runtime`; the manifest's own `runtime` wins)."""
    return IMPORTERS[name or "vllm"].declaration.manifest_runtime
