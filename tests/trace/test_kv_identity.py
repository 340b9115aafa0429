"""Block identity, copy semantics and stream consistency of runtime KV event streams
(kvclaims.trace.kv_identity, kvclaims.trace.vllm_events.StreamJoin, kvclaims.kvstream;
docs/formats.md "Block identity, copies and stream consistency"; issue 24 items 2 and 4).

Each class is generated, not only the example: a deduplicating runtime's repeated store and
remove of a block not stored are located stream findings that are never conformant; a per-copy
runtime's remove that leaves a copy is no loss, the last one is, and one the count cannot settle
is never conformant; a host copy removed beside an intact device copy is conformant; an event on
another instance, rank, group, salt or LoRA does not touch a claim."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims.check.replay import check_events
from kvclaims.kvstream import check_records
from kvclaims.spec import stream_formats
from kvclaims.trace.formats.base import declarations
from kvclaims.trace.kv_identity import (
    ABSENT,
    AGAIN,
    GONE,
    KEPT,
    NEW,
    UNSETTLED,
    BlockKey,
    CopyLedger,
)
from kvclaims.trace.kv_records import INCONSISTENT, UNSCOPED_INSTANCE, UNSETTLED_COPIES
from kvclaims.trace.vllm_events import Batch, KVEvent, join_batches, manifest_from_dict, StreamJoin

HASHES = [101, 102, 103]
# the formats whose wire is vLLM's msgpack batch (spec/formats.toml `wire`): these tests write
# that batch; the JSON Lines formats' importers are tested in tests/trace/test_formats_*.py
FORMATS = sorted(n for n in stream_formats() if declarations()[n].wire == "msgpack")
DEVICE = {"vllm": "GPU", "sglang": "GPU"}
HOST = {"vllm": "CPU", "sglang": "CPU_PINNED"}


def stored(fmt: str, hashes: list[int], medium: str = "GPU", **extra) -> dict:
    ev = {"type": "BlockStored", "block_hashes": hashes, "medium": medium, **extra}
    if fmt == "sglang":  # SGLang's BlockStored always carries its non-default fields
        ev = {"parent_block_hash": None, "token_ids": [], "block_size": 16, "lora_id": None,
              **ev}
    return ev


def removed(hashes: list[int], medium: str = "GPU") -> dict:
    return {"type": "BlockRemoved", "block_hashes": hashes, "medium": medium}


def manifest(fmt: str, **claim) -> dict:
    return {"runtime": fmt, "usable_blocks": 80,
            "claim": [{"id": "claim:c", "mode": "hard_exclude", "prefix": "c",
                       "block_hashes": HASHES, **claim}]}


def decide(spec, fmt: str, batches: list[list[dict]], first_seq: int = 0, **top):
    """The batches as a record file, decided by kvclaims.kvstream."""
    records = [[first_seq + i, [float(i + 1), evs, 0]] for i, evs in enumerate(batches)]
    doc = {**manifest(fmt), **top}
    return check_records(msgspec.msgpack.encode(records), "gen.kvbatches", spec,
                         manifest_from_dict(doc))


def kinds(report) -> list[str]:
    return [a["kind"] for a in report.extra["stream"]["anomalies"]]


# ---- the ledger against a reference model --------------------------------------------------
OPS = st.lists(st.tuples(st.sampled_from(["store", "remove"]), st.integers(0, 2)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(OPS)
def test_deduplicated_ledger_flags_exactly_the_inconsistent_events(ops) -> None:
    ledger = CopyLedger(deduplicated=True)
    live: set[int] = set()
    for op, h in ops:
        key = BlockKey(None, None, 0, "device", h)
        if op == "store":
            assert ledger.store(key) == (AGAIN if h in live else NEW)
            live.add(h)
        else:
            assert ledger.remove(key) == (GONE if h in live else ABSENT)
            live.discard(h)
        assert ledger.live(key) == (h in live)


@settings(max_examples=300, deadline=None)
@given(OPS, st.booleans(), st.booleans())
def test_per_copy_ledger_counts_copies_and_never_settles_what_it_cannot(ops, from_start,
                                                                          reports) -> None:
    """From the start and without reports the count is exact; otherwise a remove is KEPT only
    when a copy certainly remains and GONE only when none can."""
    ledger = CopyLedger(deduplicated=False, from_start=from_start)
    lo: dict[int, int] = {}
    hi: dict[int, float] = {}
    for op, h in ops:
        key = BlockKey(None, None, 0, "device", h)
        if op == "store":
            fresh = hi.get(h, 0) == 0
            got = ledger.store(key, maybe_report=reports)
            assert got == (NEW if fresh else AGAIN)
            if fresh:
                lo[h], hi[h] = 1, (1 if from_start else float("inf"))
            else:
                lo[h] += 0 if reports else 1
                hi[h] += 1
        else:
            got = ledger.remove(key)
            if hi.get(h, 0) == 0:
                assert got == ABSENT
                continue
            lo[h], hi[h] = max(0, lo[h] - 1), hi[h] - 1
            assert got == (GONE if hi[h] == 0 else KEPT if lo[h] > 0 else UNSETTLED)
        if from_start and not reports:
            assert lo.get(h, 0) == hi.get(h, 0)  # exact


# ---- deduplicating runtimes (SGLang): stream findings -----------------------------------------
OTHERS = st.lists(st.integers(200, 230), max_size=4, unique=True)


@settings(max_examples=40, deadline=None)
@given(OTHERS, st.integers(0, 2), st.sampled_from(["GPU", "CPU_PINNED"]))
def test_sglang_repeated_store_is_a_located_finding_never_conformant(spec, others, which,
                                                                     medium) -> None:
    h = HASHES[which]
    batches = [[stored("sglang", HASHES), stored("sglang", [h], "CPU_PINNED")],
               [stored("sglang", others), *([removed(others)] if others else [])],
               [stored("sglang", [h], medium)]]
    rep = decide(spec, "sglang", batches)
    assert rep.verdict != "conformant"
    (a,) = [a for a in rep.extra["stream"]["anomalies"] if a["kind"] == INCONSISTENT]
    assert a["record"] == 3 and a["batch"] == 2 and f"block {h}" in a["message"]
    (f,) = [f for f in rep.findings if f.rule == "R-stream" and f.line == 3]
    assert f.column == 1 and "stored again" in f.message


@settings(max_examples=40, deadline=None)
@given(st.integers(300, 400), st.sampled_from(["GPU", "CPU_PINNED"]), st.booleans())
def test_sglang_remove_of_a_block_never_stored(spec, h, medium, from_start) -> None:
    """Counted only when the stream's start was seen."""
    batches = [[stored("sglang", HASHES)], [removed([h], medium)]]
    rep = decide(spec, "sglang", batches, first_seq=0 if from_start else 5)
    assert rep.verdict != "conformant"
    found = [a for a in rep.extra["stream"]["anomalies"] if a["kind"] == INCONSISTENT]
    if from_start:
        (a,) = found
        assert a["record"] == 2 and "is not stored" in a["message"]
    else:
        assert found == [] and "missed_history" in kinds(rep)


