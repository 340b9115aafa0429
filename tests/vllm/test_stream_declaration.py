"""spec/streams.toml's vLLM declaration is the installed vLLM's event schema (issue 24 item 5;
docs/formats.md "Schema drift"): the same variants, the same fields in wire order, no required
field vLLM lets default, and every medium vLLM names. A vLLM version that adds a field fails here
(and its streams are unknown, never conformant, until the declaration names it)."""

from __future__ import annotations

import msgspec
from vllm.distributed import kv_events

from kvclaims.spec import stream_formats


def test_variants_and_fields_are_vllms() -> None:
    F = stream_formats()["vllm"]
    classes = {c.__name__: c for c in (kv_events.BlockStored, kv_events.BlockRemoved,
                                       kv_events.AllBlocksCleared)}
    assert set(F.variants) == set(classes)
    for name, cls in classes.items():
        info = msgspec.structs.fields(cls)
        assert F.variants[name].fields == tuple(f.name for f in info), name
        assert F.variants[name].required <= {f.name for f in info if f.required}, name


def test_media_are_vllms() -> None:
    F = stream_formats()["vllm"]
    named = {getattr(kv_events, n) for n in dir(kv_events) if n.startswith("MEDIUM_")}
    assert named and named <= set(F.media)
    assert F.default_medium == kv_events.MEDIUM_GPU
