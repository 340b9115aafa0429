"""spec/streams.toml's SGLang declaration is the installed SGLang's event schema (issue 24 item 5;
docs/formats.md "Schema drift"): the same variants, fields in order, exactly the fields SGLang
always encodes as required (omit_defaults drops only the defaulted ones), and its StorageMedium
values as the media."""

from __future__ import annotations

import msgspec

from kvclaims.spec import stream_formats
from kvclaims.trace import sglang_env  # noqa: F401  - before SGLang

from sglang.srt.disaggregation import kv_events  # noqa: E402


def test_variants_and_fields_are_sglangs() -> None:
    F = stream_formats()["sglang"]
    classes = {c.__name__: c for c in (kv_events.BlockStored, kv_events.BlockRemoved,
                                       kv_events.AllBlocksCleared)}
    assert set(F.variants) == set(classes)
    for name, cls in classes.items():
        info = msgspec.structs.fields(cls)
        assert F.variants[name].fields == tuple(f.name for f in info), name
        assert F.variants[name].required == {f.name for f in info if f.required}, name


def test_media_are_sglangs() -> None:
    F = stream_formats()["sglang"]
    assert set(F.media) == {m.value for m in kv_events.StorageMedium}
    assert F.default_medium == kv_events.StorageMedium.GPU.value
