"""`kvclaims watch` against vLLM's real ZmqEventPublisher on loopback (docs/model.md §6 R-stream).

Each watch records what it received (`--record`); `kvclaims check` of the record must give the
same report (kvclaims.kvstream is the one decision path)."""

from __future__ import annotations

import io
import json
import threading
import time

from vllm.distributed.kv_events import KVEventBatch, ZmqEventPublisher

from kvclaims import spec as spec_mod
from kvclaims.kvstream import check_records
from kvclaims.report import json as json_report
from kvclaims.runtime.vllm.harness import external_hash
from kvclaims.runtime.vllm.probe import CLAIM_ID
from kvclaims.trace.vllm_events import Manifest, ManifestClaim, load_manifest, manifest_toml
from kvclaims.watch import watch


def _manifest_file(tmp_path, probe) -> str:
    hs = [external_hash(h) for h in probe.harness.claim_hashes[CLAIM_ID]]
    p = tmp_path / "claims.toml"
    p.write_text(manifest_toml(Manifest([ManifestClaim(CLAIM_ID, hs, "hard_exclude",
                                                       "resident")], usable_blocks=80)))
    return str(p)


def _run(tmp_path, probe, ports, *, early: int, replay: bool, buffer_steps: int = 100,
         upto: int | None = None, idle: float = 2.0):
    pub_port, rep_port = ports
    pub = ZmqEventPublisher(data_parallel_rank=0, endpoint=f"tcp://*:{pub_port}",
                            replay_endpoint=f"tcp://*:{rep_port}" if replay else None,
                            buffer_steps=buffer_steps, topic="kv")
    batches = [KVEventBatch(ts=b.ts, events=b.events) for b in probe.harness.kv_batches][:upto]
    manifest = _manifest_file(tmp_path, probe)
    record = str(tmp_path / "watched.kvbatches")
    try:
        time.sleep(0.2)
        for b in batches[:early]:  # published before the watcher connects: missed live
            pub.publish(b)
        time.sleep(0.3)
        out = io.StringIO()
        ready = threading.Event()
        rc: list[int] = []
        t = threading.Thread(target=lambda: rc.append(watch(
            f"tcp://127.0.0.1:{pub_port}", f"tcp://127.0.0.1:{rep_port}" if replay else None,
            manifest, "jsonl", topic="kv", idle_timeout=idle,
            max_batches=len(batches) or None, out=out, ready=ready, record=record)))
        t.start()
        assert ready.wait(10)
        time.sleep(0.5)  # PUB/SUB slow joiner
        for b in batches[early:]:
            pub.publish(b)
        t.join(30)
        assert not t.is_alive()
    finally:
        pub.shutdown()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    # The record, checked offline, gives the same report as the live watch.
    with open(record, "rb") as fh:
        offline = check_records(fh.read(), "offline", spec_mod.load(), load_manifest(manifest))
    live = without_file(lines[-1]["report"])
    live["stream"] = {k: v for k, v in live["stream"].items() if k != "interrupted"}
    assert live == without_file(json_report.to_dict(offline))
    return rc[0], lines


def without_file(d: dict) -> dict:
    """A JSON report without its file's name (also the start of each finding's location): the
    live watch names its endpoint, the offline check its record."""
    return dict(d, file=None, findings=[dict(f, location=f["location"].removeprefix(d["file"]))
                                        for f in d["findings"]])


def test_watch_reports_silent_loss(tmp_path, stock_probe, ports):
    rc, lines = _run(tmp_path, stock_probe, ports, early=0, replay=True)
    verdict = lines[-1]
    assert verdict["kind"] == "verdict" and verdict["verdict"] == "violation", lines
    assert rc == 1 and verdict["gaps"] == []
    assert any(x["kind"] == "finding" and x["rule"] == "R-no-silent-loss" for x in lines)


def test_watch_replays_missed_batches(tmp_path, stock_probe, ports):
    rc, lines = _run(tmp_path, stock_probe, ports, early=2, replay=True)
    asked = [x for x in lines if x["kind"] == "replay"]
    assert asked and asked[0]["replayed"] == 2, lines
    assert lines[-1]["verdict"] == "violation" and lines[-1]["gaps"] == []
    assert rc == 1


def test_watch_unfillable_gap_is_inconclusive(tmp_path, plugin_probe, ports):
    # The plug-in's stream is conformant when complete; losing its first batch for good
    # (no replay socket) must give inconclusive, never conformant.
    rc, lines = _run(tmp_path, plugin_probe, ports, early=1, replay=False)
    assert lines[-1]["verdict"] == "inconclusive", lines
    assert lines[-1]["gaps"] == [[0, 1]] and rc == 3


def test_watch_replay_buffer_too_short_is_inconclusive(tmp_path, plugin_probe, ports):
    # The replay buffer holds one batch: by the time the watcher asks, batch 0 is gone.
    rc, lines = _run(tmp_path, plugin_probe, ports, early=1, replay=True, buffer_steps=1)
    v = lines[-1]
    assert v["verdict"] == "inconclusive" and v["gaps"] == [[0, 1]], lines
    assert rc == 3


def test_watch_nothing_published_is_inconclusive(tmp_path, stock_probe, ports):
    rc, lines = _run(tmp_path, stock_probe, ports, early=0, replay=False, upto=0, idle=1.0)
    assert rc == 3 and lines[-1]["verdict"] == "inconclusive"
    assert [a["kind"] for a in lines[-1]["report"]["stream"]["anomalies"]] == ["empty"]


def test_watch_joined_after_the_first_batch_is_never_conformant(tmp_path, stock_probe, ports):
    # No replay socket: the stock probe's BlockStored batch is missed, so its loss of 50 claimed
    # blocks cannot be seen; the answer must not be conformant.
    rc, lines = _run(tmp_path, stock_probe, ports, early=1, replay=False)
    assert rc == 3 and lines[-1]["verdict"] == "inconclusive", lines[-1]
    kinds = [a["kind"] for a in lines[-1]["report"]["stream"]["anomalies"]]
    assert kinds == ["missed_history"]


def test_watch_stores_only_is_conformant(tmp_path, stock_probe, ports):
    rc, lines = _run(tmp_path, stock_probe, ports, early=0, replay=True, upto=1)
    assert rc == 0 and lines[-1]["verdict"] == "conformant", lines[-1]
