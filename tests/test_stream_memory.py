"""What a stream check keeps does not grow with the batches (kvclaims.kvstream; docs/watch-nats.md
"Memory"): its joined events are kept for the Z3 engine up to a bound and then let go, failing
closed; a record's batch number is kept as runs, not per record.

Generated streams (tests/test_watch.py's generator: drops, duplicates, reordering, restarts,
claimed blocks stored and removed, batches whose order can matter) are decided keeping every
event and keeping only a few: the reports are equal unless events were let go from a stream in
which a batch's order can matter, and then the report says so and is never a pass.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_watch import manifest_file, streams

from kvclaims.check.verdict import CONFORMANT, INCONCLUSIVE, VIOLATION
from kvclaims.kvstream import StreamCheck
from kvclaims.report import json as json_report
from kvclaims.trace.kv_records import Frame
from kvclaims.trace.vllm_events import Manifest, ManifestClaim, load_manifest


def decided(spec, manifest, frames, window: int, keep: int | None) -> StreamCheck:
    check = StreamCheck(spec, manifest, "f", window=window, keep=keep)
    for f in frames:
        check.push(f)
    check.finish()
    return check


@settings(max_examples=120, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=streams(), window=st.integers(0, 3), keep=st.integers(0, 6))
def test_letting_events_go_decides_alike_or_says_so(tmp_path: Path, spec, case, window,
                                                    keep) -> None:
    _, _, arrived = case
    manifest = load_manifest(manifest_file(tmp_path))
    frames = [Frame(s, p, i) for i, (_, s, p) in enumerate(arrived, 1)]
    whole = decided(spec, manifest, frames, window, None)
    bounded = decided(spec, manifest, frames, window, keep)
    a, b = whole.finish(), bounded.finish()
    assert len(bounded.events) <= keep and len(whole.events) == whole.count == bounded.count
    event("let go, order can matter" if bounded.let_go and whole._unordered is not None
          else "let go" if bounded.let_go else "all kept")
    if not bounded.let_go or whole._unordered is None:
        # nothing let go, or every batch decided alike in every order: the same report
        assert json_report.to_dict(b) == json_report.to_dict(a)
        return
    # a batch whose order can matter, and the events the Z3 engine needs let go: fail-closed
    assert b.verdict == INCONCLUSIVE
    assert not [f for f in b.findings if f.status == VIOLATION]
    assert any("events kept for the Z3 engine" in f.message for f in b.findings)
    if a.verdict != CONFORMANT:
        assert b.verdict != CONFORMANT
    assert len(b.findings) == len(b.extra["stream"]["locations"])


@given(st.data())
def test_batch_numbers_kept_as_runs_are_every_record_s(data) -> None:
    # Records located in any order (late batches), with offsets changing (restarts, gaps) or
    # not: every record's batch number is the one it was located with.
    n = data.draw(st.integers(1, 60))
    order = list(range(1, n + 1))
    for _ in range(data.draw(st.integers(0, 4))):
        i = data.draw(st.integers(0, n - 1))
        j = data.draw(st.integers(0, n - 1))
        order[i], order[j] = order[j], order[i]
    offsets = data.draw(st.lists(st.sampled_from([-1, -1, -1, 5, None]), min_size=n,
                                 max_size=n))
    check = StreamCheck(_spec(), Manifest([ManifestClaim("c", [1], "hard_exclude", "c")], 8),
                        "f")
    want = {}
    for r in order:
        off = offsets[r - 1]
        seq = None if off is None else r + off
        check._located_at(r, seq)
        want[r] = seq
    assert {r: check._batch_of(r) for r in want} == want


def _spec():
    from kvclaims import spec as spec_mod

    return spec_mod.load()


def store(*hs: int) -> dict:
    return {"type": "BlockStored", "block_hashes": list(hs), "parent_block_hash": None,
            "token_ids": [], "block_size": 16, "lora_id": None, "medium": "GPU"}


def remove(*hs: int) -> dict:
    return {"type": "BlockRemoved", "block_hashes": list(hs), "medium": "GPU"}


def test_a_claim_whose_blocks_keep_coming_and_going_keeps_nothing_per_batch(spec) -> None:
    # A best-effort claim's blocks evicted and stored again, batch after batch (a steady state
    # that joins two events a batch): the kept events stop at the bound, the batch numbers are
    # one run, and the verdict is the same as keeping everything.
    claim = [11, 12, 13, 14]
    manifest = Manifest([ManifestClaim("claim:be", claim, "best_effort", "p")], 64)
    enc = msgspec.msgpack.Encoder()
    frames = [Frame(0, enc.encode([0.0, [store(*claim)], 0]), 1)]
    for s in range(1, 400):
        h = claim[((s - 1) // 2) % 4]  # removed in an odd batch, stored again in the next
        frames.append(Frame(s, enc.encode([float(s), [remove(h)] if s % 2 else [store(h)], 0]),
                            s + 1))
    whole = decided(spec, manifest, frames, 32, None)
    bounded = decided(spec, manifest, frames, 32, 50)
    assert whole.count > 400 and bounded.let_go and len(bounded.events) == 0
    assert len(bounded._run_at) == 1 and not bounded._seq_of
    assert json_report.to_dict(bounded.finish()) == json_report.to_dict(whole.finish())
    assert whole.finish().verdict == CONFORMANT