def test_sglang_store_remove_store_is_consistent(spec) -> None:
    batches = [[stored("sglang", HASHES)], [stored("sglang", [999]), removed([999]),
                                            stored("sglang", [999])]]
    rep = decide(spec, "sglang", batches)
    assert rep.verdict == "conformant" and kinds(rep) == []


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["block_hashes", "parent_block_hash", "token_ids", "block_size",
                        "lora_id"]))
def test_sglang_missing_field_is_named_and_never_conformant(spec, name) -> None:
    ev = stored("sglang", [999])
    del ev[name]
    rep = decide(spec, "sglang", [[stored("sglang", HASHES)], [ev]])
    assert rep.verdict != "conformant"
    (a,) = [a for a in rep.extra["stream"]["anomalies"] if a["kind"] == "undecodable"]
    assert repr(name) in a["message"] and a["record"] == 2 and "event 1 of 1" in a["message"]


# ---- per-copy runtimes (vLLM) -----------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(0, 4), st.integers(0, 2))
def test_vllm_remove_leaving_a_copy_is_no_loss_the_last_one_is(spec, copies, removes,
                                                               which) -> None:
    h = HASHES[which]
    removes = min(removes, copies)
    batches = [[stored("vllm", HASHES)], *[[stored("vllm", [h])] for _ in range(copies - 1)],
               *[[removed([h])] for _ in range(removes)]]
    rep = decide(spec, "vllm", batches)
    if removes < copies:
        assert rep.verdict == "conformant" and rep.claims[0].victims == 0
    else:
        assert rep.verdict == "violation" and rep.claims[0].victims == 1
    assert kinds(rep) == []


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 4), st.integers(1, 4))
def test_vllm_loss_the_copy_count_cannot_settle_is_never_conformant(spec, stores,
                                                                    removes) -> None:
    """With reports of reused blocks declared (kv_cache_report_mode = "full"), a repeated store
    may add no copy: a remove after it cannot be settled, and is never a pass."""
    batches = [[stored("vllm", HASHES)], *[[stored("vllm", [101])] for _ in range(stores - 1)],
               *[[removed([101])] for _ in range(removes)]]
    rep = decide(spec, "vllm", batches, kv_cache_report_mode="full")
    assert rep.verdict != "conformant"
    assert UNSETTLED_COPIES in kinds(rep)
    assert rep.claims[0].victims == (1 if removes >= stores else 0)


