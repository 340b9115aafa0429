"""SGLang's own KV events, from a file and live from its ZmqEventPublisher, joined with a claim
manifest hashed by SGLang's own function (`--input-format sglang`; docs/sglang.md)."""

from __future__ import annotations

import io
import json
import threading
import time

import msgspec
from click.testing import CliRunner

from kvclaims import spec as spec_mod
from kvclaims.cli import cli
from kvclaims.kvstream import check_records
from kvclaims.runtime.sglang.harness import SglangHarness
from kvclaims.runtime.sglang.probe import (
    ACTIVE_TOKENS,
    CLAIM_ID,
    NUM_PAGES,
    RESIDENT_TOKENS,
    resident_claim,
)
from kvclaims.trace.vllm_events import encode_records, load_manifest, read_batches
from kvclaims.watch import watch

MANIFEST = f'''runtime = "sglang"
usable_blocks = 80

[[claim]]
id = "{CLAIM_ID}"
mode = "hard_exclude"
prefix = "resident"
token_ids = {list(RESIDENT_TOKENS)}
'''


def _record(tmp_path, probe):
    enc = msgspec.msgpack.Encoder()
    p = tmp_path / "sglang.kvbatches"
    p.write_bytes(encode_records((i, enc.encode(b)) for i, b in enumerate(probe.harness.kv_batches)))
    m = tmp_path / "claims.toml"
    m.write_text(MANIFEST)
    return p, m


def test_sglang_batches_decode_with_60_hashes_in_one_removal(tmp_path, stock_probe):
    p, _ = _record(tmp_path, stock_probe)
    batches = read_batches(p.read_bytes())
    removed = [len(e.fields["block_hashes"]) for b in batches for e in b.events
               if e.type == "BlockRemoved"]
    assert removed == [60, 70]
    stored = [h for b in batches for e in b.events if e.type == "BlockStored"
              for h in e.fields["block_hashes"]]
    assert stored[:60] == stock_probe.harness.claim_hashes[CLAIM_ID]


def test_manifest_token_ids_hashed_by_sglang(tmp_path, stock_probe):
    _, m = _record(tmp_path, stock_probe)
    man = load_manifest(str(m))
    assert man.claims[0].hashes == stock_probe.harness.claim_hashes[CLAIM_ID]


def test_stream_verdict_matches_the_harness_trace(tmp_path, stock_probe):
    p, m = _record(tmp_path, stock_probe)
    spec = spec_mod.load()
    rep = check_records(p.read_bytes(), str(p), spec, load_manifest(str(m)))
    assert rep.verdict == "violation"
    assert rep.claims[0].victims == 60
    r = CliRunner().invoke(cli, ["check", str(p), "--input-format", "sglang",
                                  "--claims", str(m), "--format", "json"])
    assert r.exit_code == 1, r.output
    assert json.loads(r.output.splitlines()[0])["verdict"] == "violation"


def test_plugin_stream_has_no_loss(tmp_path, plugin_probe):
    p, m = _record(tmp_path, plugin_probe)
    rep = check_records(p.read_bytes(), str(p), spec_mod.load(), load_manifest(str(m)))
    assert rep.claims[0].victims == 0


def test_live_from_sglangs_zmq_publisher(tmp_path, free_port):
    m = tmp_path / "claims.toml"
    m.write_text(MANIFEST)
    out = io.StringIO()
    ready = threading.Event()
    rc: list[int] = []
    h = SglangHarness(claims=[resident_claim()], num_pages=NUM_PAGES,
                      kv_events_endpoint=f"tcp://127.0.0.1:{free_port}", kv_topic="kv")
    t = threading.Thread(target=lambda: rc.append(watch(
        f"tcp://127.0.0.1:{free_port}", None, str(m), "jsonl", topic="kv", idle_timeout=3.0,
        max_batches=3, out=out, ready=ready)))
    t.start()
    try:
        assert ready.wait(10)
        time.sleep(0.5)  # PUB/SUB slow joiner
        # Each step's KVEventBatch goes out through SGLang's own ZmqEventPublisher.
        for rid, toks in (("resident", RESIDENT_TOKENS), ("active", ACTIVE_TOKENS),
                          ("again", RESIDENT_TOKENS)):
            h.add_request(rid, toks)
            h.step()
        t.join(30)
        assert not t.is_alive()
    finally:
        h.close()
    lines = [json.loads(x) for x in out.getvalue().splitlines() if x.strip()]
    final = lines[-1]
    assert final.get("verdict") == "violation", lines[-3:]
    assert rc == [1]


def test_manifest_for_an_unknown_runtime_is_a_located_error(tmp_path):
    import pytest

    from kvclaims.trace.model import InputError

    m = tmp_path / "claims.toml"
    m.write_text(MANIFEST.replace('runtime = "sglang"', 'runtime = "nosuch"'))
    with pytest.raises(InputError) as err:
        load_manifest(str(m))
    assert "nosuch" in err.value.message and err.value.line == 1
