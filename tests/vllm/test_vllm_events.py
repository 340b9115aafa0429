"""KVEventBatch msgpack import + claim manifest join, on batches vLLM's real scheduler published."""

from __future__ import annotations

import msgspec
from vllm.distributed.kv_events import AllBlocksCleared, BlockRemoved, BlockStored, KVEventBatch

from kvclaims.check.replay import check_events
from kvclaims.runtime.vllm.harness import external_hash
from kvclaims.runtime.vllm.probe import CLAIM_ID, RESIDENT_TOKENS
from kvclaims.trace.vllm_events import (
    Manifest,
    ManifestClaim,
    decode_batch,
    join_batches,
    load_manifest,
    manifest_toml,
    read_batches,
    encode_records,
)

ENC = msgspec.msgpack.Encoder()


def _manifest(probe) -> Manifest:
    hs = [external_hash(h) for h in probe.harness.claim_hashes[CLAIM_ID]]
    return Manifest([ManifestClaim(CLAIM_ID, hs, "hard_exclude", "resident")], usable_blocks=80)


def _payloads(probe) -> list[bytes]:
    return [ENC.encode(b) for b in probe.harness.kv_batches]


def test_033_layout_is_batch_array_of_tagged_maps(stock_probe):
    raw = msgspec.msgpack.decode(_payloads(stock_probe)[1])
    assert isinstance(raw, list) and len(raw) == 3
    assert raw[1][0]["type"] == "BlockRemoved"
    b = decode_batch(_payloads(stock_probe)[1], 1)
    assert [e.type for e in b.events].count("BlockRemoved") == 50


def test_stock_stream_with_manifest_is_silent_loss(spec, stock_probe):
    batches = [decode_batch(p, i) for i, p in enumerate(_payloads(stock_probe)[:2])]
    rep = check_events(spec, join_batches(batches, _manifest(stock_probe)), "stream")
    assert rep.verdict == "violation"
    (c,) = rep.claims
    assert c.rules["R-no-silent-loss"] == "violation"
    assert c.victims == 50 and c.harmed_positions == tuple(range(10, 60))
    assert c.leading_blocks_survived == 10


def test_plugin_stream_with_manifest_conformant(spec, plugin_probe):
    batches = [decode_batch(p, i) for i, p in enumerate(_payloads(plugin_probe))]
    rep = check_events(spec, join_batches(batches, _manifest(plugin_probe)), "stream")
    assert rep.verdict == "conformant", [f.message for f in rep.findings]
    assert rep.claims[0].victims == 0


def test_manifest_token_ids_use_vllms_hasher(tmp_path, stock_probe):
    p = tmp_path / "m.toml"
    p.write_text('usable_blocks = 80\nblock_size = 16\n[[claim]]\nid = "claim:resident"\n'
                 f'prefix = "resident"\ntoken_ids = {list(RESIDENT_TOKENS)}\n')
    m = load_manifest(str(p))
    assert m.claims[0].hashes == _manifest(stock_probe).claims[0].hashes
    q = tmp_path / "h.toml"
    q.write_text(manifest_toml(_manifest(stock_probe)))
    assert load_manifest(str(q)).claims[0].hashes == m.claims[0].hashes


class OldEvent(msgspec.Struct, array_like=True, omit_defaults=True, tag=True):
    pass


class OldBlockStored(OldEvent, tag="BlockStored"):
    block_hashes: list[int]
    parent_block_hash: int | None
    token_ids: list[int]
    block_size: int
    lora_id: int | None
    medium: str | None


class OldBlockRemoved(OldEvent, tag="BlockRemoved"):
    block_hashes: list[int]
    medium: str | None


class OldBatch(msgspec.Struct, array_like=True, omit_defaults=True):
    ts: float
    events: list[OldBlockStored | OldBlockRemoved]
    data_parallel_rank: int | None = None


def test_older_all_array_layout(spec, stock_probe):
    olds = []
    for b in stock_probe.harness.kv_batches[:2]:
        evs = []
        for e in b.events:
            if isinstance(e, BlockStored):
                evs.append(OldBlockStored(e.block_hashes, e.parent_block_hash, e.token_ids,
                                          e.block_size, e.lora_id, e.medium))
            elif isinstance(e, BlockRemoved):
                evs.append(OldBlockRemoved(e.block_hashes, e.medium))
        olds.append(ENC.encode(OldBatch(b.ts, evs, 0)))
    assert isinstance(msgspec.msgpack.decode(olds[1])[1][0], list)
    batches = [decode_batch(p, i) for i, p in enumerate(olds)]
    rep = check_events(spec, join_batches(batches, _manifest(stock_probe)), "old")
    assert rep.claims[0].victims == 50 and rep.verdict == "violation"


def test_removed_is_per_copy_refcounted(spec, stock_probe):
    m = _manifest(stock_probe)
    hs = m.claims[0].hashes
    store = BlockStored(block_hashes=hs, parent_block_hash=None, token_ids=[], block_size=16,
                        lora_id=None, medium="GPU", lora_name=None)
    b0 = KVEventBatch(ts=1.0, events=[store, store])  # two cached copies (skip-read duplicate)
    b1 = KVEventBatch(ts=2.0, events=[BlockRemoved(block_hashes=[h], medium="GPU") for h in hs])
    batches = [decode_batch(ENC.encode(b), i) for i, b in enumerate([b0, b1])]
    rep = check_events(spec, join_batches(batches, m), "copies")
    assert rep.verdict == "conformant" and rep.claims[0].victims == 0
    b2 = KVEventBatch(ts=3.0, events=[AllBlocksCleared()])
    batches.append(decode_batch(ENC.encode(b2), 2))
    rep = check_events(spec, join_batches(batches, m), "cleared")
    assert rep.verdict == "violation" and rep.claims[0].victims == 60


def test_record_file_roundtrip(stock_probe):
    data = encode_records((i, p) for i, p in enumerate(_payloads(stock_probe)))
    got = read_batches(data)
    assert [b.seq for b in got] == [0, 1, 2]
    assert len(got[1].events) == 51
    single = read_batches(_payloads(stock_probe)[0])
    assert len(single) == 1 and single[0].seq is None
