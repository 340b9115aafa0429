"""Issue 24's acceptance for every runtime KV-event format (docs/formats.md): the 60/70/80 probe's
sample is a violation at the located event, a gap in event ids is never conformant, a stream of
stores only is conformant, and a lower-tier copy removed while the claim's copy stays is
conformant (TensorRT-LLM: see test_trtllm_remove_of_a_hash_on_two_levels_is_never_a_guess). The
same workload through vLLM's own events and through Dynamo's real relay gives one verdict."""

from __future__ import annotations

from pathlib import Path

import pytest
from format_streams import CLAIM_TIER, FORMATS, OTHER_TIER, encode, records, removed, stored
from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.check.verdict import CONFORMANT, INCONCLUSIVE, VIOLATION
from kvclaims.kvstream import check_records
from kvclaims.trace.formats import IMPORTERS, detect
from kvclaims.trace.vllm_events import load_manifest, manifest_from_dict

ROOT = Path(__file__).resolve().parents[2]
SPEC = spec_mod.load()
CLAIM = [11, 12, 13]
SAMPLES = {"vllm": ("traces/vllm/0.34.0/stock-probe.kvbatches", "traces/vllm/0.34.0/claims.toml"),
           "dynamo": ("traces/dynamo/stock-probe.ndjson", "traces/dynamo/claims.toml"),
           "trtllm": ("traces/trtllm/stock-probe.ndjson", "traces/trtllm/claims.toml"),
           "lmcache": ("traces/lmcache/stock-probe.ndjson", "traces/lmcache/claims.toml")}
# The file line (record) of the first loss of the claim in each sample: the first removal.
FIRST_LOSS = {"vllm": 2, "dynamo": 6, "trtllm": 8, "lmcache": 67, "sglang": 2}


def manifest(fmt: str):
    return manifest_from_dict({"claim": [{"id": "claim:r", "block_hashes": CLAIM,
                                          "medium": CLAIM_TIER[fmt]}]})


def decide(fmt: str, data: bytes, m=None):
    return check_records(data, f"s.{fmt}", SPEC, m or manifest(fmt), input_format=fmt)


def sample(fmt: str):
    path, claims = SAMPLES[fmt]
    return (ROOT / path).read_bytes(), load_manifest(str(ROOT / claims))


SGLANG = ("traces/sglang/stock-probe.kvbatches", "traces/sglang/claims.toml")


