"""Shards: a recorded KV event stream is one KV pool's; batches of two data-parallel ranks (two
pools) cross shards and make the stream inconclusive with the reason, never a wrong split
(kvclaims.kvstream; docs/fleet.md)."""

from __future__ import annotations

from pathlib import Path

import msgspec
from fleet_common import CLAIMS, TRACES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims.check.verdict import INCONCLUSIVE, VIOLATION
from kvclaims.run import Options, decide_path

PROBE = TRACES / "vllm" / "0.34.0" / "stock-probe.kvbatches"
RECORDS = msgspec.msgpack.decode(PROBE.read_bytes())
RANKS = st.one_of(st.none(), st.integers(min_value=0, max_value=3))


def with_ranks(ranks: list[int | None]) -> list:
    out = []
    for (seq, batch), rank in zip(RECORDS, ranks):
        batch = list(batch[:2]) + [rank]
        out.append([seq, batch])
    return out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ranks=st.lists(RANKS, min_size=len(RECORDS), max_size=len(RECORDS)))
def test_a_stream_is_decided_whole_only_within_one_rank(ranks, tmp_path_factory, spec) -> None:
    path = tmp_path_factory.mktemp("ranks") / "s.kvbatches"
    path.write_bytes(msgspec.msgpack.encode(with_ranks(ranks)))
    options = Options(claims=str(CLAIMS))
    rep = decide_path(str(path), spec, options)
    same = decide_path(str(PROBE), spec, options)
    named = [r for r in ranks if r is not None]
    kinds = [a["kind"] for a in rep.extra["stream"]["anomalies"]]
    if len(set(named)) <= 1:
        assert "cross_shard" not in kinds
        assert (rep.verdict, rep.findings) == (same.verdict, same.findings)
    else:
        first = named[0]
        foreign = next(i for i, r in enumerate(ranks) if r is not None and r != first)
        assert kinds.count("cross_shard") == len(set(named)) - 1
        # Nothing decided after the crossing passes: the probe's violation comes from the
        # batch of record 2, so it stands only when that batch is of the first rank and
        # precedes the crossing.
        assert rep.verdict == (VIOLATION if foreign == 2 else INCONCLUSIVE)
        msg = next(f.message for f in rep.findings if "crosses shards" in f.message)
        assert f"data-parallel rank {ranks[foreign]}" in msg and f"rank {first}" in msg


def test_the_crossing_is_located_in_the_report(tmp_path: Path, spec) -> None:
    path = tmp_path / "two-ranks.kvbatches"
    path.write_bytes(msgspec.msgpack.encode(with_ranks([0, 1, 0])))
    rep = decide_path(str(path), spec, Options(claims=str(CLAIMS)))
    assert rep.result == INCONCLUSIVE
    (f,) = [f for f in rep.findings if "crosses shards" in f.message]
    assert f.status == "unknown" and "record 2" in f.message
