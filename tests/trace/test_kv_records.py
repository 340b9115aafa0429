"""Recorded KV event streams: the record file and the order batches are decided in
(kvclaims.trace.kv_records; docs/model.md §6 R-stream). Generated streams with drops, duplicates,
reordering within and beyond the window, and restarts."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims.trace.kv_records import (
    DUPLICATE,
    EMPTY,
    GAP,
    LATE,
    MISSED_HISTORY,
    RESTART,
    UNSEQUENCED,
    Frame,
    Sequencer,
    encode_frames,
    read_frames,
)
from kvclaims.trace.model import InputError


def batch(n: int, run: int = 0) -> list:
    """A distinct KVEventBatch per (run, number)."""
    return [float(run * 1000 + n), [{"type": "BlockStored", "block_hashes": [run * 1000 + n]}], 0]


def run(frames: list[Frame], window: int):
    seq = Sequencer(window)
    steps = []
    for f in frames:
        steps += seq.push(f)
    steps += seq.finish()
    decided = [x for k, x in steps if k == "batch"]
    anomalies = [x for k, x in steps if k == "anomaly"]
    # Between restarts, batches are decided in strictly increasing sequence order.
    last = -1
    for k, x in steps:
        if k == "anomaly" and x.kind == RESTART:
            last = -1
        elif k == "batch" and x.seq is not None:
            assert x.seq > last, steps
            last = x.seq
    return decided, anomalies


def frames_of(arrivals: list[tuple[int, int]]) -> list[Frame]:
    """(run, seq) arrivals -> frames in that order."""
    return [Frame(s, batch(s, r), i) for i, (r, s) in enumerate(arrivals, 1)]


# ---- the record file ---------------------------------------------------------------------------
def test_record_forms_read_alike() -> None:
    recs = [[s, batch(s)] for s in range(3)]
    raw = [[b"kv", s.to_bytes(8, "big"), msgspec.msgpack.encode(b)] for s, b in recs]
    a = read_frames(msgspec.msgpack.encode(recs), "r")
    b = read_frames(msgspec.msgpack.encode(raw), "r")
    assert [f.seq for f in a] == [f.seq for f in b] == [0, 1, 2]
    assert [f.digest for f in a] == [f.digest for f in b]
    assert [f.record for f in a] == [1, 2, 3]
    assert read_frames(encode_frames(b), "r") == a  # what watch --record writes
    (bare,) = read_frames(msgspec.msgpack.encode(batch(0)), "r")
    assert bare.seq is None


@pytest.mark.parametrize("data,line,words", [
    (b"\xc1", 1, "not a msgpack"),
    (msgspec.msgpack.encode({"a": 1}), 1, "array of records"),
    (msgspec.msgpack.encode([[0, batch(0)], "x"]), 2, "record 2"),
    (msgspec.msgpack.encode([[0, batch(0)], [-1, batch(1)]]), 2, "negative"),
    (msgspec.msgpack.encode([[b"kv", b"\x00", b""]]), 1, "8 bytes"),
])
def test_malformed_record_files_are_located(data: bytes, line: int, words: str) -> None:
    with pytest.raises(InputError) as err:
        read_frames(data, "r.kvbatches")
    assert err.value.line == line and words in err.value.message


# ---- sequencing --------------------------------------------------------------------------------
def test_complete_stream_in_order_has_no_anomaly() -> None:
    decided, anomalies = run(frames_of([(0, s) for s in range(5)]), 4)
    assert [f.seq for f in decided] == list(range(5)) and anomalies == []


def test_nothing_received_is_said() -> None:
    assert [a.kind for a in run([], 4)[1]] == [EMPTY]


def test_each_anomaly_kind() -> None:
    kinds = lambda arr, w=4: [a.kind for a in run(frames_of(arr), w)[1]]  # noqa: E731
    assert kinds([(0, 2), (0, 3)]) == [MISSED_HISTORY]
    assert kinds([(0, 0), (0, 2)]) == [GAP]
    assert kinds([(0, 0), (0, 1), (0, 1)]) == [DUPLICATE]
    assert kinds([(0, 0), (0, 1), (1, 0), (1, 1)]) == [RESTART]
    assert kinds([(0, 0), (0, 2), (0, 3), (0, 1)], 1) == [GAP, LATE]
    assert [a.kind for a in run([Frame(None, batch(0), 1)], 4)[1]] == [UNSEQUENCED]


@st.composite
def arrivals(draw):
    """A publisher's runs (restarts), then a network that drops, duplicates and reorders."""
    runs = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    sent = [(r, s) for r, n in enumerate(runs) for s in range(n)]
    out = []
    for item in sent:
        what = draw(st.sampled_from(["keep"] * 6 + ["drop", "dup"]))
        if what != "drop":
            out.append(item)
        if what == "dup":
            out.append(item)
    # reorder: move some frames later, within one run (a restart is a barrier on the wire)
    for _ in range(draw(st.integers(0, 3))):
        if len(out) < 2:
            break
        i = draw(st.integers(0, len(out) - 2))
        j = draw(st.integers(i + 1, min(len(out) - 1, i + 6)))
        if all(out[k][0] == out[i][0] for k in range(i, j + 1)):
            out.insert(j, out.pop(i))
    return runs, sent, out


@settings(max_examples=400, deadline=None)
@given(arrivals(), st.integers(0, 5))
def test_generated_streams(case, window: int) -> None:
    runs, sent, arrived = case
    decided, anomalies = run(frames_of(arrived), window)
    kinds = [a.kind for a in anomalies]
    # Each batch is decided at most once, unless the stream was said to be broken (a restart
    # can only be told by the numbering going back, after some of the new run was decided).
    keys = [(int(f.payload[0]) // 1000, f.seq) for f in decided]
    if not any(a.unknown for a in anomalies):
        assert len(keys) == len(set(keys))
    # Nothing is invented: every decided batch was received.
    assert set(keys) <= set(arrived)
    got = set(arrived)
    if len(runs) == 1 and got:
        seen = sorted(s for _, s in got)
        if any(s not in seen for s in range(max(seen))):
            # a batch below the highest received one never arrived: said, and unknown
            assert any(a.unknown for a in anomalies), (arrived, kinds)
    if len(runs) == 1 and arrived and arrived[0][1] != 0 and (0, 0) not in arrived:
        assert any(a.unknown for a in anomalies)  # missed history is never silent
    # Every restart of an in-order stream is said (a new run that continues the old numbering
    # after losses is indistinguishable from it by numbers: docs/vllm.md, limits).
    if list(dict.fromkeys(arrived)) == sent:
        assert kinds.count(RESTART) == len(runs) - 1
    clean = sorted(set(arrived)) == sent and len(runs) == 1
    if clean and window >= 6:  # every reorder above fits in the window
        assert [k for k in kinds if k != DUPLICATE] == [] and keys == sent
    if DUPLICATE in kinds:  # said only of a batch that really came twice
        assert len(arrived) > len(set(arrived))
