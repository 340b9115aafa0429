"""Stream anomalies are scoped to the publisher they come from (kvclaims.kvstream.StreamCheck;
docs/formats.md "Stream consistency"; issue 24 item 2): a stream carrying several publishers
(frame topics) numbers each on its own; a gap, a dropped-event counter or a crossed shard of an
instance no claim is scoped to is said and decides nothing, one of a claim's instance makes its
verdict unknown, never conformant."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims.kvstream import check_records
from kvclaims.trace.vllm_events import manifest_from_dict

HASHES = [11, 12]


def frame(topic: str, seq: int, instance: str, events: list[dict], rank: int = 0,
          dropped: int = 0) -> list:
    batch = {"ts": float(seq), "events": events, "data_parallel_rank": rank,
             "instance": instance}
    if dropped:
        batch["dropped_events"] = dropped
    return [topic.encode(), seq.to_bytes(8, "big"), msgspec.msgpack.encode(batch)]


def store(hs: list[int]) -> dict:
    return {"type": "BlockStored", "block_hashes": hs, "medium": "GPU"}


def remove(hs: list[int]) -> dict:
    return {"type": "BlockRemoved", "block_hashes": hs, "medium": "GPU"}


def decide(spec, frames: list, **claim):
    doc = {"claim": [{"id": "claim:c", "block_hashes": HASHES, "instance": "a", **claim}]}
    return check_records(msgspec.msgpack.encode(frames), "scope", spec, manifest_from_dict(doc))


def kinds(rep) -> list[str]:
    return [a["kind"] for a in rep.extra["stream"]["anomalies"]]


def publisher(topic: str, n: int, skip: int | None) -> list:
    """n batches of one publisher (topic = instance), batch `skip` missing."""
    out = [frame(topic, 0, topic, [store(HASHES)])]
    out += [frame(topic, s, topic, [store([100 + s])]) for s in range(1, n) if s != skip]
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 6), st.data(), st.sampled_from(["a", "b"]), st.booleans())
def test_a_gap_decides_only_where_a_claim_is_scoped(spec, n, data, where, interleave) -> None:
    skip = data.draw(st.integers(1, n - 2))  # a later batch shows it missing
    a = publisher("a", n, skip if where == "a" else None)
    b = publisher("b", n, skip if where == "b" else None)
    frames = [f for pair in zip(a, b) for f in pair] + a[len(b):] + b[len(a):] if interleave \
        else a + b
    rep = decide(spec, frames)
    if where == "a":
        assert rep.verdict != "conformant" and "gap" in kinds(rep)
    else:
        assert rep.verdict == "conformant", kinds(rep)
        assert kinds(rep) and set(kinds(rep)) == {"out_of_scope"}
        assert all("instance 'b'" in a["message"] for a in rep.extra["stream"]["anomalies"])


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 50), st.sampled_from(["a", "b"]))
def test_a_dropped_event_counter_decides_only_where_a_claim_is_scoped(spec, n, where) -> None:
    frames = [frame("a", 0, "a", [store(HASHES)]), frame("b", 0, "b", [store(HASHES)]),
              frame(where, 1, where, [store([99])], dropped=n)]
    rep = decide(spec, frames)
    (a,) = rep.extra["stream"]["anomalies"]
    assert f"dropped {n} event(s)" in a["message"] and a["record"] == 3
    if where == "a":
        assert a["kind"] == "dropped" and rep.verdict != "conformant"
    else:
        assert a["kind"] == "out_of_scope" and rep.verdict == "conformant"


@settings(max_examples=20, deadline=None)
@given(st.sampled_from([0, 1]), st.booleans())
def test_ranks_are_decided_apart_when_every_claim_names_its_rank(spec, mine, scoped) -> None:
    other = 1 - mine
    frames = [frame(f"a/{mine}", 0, "a", [store(HASHES)], rank=mine),
              frame(f"a/{other}", 0, "a", [store(HASHES)], rank=other),
              frame(f"a/{other}", 1, "a", [remove(HASHES)], rank=other)]
    rep = decide(spec, frames, **({"dp_rank": mine} if scoped else {}))
    if scoped:
        assert rep.verdict == "conformant" and kinds(rep) == []
        rep = decide(spec, [*frames, frame(f"a/{mine}", 1, "a", [remove(HASHES)], rank=mine)],
                     dp_rank=mine)
        assert rep.verdict == "violation" and rep.claims[0].victims == len(HASHES)
    else:
        assert "cross_shard" in kinds(rep) and rep.verdict != "conformant"


def test_a_map_batch_with_an_unknown_key_is_named(spec) -> None:
    bad = {"ts": 1.0, "events": [store(HASHES)], "worker": "a"}
    frames = [frame("a", 0, "a", [store(HASHES)]),
              [b"a", (1).to_bytes(8, "big"), msgspec.msgpack.encode(bad)]]
    rep = decide(spec, frames)
    (a,) = rep.extra["stream"]["anomalies"]
    assert a["kind"] == "undecodable" and "'worker'" in a["message"]
    assert rep.verdict != "conformant"
