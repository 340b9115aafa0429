"""`kvclaims watch --input-format dynamo`: a Dynamo publisher's event plane watched live
(docs/formats.md). The messages are sent exactly as ai-dynamo-runtime 1.6.1's ZMQ event plane
sent them when measured here ([topic, publisher_id, sequence, envelope]; the envelope a version
byte, a 4-byte length and a msgpack map whose payload is a msgpack array of RouterEvents), built
from the RouterEvents its real publisher relayed for the probe (traces/dynamo/stock-probe.ndjson).
The live report is the report of the record the watch wrote."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import msgspec
import pytest
import zmq

from kvclaims import spec as spec_mod
from kvclaims.kvstream import check_records
from kvclaims.trace.vllm_events import load_manifest
from kvclaims.watch import watch

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "traces" / "dynamo" / "stock-probe.ndjson"
CLAIMS = str(ROOT / "traces" / "dynamo" / "claims.toml")
TOPIC = b"kv-events"


def router_events() -> list[dict]:
    return [json.loads(x) for x in SAMPLE.read_text().splitlines()
            if x.strip() and not x.startswith("#")]


def message(events: list[dict], sequence: int) -> list[bytes]:
    head = msgspec.msgpack.encode({"publisher_id": 42, "sequence": sequence, "published_at": 0,
                                   "topic": TOPIC.decode(),
                                   "payload": msgspec.msgpack.encode(events)})
    env = b"\x01" + len(head).to_bytes(4, "big") + head
    return [TOPIC, (42).to_bytes(8, "big"), sequence.to_bytes(8, "big"), env]


def run_live(tmp: Path, messages: list[list[bytes]], n_events: int) -> tuple[int, list[dict], str]:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB)
    pub.bind("tcp://127.0.0.1:0")
    endpoint = pub.getsockopt(zmq.LAST_ENDPOINT).decode()
    out = io.StringIO()
    rec = str(tmp / "live.ndjson")
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(watch(
        endpoint, None, CLAIMS, "jsonl", record=rec, max_batches=n_events, idle_timeout=5,
        out=out, input_format="dynamo")))
    t.start()
    try:
        assert pub.poll(20_000), "no subscriber within 20 s"
        pub.recv()
        for m in messages:
            pub.send_multipart(m)
        t.join(120)
        assert not t.is_alive()
    finally:
        pub.close(linger=1000)
        ctx.term()
    return rc[0], [json.loads(x) for x in out.getvalue().splitlines()], rec


def test_live_dynamo_is_the_record_and_the_sample(tmp_path: Path) -> None:
    events = router_events()
    # as measured: the first message one RouterEvent, the next two carry two each
    msgs = [message(events[:1], 0), message(events[1:3], 1), message(events[3:], 2)]
    rc, lines, rec = run_live(tmp_path, msgs, len(events))
    assert rc == 1
    final = lines[-1]["report"]
    assert final["verdict"] == "violation"
    spec = spec_mod.load()
    offline = check_records(Path(rec).read_bytes(), "rec", spec, load_manifest(CLAIMS),
                            input_format="dynamo")
    sample = check_records(SAMPLE.read_bytes(), "sample", spec, load_manifest(CLAIMS),
                           input_format="dynamo")
    assert offline.verdict == sample.verdict == "violation"
    assert offline.finding_counts == sample.finding_counts == final["finding_counts"]


def test_live_dynamo_gap_is_inconclusive(tmp_path: Path) -> None:
    events = router_events()
    stores = [e for e in events if "stored" in e["event"]["data"]]
    for i, e in enumerate(stores, 1):
        e["event"]["event_id"] = i
    del stores[1]  # event 2 never arrives
    rc, lines, _ = run_live(tmp_path, [message([e], i) for i, e in enumerate(stores)],
                            len(stores))
    assert rc == 3
    assert lines[-1]["report"]["verdict"] == "inconclusive"


def test_live_schema_drift_is_exit_2_naming_the_field(tmp_path: Path) -> None:
    events = router_events()[:2]
    events[1]["placement"] = {"x": 1}
    rc, lines, _ = run_live(tmp_path, [message(events, 0)], 2)
    assert rc == 2
    assert any(x["kind"] == "error" and "'placement'" in x["message"] for x in lines)


@pytest.mark.parametrize("args", [["--replay", "tcp://127.0.0.1:2"],
                                  ["nats://127.0.0.1:1", "--stream", "s", "--durable", "d"]])
def test_dynamo_watch_usage_errors(args: list[str]) -> None:
    import subprocess
    import sys

    endpoint = [] if args[0].startswith("nats") else ["tcp://127.0.0.1:1"]
    r = subprocess.run([sys.executable, "-m", "kvclaims.cli", "watch", *endpoint, *args,
                        "--claims", CLAIMS, "--input-format", "dynamo"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
