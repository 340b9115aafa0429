"""vLLM's KV hints envelope, read in the installed wheel (runs in each vLLM environment).

spec/descriptors/vllm-0.34.0-kvhints.toml pins 0.34.0: there every source anchor must be found;
under any other installed version each is drift naming both versions. The envelope's shape is the
one docs/lowering.md "KV hints" describes: identifiers, a type, a version and a free payload per
action, and no field for a kind or an outcome (so every hint's outcome is missing).
"""

from __future__ import annotations

import importlib.metadata

import msgspec

import vllm  # noqa: F401  (absent vLLM is a failure, not a skip)
from vllm.v1.kv_hints import KvHintAction, KvHintsEnvelope

from kvclaims.lower import anchors as A
from kvclaims.lower.descriptor import load_descriptors, load_hint_table
from kvclaims.lower.relation import DRIFT, VERIFIED


def _kvhints():
    return next(d for d in load_descriptors() if d.runtime == "vllm-kvhints")


def test_every_kvhints_anchor_against_the_installed_wheel():
    d = _kvhints()
    installed = importlib.metadata.version("vllm")
    _, rows = A.check_anchors([d], sources=True)
    sources = [r for r in rows if r.anchor.kind == "source"]
    assert len(sources) >= 5
    if installed == d.version:
        assert [(r.anchor.ref, r.check.detail) for r in sources
                if r.check.status != VERIFIED] == []
    else:
        for r in sources:
            assert r.check.status == DRIFT and installed in r.check.detail \
                and d.version in r.check.detail, r.anchor.ref


def test_the_envelope_carries_no_kind_and_no_outcome():
    env = [f.name for f in msgspec.structs.fields(KvHintsEnvelope)]
    act = [f.name for f in msgspec.structs.fields(KvHintAction)]
    assert env == ["protocol_version", "message_id", "actions"]
    assert act == ["action_id", "action_type", "action_version", "payload"]
    words = set(load_hint_table().outcomes) | {k.lower() for k in load_hint_table().kinds}
    assert not words & {n.lower() for n in env + act}
    # the one spelling the table knows round-trips through the real envelope
    spelling = next(iter(load_hint_table().spellings))
    e = KvHintsEnvelope("0.1", "m", [KvHintAction("a", spelling, "1.0", {"block_hashes": [1]})])
    back = msgspec.json.decode(msgspec.json.encode(e), type=KvHintsEnvelope)
    assert back.actions[0].action_type in load_hint_table().spellings


def test_the_real_envelope_reads_as_unanswered_hints(tmp_path):
    from kvclaims.lower import hint_envelope as E

    spelling, kind = next(iter(load_hint_table().spellings.items()))
    env = KvHintsEnvelope("0.1", "msg-1", [
        KvHintAction("a1", spelling, "1.0", {"source_control_endpoint": "tcp://peer:5",
                                             "block_hashes": [7, 8], "mode": "copy"}),
        KvHintAction("a2", "kv.unheard_of", "1.0", {})])
    f = tmp_path / "hints.jsonl"
    f.write_bytes(msgspec.json.encode(env) + b"\n")
    rows = E.lower_file(f)
    assert [(r.claim_id, r.kind, r.status) for r in rows] == [
        ("hint:msg-1:a1", kind, E.UNKNOWN), ("hint:msg-1:a2", None, E.UNKNOWN)]
    assert rows[0].outcome == load_hint_table().unanswered
    assert rows[0].events[0].get("resident_blocks_required") == 2
