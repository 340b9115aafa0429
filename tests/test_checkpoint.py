"""A stream check checkpointed anywhere and resumed decides as one that never stopped; a
checkpoint from another version, spec or manifest is refused (kvclaims.checkpoint,
docs/watch-nats.md).

Generated streams (drops, duplicates, reordering, restarts: tests/test_watch.py's generator) are
cut at every generated point, several times over: the state is written to bytes, read back into a
fresh process's objects (the spec loaded anew) and fed the rest. The report must equal the
uninterrupted one, field for field.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_watch import manifest_file, streams

from kvclaims import __version__
from kvclaims import checkpoint as ckpt
from kvclaims.kvstream import StreamCheck
from kvclaims.report import json as json_report
from kvclaims.trace.kv_records import Frame
from kvclaims.trace.vllm_events import load_manifest


def header(manifest_bytes: bytes, **kw) -> ckpt.Header:
    fields = dict(format=ckpt.FORMAT, kvclaims_version=__version__,
                  spec_digest=ckpt.spec_digest(), manifest_digest=ckpt.manifest_digest(
                      manifest_bytes), stream="S", durable="D", stream_seq=0, records=0,
                  marks={})
    fields.update(kw)
    return ckpt.Header(**fields)


@settings(max_examples=80, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=streams(), window=st.integers(0, 3), cuts=st.lists(st.integers(0, 40), max_size=3))
def test_resumed_check_decides_as_an_uninterrupted_one(tmp_path: Path, spec, case, window,
                                                      cuts) -> None:
    _, _, arrived = case
    claims = manifest_file(tmp_path)
    manifest = load_manifest(claims)
    mbytes = Path(claims).read_bytes()
    frames = [Frame(s, p, i) for i, (_, s, p) in enumerate(arrived, 1)]
    whole = StreamCheck(spec, manifest, "f", window=window)
    for f in frames:
        whole.push(f)
    resumed = StreamCheck(spec, manifest, "f", window=window)
    for i, f in enumerate(frames):
        if i in cuts:
            data = ckpt.dump(header(mbytes, records=i), resumed, spec)
            _, resumed = ckpt.load(data, "cp", spec, mbytes)
        resumed.push(f)
    if len(frames) in cuts:
        _, resumed = ckpt.load(ckpt.dump(header(mbytes), resumed, spec), "cp", spec, mbytes)
    assert json_report.to_dict(resumed.finish()) == json_report.to_dict(whole.finish())


def test_a_foreign_checkpoint_is_refused(tmp_path: Path, spec) -> None:
    claims = manifest_file(tmp_path)
    mbytes = Path(claims).read_bytes()
    check = StreamCheck(spec, load_manifest(claims), "f")
    good = ckpt.dump(header(mbytes), check, spec)
    ckpt.load(good, "cp", spec, mbytes)  # this version, spec and manifest: resumed
    cases = {
        "kvclaims 0.0.1": header(mbytes, kvclaims_version="0.0.1"),
        "other spec tables": header(mbytes, spec_digest="0" * 64),
        "another claim manifest": header(b"other"),
        "format 99": header(mbytes, format=99),
    }
    for said, h in cases.items():
        with pytest.raises(ckpt.CheckpointError, match="refused") as err:
            ckpt.load(ckpt.dump(h, check, spec), "cp", spec, mbytes)
        assert said in str(err.value)
    with pytest.raises(ckpt.CheckpointError, match="not a kvclaims checkpoint"):
        ckpt.load(b"garbage", "cp", spec, mbytes)
    with pytest.raises(ckpt.CheckpointError, match="damaged"):
        ckpt.load(good[:-20], "cp", spec, mbytes)
    # a header another format wrote (other fields) is refused by its format number
    odd = msgspec.msgpack.encode({"format": ckpt.FORMAT - 1, "something": "else"})
    with pytest.raises(ckpt.CheckpointError, match=f"format {ckpt.FORMAT - 1}"):
        ckpt.load(ckpt.MAGIC + len(odd).to_bytes(4, "big") + odd, "cp", spec, mbytes)


def test_the_spec_is_not_in_the_checkpoint(tmp_path: Path, spec) -> None:
    """The spec is written as references into the reader's loaded spec: a checkpoint stays
    small and can only be read against the same tables."""
    claims = manifest_file(tmp_path)
    mbytes = Path(claims).read_bytes()
    data = ckpt.dump(header(mbytes), StreamCheck(spec, load_manifest(claims), "f"), spec)
    _, state = ckpt.load(data, "cp", spec, mbytes)
    assert state.spec is spec and state.replay.spec is spec
    sentences = [r.sentence.encode() for r in spec.rules.values()]
    assert sentences and not any(s in data for s in sentences)