def test_vllm_history_not_seen_leaves_a_remove_unsettled(spec) -> None:
    rep = decide(spec, "vllm", [[stored("vllm", HASHES)], [removed([102])]], first_seq=3)
    assert rep.verdict != "conformant" and rep.claims[0].victims == 0
    assert UNSETTLED_COPIES in kinds(rep)


# ---- tiers ------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.sampled_from(FORMATS), st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True))
def test_removed_host_copy_with_the_device_copy_intact_is_conformant(spec, fmt, which) -> None:
    hs = [HASHES[i] for i in which]
    batches = [[stored(fmt, HASHES)], [stored(fmt, hs, HOST[fmt])], [removed(hs, HOST[fmt])]]
    rep = decide(spec, fmt, batches)
    assert rep.verdict == "conformant" and kinds(rep) == []


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(FORMATS), st.integers(0, 2))
def test_device_to_host_move_without_an_offload_event_is_a_loss(spec, fmt, which) -> None:
    h = HASHES[which]
    batches = [[stored(fmt, HASHES)], [stored(fmt, [h], HOST[fmt]), removed([h], DEVICE[fmt])]]
    rep = decide(spec, fmt, batches)
    assert rep.verdict == "violation" and rep.claims[0].victims == 1


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(FORMATS))
def test_host_claim_counts_host_copies_only(spec, fmt) -> None:
    doc = manifest(fmt, medium=HOST[fmt])
    records = [[0, [1.0, [stored(fmt, HASHES)], 0]], [1, [2.0, [stored(fmt, HASHES, HOST[fmt])],
                                                          0]],
               [2, [3.0, [removed(HASHES, DEVICE[fmt])], 0]]]
    rep = check_records(msgspec.msgpack.encode(records), "host", spec, manifest_from_dict(doc))
    assert rep.verdict == "conformant" and rep.claims[0].victims == 0


# ---- instance, rank, group, salt, LoRA ------------------------------------------------------
def _ev(fmt: str, raw: dict) -> KVEvent:
    return KVEvent(raw["type"], {k: v for k, v in raw.items() if k != "type"})


def _join(spec, fmt: str, batches: list[Batch], **claim):
    j = StreamJoin(manifest_from_dict(manifest(fmt, **claim)))
    events = j.start()
    for i, b in enumerate(batches, 1):
        events += j.feed_batch(b, i)
    return check_events(spec, events, "scoped"), j


SCOPES = st.sampled_from(["instance", "dp_rank", "group"])


@settings(max_examples=40, deadline=None)
@given(SCOPES, st.sampled_from(["remove", "clear"]))
def test_an_event_on_another_scope_does_not_touch_the_claim(spec, scope, what) -> None:
    fmt = "vllm"
    mine = {"instance": "a", "dp_rank": 0, "group": 0}
    other = {**mine, scope: {"instance": "b", "dp_rank": 1, "group": 1}[scope]}
    groups = lambda s, raw: {**raw, "group_idx": s["group"]}  # noqa: E731

    def batch(seq: int, s: dict, evs: list[dict]) -> Batch:
        return Batch(float(seq), [_ev(fmt, groups(s, e)) for e in evs], s["dp_rank"], seq,
                     s["instance"])

    hit = removed(HASHES) if what == "remove" else {"type": "AllBlocksCleared"}
    if what == "clear" and scope != "instance":
        return  # AllBlocksCleared is per instance: it empties every rank and group of it
    batches = [batch(0, mine, [stored(fmt, HASHES)]), batch(1, other, [stored(fmt, HASHES)]),
               batch(2, other, [hit])]
    rep, j = _join(spec, fmt, batches, **mine)
    assert rep.verdict == "conformant" and rep.claims[0].victims == 0
    assert [f for f in j.findings if f.unknown] == []
    rep, _ = _join(spec, fmt, [*batches, batch(3, mine, [hit])], **mine)
    assert rep.verdict == "violation" and rep.claims[0].victims == len(HASHES)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([("cache_salt", "cache_salt"), ("lora", "lora_name")]),
       st.text(min_size=1, max_size=5))