@pytest.mark.parametrize("fmt", [*FORMATS, "sglang"])
def test_probe_sample_is_a_violation_at_the_first_loss(fmt: str) -> None:
    """SGLang's own probe stream (its whole 60-page leaf evicted in one BlockRemoved, record
    2), registered as its own format with vLLM's reader, is the violation it was before."""
    if fmt == "sglang":
        data, m = (ROOT / SGLANG[0]).read_bytes(), load_manifest(str(ROOT / SGLANG[1]))
    else:
        data, m = sample(fmt)
    report = decide(fmt, data, m)
    assert report.verdict == VIOLATION
    first = min((f for f in report.findings if f.status == VIOLATION), key=lambda f: f.event_index)
    assert first.line == FIRST_LOSS[fmt]
    assert {f.rule for f in report.findings if f.status == VIOLATION} >= {
        "R-no-silent-loss", "R-hard"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_probe_samples_are_detected(fmt: str) -> None:
    data, _ = sample(fmt)
    assert detect(data[:4096]) == fmt


def test_the_probe_through_dynamo_relay_is_the_vllm_verdict() -> None:
    """The same workload (the vLLM harness's probe) through vLLM's own events and through what
    Dynamo's real KvEventPublisher relayed of them: one verdict, the same losses, the same rules
    (and TensorRT-LLM's and LMCache's documented shapes of it agree too)."""
    reports = {fmt: decide(fmt, *sample(fmt)) for fmt in FORMATS}
    base = reports["vllm"]
    for fmt, r in reports.items():
        assert r.verdict == base.verdict, fmt
        assert r.finding_counts == base.finding_counts, fmt
        assert [c.verdict for c in r.claims] == [c.verdict for c in base.claims], fmt
        assert r.cached_resident_victims == base.cached_resident_victims, fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_stores_is_conformant(fmt: str) -> None:
    t = CLAIM_TIER[fmt]
    data = encode(fmt, records(fmt, [[stored(CLAIM[:2], t)], [stored(CLAIM[2:], t)],
                                     [stored([21, 22], t), stored([23], OTHER_TIER[fmt])]]))
    assert decide(fmt, data).verdict == CONFORMANT


@pytest.mark.parametrize("fmt", ["vllm", "dynamo", "lmcache"])
def test_removed_lower_tier_copy_with_the_claimed_copy_intact_is_conformant(fmt: str) -> None:
    t, o = CLAIM_TIER[fmt], OTHER_TIER[fmt]
    data = encode(fmt, records(fmt, [[stored(CLAIM, t)], [stored(CLAIM, o)], [removed(CLAIM, o)]]))
    assert decide(fmt, data).verdict == CONFORMANT
    # and the claimed tier's removal is the loss
    data = encode(fmt, records(fmt, [[stored(CLAIM, t)], [stored(CLAIM, o)], [removed(CLAIM, t)]]))
    assert decide(fmt, data).verdict == VIOLATION


def test_trtllm_remove_of_a_hash_on_two_levels_is_never_a_guess() -> None:
    """TensorRT-LLM's `removed` names no level; a block is on one level at a time in its radix
    tree. A stream showing a hash on both levels and then removing it does not say which copy
    went: unknown from there (inconclusive), never conformant and never a guessed loss."""
    data = encode("trtllm", records("trtllm", [[stored(CLAIM, "GPU")], [stored(CLAIM, "CPU")],
                                               [removed(CLAIM, "CPU")]]))
    report = decide("trtllm", data)
    assert report.verdict == INCONCLUSIVE
    assert any("which copy went is not said" in a["message"]
               for a in report.extra["stream"]["anomalies"])


def test_trtllm_offload_is_a_move_off_the_device() -> None:
    """`updated cache_level 0->1` moves the block to the host: the device copy is gone."""
    import json

    recs = records("trtllm", [[stored(CLAIM, "GPU")]])
    upd = {"event_id": 1, "window_size": 4096, "data": {
        "type": "updated", "block_hash": CLAIM[2],
        "cache_level": {"type": "event_diff", "old_value": 0, "new_value": 1},
        "priority": {"type": "event_diff", "old_value": 35, "new_value": 35}}}
    report = decide("trtllm", encode("trtllm", recs + [json.dumps(upd).encode()]))
    assert report.verdict == VIOLATION
    prio = {**upd, "data": {**upd["data"], "cache_level": None}}
    report = decide("trtllm", encode("trtllm", recs + [json.dumps(prio).encode()]))
    assert report.verdict == CONFORMANT  # a priority diff changes no residency


def _gap_stream(fmt: str) -> list:
    t, o = CLAIM_TIER[fmt], OTHER_TIER[fmt]
    return records(fmt, [[stored(CLAIM, t)], [stored([31], t)], [stored([33], o)],
                         [stored([32], t)], [stored([35], o)], [stored([34], t)]])


def _numbering(fmt: str, rec) -> object:
    """Which publisher's numbering a record is in (LMCache numbers each location apart)."""
    import json

    return json.loads(rec)["location"] if fmt == "lmcache" else None


def _droppable(fmt: str, recs: list) -> list[int]:
    """Records with a later record of their own numbering: dropping one leaves a hole a later
    number shows (the last of a numbering can be lost without a trace, in every format)."""
    keys = [_numbering(fmt, r) for r in recs]
    return [i for i, k in enumerate(keys) if k in keys[i + 1:]]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_gap_in_event_ids_is_never_conformant(fmt: str) -> None:
    recs = _gap_stream(fmt)
    assert decide(fmt, encode(fmt, recs)).verdict == CONFORMANT
    droppable = _droppable(fmt, recs)
    assert len(droppable) >= 4
    for drop in droppable:
        rest = recs[:drop] + recs[drop + 1:]
        report = decide(fmt, encode(fmt, rest))
        assert report.verdict != CONFORMANT, (fmt, drop)


@settings(max_examples=40, deadline=None)
@given(fmt=st.sampled_from(FORMATS), data=st.data())
def test_a_hole_in_the_numbering_is_never_conformant_wherever_it_is(fmt: str, data) -> None:
    """Any one droppable record lost, with or without another record repeated anywhere:
    never conformant, whichever record it is (a record merely late within the reorder window is
    not a hole: test_kv_records)."""
    recs = _gap_stream(fmt)
    i = data.draw(st.sampled_from(_droppable(fmt, recs)))
    mutated = recs[:i] + recs[i + 1:]
    if data.draw(st.booleans()):
        j = data.draw(st.integers(0, len(mutated) - 1))
        k = data.draw(st.integers(0, len(mutated)))
        mutated = mutated[:k] + [mutated[j]] + mutated[k:]
    assert decide(fmt, encode(fmt, mutated)).verdict != CONFORMANT


def test_every_format_is_declared_and_registered() -> None:
    from kvclaims.trace.detect import STREAM_FORMATS
    from kvclaims.trace.formats.base import declarations

    assert set(IMPORTERS) == set(STREAM_FORMATS) == set(declarations())
    for name, decl in declarations().items():
        assert decl.version and decl.source, name


def test_docs_give_every_format_its_version_note() -> None:
    from kvclaims.trace.formats.base import declarations

    doc = (ROOT / "docs" / "formats.md").read_text()
    for name, decl in declarations().items():
        assert f"| `{name}` | {decl.runtime} | {decl.version} |" in doc, name


@pytest.mark.parametrize("fmt", ["trtllm", "lmcache"])
def test_a_repeated_store_in_a_deduplicating_runtime_is_never_a_second_copy(fmt: str) -> None:
    """TensorRT-LLM's radix tree and LMCache's controller keep one copy per hash (per level,
    per location): a store repeated with no remove between is an inconsistent stream, unknown
    from there; counted as a second copy it would let the claim pass after the one remove."""
    t = CLAIM_TIER[fmt]
    data = encode(fmt, records(fmt, [[stored(CLAIM, t)], [stored(CLAIM, t)],
                                     [removed(CLAIM[2:], t)]]))
    report = decide(fmt, data)
    assert report.verdict == INCONCLUSIVE
    assert any("again" in a["message"] and a["unknown"]
               for a in report.extra["stream"]["anomalies"])


DEDUPLICATED = [f for f in FORMATS if spec_mod.stream_formats()[f].deduplicated]


@settings(max_examples=80, deadline=None)
@given(fmt=st.sampled_from(DEDUPLICATED),
       ops=st.lists(st.tuples(st.booleans(), st.sampled_from([*CLAIM, 31, 32])), min_size=1,
                    max_size=12))
def test_every_inconsistency_of_a_deduplicating_stream_is_located_and_never_conformant(
        fmt: str, ops: list[tuple[bool, int]]) -> None:
    """Issue 24: where the runtime keeps one block per hash (spec/streams.toml `copies`), a store
    of a live block and a remove of a block not stored (the stream seen from its first event)
    are located stream findings and the verdict is never conformant, wherever they fall and
    whichever block (claimed or not) they touch."""
    t = CLAIM_TIER[fmt]
    live: set[int] = set()
    bad = None  # the 1-based batch of the first inconsistency
    batches = []
    for k, (store, h) in enumerate(ops, 1):
        if bad is None and (h in live) == store:
            bad = k
        (live.add if store else live.discard)(h)
        batches.append([stored([h], t) if store else removed([h], t)])
    report = decide(fmt, encode(fmt, records(fmt, batches)))
    if bad is None:
        assert not any(a["unknown"] for a in report.extra["stream"]["anomalies"])
        return
    assert report.verdict != CONFORMANT
    located = [a for a in report.extra["stream"]["anomalies"] if a["unknown"]]
    assert located and located[0]["record"] is not None and located[0]["record"] >= 1
