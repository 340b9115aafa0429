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
    """The stream format a claim manifest is read for when it names none (its own `runtime`
    wins): the importer's own name, which spec/streams.toml declares (its `runtime` there names
    the hash function `token_ids` are hashed with, where kvclaims has it)."""
    return importer(name or "vllm").name