def test_a_store_with_another_salt_or_lora_does_not_materialize_the_claim(spec, keys,
                                                                         value) -> None:
    claim_key, field = keys
    b0 = Batch(0.0, [_ev("sglang", stored("sglang", HASHES, **{field: value + "x"}))], 0, 0)
    rep, _ = _join(spec, "sglang", [b0], **{claim_key: value})
    assert not rep.claims[0].materialized and rep.claims[0].victims == 0
    b0 = Batch(0.0, [_ev("sglang", stored("sglang", HASHES, **{field: value}))], 0, 0)
    b1 = Batch(1.0, [_ev("sglang", removed(HASHES))], 0, 1)
    rep, _ = _join(spec, "sglang", [b0, b1], **{claim_key: value})
    assert rep.verdict == "violation" and rep.claims[0].victims == len(HASHES)


def test_unscoped_claims_on_a_stream_of_several_instances_are_unknown(spec) -> None:
    b0 = Batch(0.0, [_ev("vllm", stored("vllm", HASHES))], 0, 0, "a")
    b1 = Batch(1.0, [_ev("vllm", stored("vllm", [7]))], 0, 1, "b")
    rep, j = _join(spec, "vllm", [b0, b1])
    assert rep.verdict != "conformant"
    assert [f.kind for f in j.findings] == [UNSCOPED_INSTANCE]


def test_inconsistency_on_an_instance_no_claim_is_scoped_to_is_said_not_deciding(spec) -> None:
    b0 = Batch(0.0, [_ev("sglang", stored("sglang", HASHES))], 0, 0, "a")
    b1 = Batch(1.0, [_ev("sglang", removed([7]))], 0, 1, "b")
    rep, j = _join(spec, "sglang", [b0, b1], instance="a")
    assert rep.verdict == "conformant"
    (f,) = j.findings
    assert f.kind == INCONSISTENT and f.instance == "b" and not f.unknown


def test_join_batches_takes_the_format(spec) -> None:
    m = manifest_from_dict(manifest("vllm"))
    b = [Batch(0.0, [_ev("sglang", stored("sglang", HASHES)), _ev("sglang", stored("sglang",
                                                                                [101]))], 0, 0)]
    assert check_events(spec, join_batches(b, m), "v").verdict == "conformant"
    assert check_events(spec, join_batches(b, m, "sglang"), "s").verdict != "conformant"


# ---- every format: stores alone pass, a lost batch never does ---------------------------------
@settings(max_examples=30, deadline=None)
@given(st.sampled_from(FORMATS), st.lists(st.lists(st.integers(200, 400), min_size=1,
                                                   max_size=4), max_size=5, unique_by=tuple),
       st.sampled_from(["GPU", "host"]))
def test_a_stream_of_stores_only_is_conformant(spec, fmt, chunks, medium) -> None:
    seen: set[int] = set()
    batches = [[stored(fmt, HASHES)]]
    for chunk in chunks:  # each block stored once (a deduplicating runtime stores a block once)
        fresh = [h for h in dict.fromkeys(chunk) if h not in seen]
        seen.update(fresh)
        if fresh:
            batches.append([stored(fmt, fresh, DEVICE[fmt] if medium == "GPU" else HOST[fmt])])
    rep = decide(spec, fmt, batches)
    assert rep.verdict == "conformant" and kinds(rep) == []


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(FORMATS), st.integers(3, 6), st.data())
def test_a_lost_batch_is_never_conformant(spec, fmt, n, data) -> None:
    lost = data.draw(st.integers(1, n - 2))
    records = [[s, [float(s), [stored(fmt, HASHES if s == 0 else [500 + s])], 0]]
               for s in range(n) if s != lost]
    rep = check_records(msgspec.msgpack.encode(records), "gap", spec,
                        manifest_from_dict(manifest(fmt)))
    assert rep.verdict != "conformant" and "gap" in kinds(rep)


@settings(max_examples=20, deadline=None)
@given(st.integers(2, 4))
def test_vllm_a_repeated_store_with_a_parent_is_a_copy_even_with_full_reports(spec,
                                                                              stores) -> None:
    """A report of reused blocks starts at block 0 (null parent); a store with a parent is a new
    copy, so its removal settles."""
    batches = [[stored("vllm", HASHES, parent_block_hash=None)],
               *[[stored("vllm", [102], parent_block_hash=101)] for _ in range(stores - 1)],
               *[[removed([102])] for _ in range(stores - 1)]]
    rep = decide(spec, "vllm", batches, kv_cache_report_mode="full")
    assert rep.verdict == "conformant" and kinds(rep) == []
    rep = decide(spec, "vllm", [*batches, [removed([102])]], kv_cache_report_mode="full")
    assert rep.verdict == "violation" and rep.claims[0].victims == 1
