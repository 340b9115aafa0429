"""relay -> JetStream -> watch against `kvclaims check` offline, with faults injected
(docs/watch-nats.md; docs/model.md §6 R-stream).

Every test runs a real `nats-server -js` (tests/jetstream/js_harness.py) and ends by comparing the
watch's final report with the offline check of the engine's stream: the server killed and
restarted mid-stream, the watcher killed (SIGKILL) mid-stream and at the point between its
checkpoint and its acknowledgements, duplicate publishes (in and past JetStream's duplicate
window), a consumer slower than the redelivery timeout, and a gap the relay fills from the
engine's replay socket. The stock-vLLM probe's recorded stream is a violation through the whole
path, and a second watch on the consumed durable reports it again from the checkpoint.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from kvclaims import jetstream as jsw
from kvclaims.kvstream import check_records
from kvclaims.relay import relay
from kvclaims.report import json as json_report
from kvclaims.trace.kv_records import Frame, encode_frames, read_frames
from kvclaims.trace.vllm_events import Manifest, ManifestClaim, load_manifest, manifest_toml
from kvclaims.watch_nats import watch_nats

from js_harness import Engine, NatsServer, nats_server  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
KV = [sys.executable, "-m", "kvclaims.cli"]
VLLM = ROOT / "traces" / "vllm" / "0.34.0"
HASHES = [101, 102, 103]
STREAM, SUBJECT = "KV", "kv.engine0"


def manifest_file(tmp: Path) -> str:
    p = tmp / "claims.toml"
    p.write_text(manifest_toml(Manifest([ManifestClaim("claim:c", HASHES, "hard_exclude", "c")],
                                        usable_blocks=8)))
    return str(p)


def batch(t: float, *events: dict[str, Any]) -> bytes:
    return msgspec.msgpack.encode([t, list(events), 0])


def store(*hs: int) -> dict[str, Any]:
    return {"type": "BlockStored", "block_hashes": list(hs), "parent_block_hash": None,
            "token_ids": [], "block_size": 16, "lora_id": None, "medium": "GPU"}


def remove(*hs: int) -> dict[str, Any]:
    return {"type": "BlockRemoved", "block_hashes": list(hs), "medium": "GPU"}


def engine_stream(n: int = 40) -> list[tuple[int, bytes]]:
    """n batches: the claim's blocks stored, other blocks churning, one claimed block lost at
    batch 2n/3 (a violation the watch must find exactly once)."""
    out = [(0, batch(0.0, store(*HASHES)))]
    for s in range(1, n):
        if s == 2 * n // 3:
            out.append((s, batch(float(s), remove(102), store(7))))
        else:
            h = 1000 + s
            out.append((s, batch(float(s), store(h), remove(h - 1) if s > 1 else store(h + 1))))
    return out


def offline(frames: list[tuple[int, bytes]], claims: str, spec) -> dict:
    data = encode_frames([Frame(s, p, i) for i, (s, p) in enumerate(frames, 1)])
    return json_report.to_dict(check_records(data, "f", spec, load_manifest(claims)))


def comparable(d: dict) -> dict:
    # a finding's location starts with the file's name, which differs between live and offline
    d = dict(d, findings=[dict(f, location=f["location"].removeprefix(d["file"]))
                          for f in d["findings"]])
    d = dict(d, file=None)
    d["stream"] = {k: v for k, v in d["stream"].items() if k != "interrupted"}
    return d


class Relay:
    """`kvclaims relay` in a thread, from an engine stand-in to the server."""

    def __init__(self, engine: Engine, url: str, *, max_batches: int | None = None) -> None:
        self.out = io.StringIO()
        self.stop = threading.Event()
        ready = threading.Event()
        self.rc: list[int] = []
        self.thread = threading.Thread(daemon=True, target=lambda: self.rc.append(relay(
            engine.endpoint, url, STREAM, SUBJECT, engine.replay_endpoint, instance="engine0",
            topic="kv", max_batches=max_batches, out=self.out, stop=self.stop, ready=ready)))
        self.thread.start()
        assert ready.wait(30), self.out.getvalue()
        engine.wait_subscriber()

    def join(self) -> str:
        self.thread.join(120)
        assert not self.thread.is_alive(), "relay did not stop"
        assert self.rc == [0], self.out.getvalue()
        return self.out.getvalue()


def watch(url: str, claims: str, durable: str, **kw: Any) -> tuple[int, list[dict]]:
    out = io.StringIO()
    kw.setdefault("idle_timeout", 1.0)
    rc = watch_nats(url, claims, "jsonl", stream=STREAM, durable=durable, out=out, **kw)
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    return rc, lines


def final(lines: list[dict]) -> dict:
    assert lines[-1]["kind"] == "verdict", lines[-3:]
    return lines[-1]["report"]


def relay_all(engine: Engine, url: str, frames: list[tuple[int, bytes]]) -> str:
    r = Relay(engine, url, max_batches=len(frames))
    engine.send(frames)
    return r.join()


# ---- the acceptance path: the stock-vLLM probe ------------------------------------------------
def relay_probe(url: str) -> tuple[Path, str, str]:
    """The recorded stock-vLLM stream published by an engine stand-in and relayed to `url`:
    (the record, its claim manifest, what the relay said)."""
    rec = VLLM / "stock-probe.kvbatches"
    frames = [(f.seq, msgspec.msgpack.encode(f.payload))
              for f in read_frames(rec.read_bytes(), str(rec))]
    engine = Engine(frames)
    try:
        said = relay_all(engine, url, frames)
    finally:
        engine.close()
    return rec, str(VLLM / "claims.toml"), said


def test_stock_vllm_probe_is_a_violation_and_again_from_the_checkpoint(nats_server: NatsServer,
                                                                       tmp_path: Path) -> None:
    rec, claims, said = relay_probe(nats_server.url)
    assert "3 stored, 0 dropped" in said and "(stream created)" in said
    p = subprocess.run([*KV, "check", str(rec), "--claims", claims, "--format", "json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 1, p.stderr
    expected = comparable(json.loads(p.stdout))
    rc, lines = watch(nats_server.url, claims, "audit")
    assert rc == 1 and lines[-1]["verdict"] == "violation"
    assert comparable(final(lines)) == expected
    assert [x["seq"] for x in lines if x["kind"] == "batch"] == [0, 1, 2]
    # a second watch on the consumed durable: nothing new, the verdict from the checkpoint
    rc2, again = watch(nats_server.url, claims, "audit")
    assert rc2 == 1 and again[0]["resumed"] and again[0]["records"] == 3
    assert not [x for x in again if x["kind"] == "batch"]
    assert comparable(final(again)) == expected
    # a watch with no history on an empty subject says it received nothing (inconclusive)
    rc3, empty = watch(nats_server.url, claims, "other", subject="kv.nobody")
    assert rc3 == 3 and [a["kind"] for a in final(empty)["stream"]["anomalies"]] == ["empty"]


def test_rules_left_out_as_check_leaves_them_out(nats_server: NatsServer, tmp_path: Path) -> None:
    # `watch nats:// --ignore/--select` decides through the path `check --ignore/--select` takes
    # (kvclaims.check.selection on the decided report); the checkpoint keeps the undecided state,
    # so a later watch on the same durable counting every rule finds the violation again.
    rec, claims, _ = relay_probe(nats_server.url)
    watch_cmd = [*KV, "watch", nats_server.url, "--stream", STREAM, "--durable", "sel",
                 "--claims", claims, "--idle-timeout", "1", "--format", "jsonl"]
    check_cmd = [*KV, "check", str(rec), "--claims", claims, "--format", "json"]
    whole = json.loads(subprocess.run(check_cmd, capture_output=True, text=True, cwd=ROOT,
                                      timeout=300).stdout)
    violated = sorted({f["rule"] for f in whole["findings"] if f["status"] == "violation"})
    assert violated, "the probe violates some rule"
    for flags, code in ((["--ignore", ",".join(violated)], 0), (["--select", violated[0]], 1)):
        w = subprocess.run([*watch_cmd, *flags], capture_output=True, text=True, cwd=ROOT,
                           timeout=300)
        c = subprocess.run([*check_cmd, *flags], capture_output=True, text=True, cwd=ROOT,
                           timeout=300)
        assert w.returncode == c.returncode == code, (flags, w.stdout, w.stderr)
        lines = [json.loads(x) for x in w.stdout.splitlines()]
        assert comparable(final(lines)) == comparable(json.loads(c.stdout))
        shown = {x["rule"] for x in lines if x["kind"] == "finding" and
                 x["status"] == "violation"}
        assert shown == (set() if flags[0] == "--ignore" else {violated[0]})
    rc, lines = watch(nats_server.url, claims, "sel")  # every rule counted, from the checkpoint
    assert rc == 1 and lines[0]["resumed"] and comparable(final(lines)) == comparable(whole)


# ---- faults -----------------------------------------------------------------------------------
def test_server_killed_and_restarted_mid_stream(nats_server: NatsServer, tmp_path: Path,
                                                spec) -> None:
    claims = manifest_file(tmp_path)
    frames = engine_stream(40)
    half = len(frames) // 2
    engine = Engine(frames)
    first_half = threading.Event()

    def fault(point: str, stream_seq: int) -> None:
        if point == "checkpointed" and stream_seq >= half:
            first_half.set()

    try:
        r = Relay(engine, nats_server.url, max_batches=len(frames))
        out: list[Any] = []
        t = threading.Thread(daemon=True, target=lambda: out.append(watch(
            nats_server.url, claims, "audit", idle_timeout=3.0, fetch=4, checkpoint_interval=0,
            fault=fault)))
        t.start()
        engine.send(frames[:half])
        assert first_half.wait(60), "the watch did not decide the first half"
        nats_server.kill()  # a crash: the relay and the watch now wait for the server
        engine.send(frames[half:])  # published while the server is down: the relay retries
        nats_server.start()
        said = r.join()
        t.join(120)
        assert not t.is_alive()
    finally:
        engine.close()
    rc, lines = out[0]
    assert f"{len(frames)} stored, 0 dropped" in said
    assert comparable(final(lines)) == comparable(offline(frames, claims, spec))
    assert rc == 1 and lines[-1]["verdict"] == "violation"


@pytest.mark.parametrize("kill_after", [1, 9, 30])
def test_watcher_killed_mid_stream(nats_server: NatsServer, tmp_path: Path, spec,
                                   kill_after: int) -> None:
    claims = manifest_file(tmp_path)
    frames = engine_stream(40)
    engine = Engine(frames)
    try:
        relay_all(engine, nats_server.url, frames)
    finally:
        engine.close()
    proc = subprocess.Popen([*KV, "watch", nats_server.url, "--stream", STREAM, "--durable", "d",
                             "--claims", claims, "--format", "jsonl", "--fetch", "3",
                             "--ack-wait", "1", "--checkpoint-interval", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            if json.loads(line)["kind"] == "batch":
                seen += 1
                if seen == kill_after:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    rc, lines = watch(nats_server.url, claims, "d", idle_timeout=3.0, fetch=3)
    report = final(lines)
    assert comparable(report) == comparable(offline(frames, claims, spec))
    assert report["stream"]["records"] == len(frames)  # none lost, none counted twice
    assert rc == 1


def test_watcher_dies_between_checkpoint_and_ack(nats_server: NatsServer, tmp_path: Path,
                                                 spec) -> None:
    """The one point where batches are checkpointed but not acknowledged: the restarted watch
    resumes after its checkpoint, not after JetStream's acknowledgement floor."""
    claims = manifest_file(tmp_path)
    frames = engine_stream(20)
    engine = Engine(frames)
    try:
        relay_all(engine, nats_server.url, frames)
    finally:
        engine.close()

    class Death(Exception):
        pass

    def die(point: str, stream_seq: int) -> None:
        if point == "checkpointed" and stream_seq >= 8:
            raise Death

    with pytest.raises(Death):
        watch(nats_server.url, claims, "d", fetch=4, ack_wait=1.0, checkpoint_interval=0,
              fault=die)
    rc, lines = watch(nats_server.url, claims, "d", idle_timeout=3.0, fetch=4)
    assert lines[0]["resumed"] and lines[0]["records"] == 8
    # the four checkpointed but unacknowledged are not decided again
    assert [x["seq"] for x in lines if x["kind"] == "batch"] == list(range(8, 20))
    report = final(lines)
    assert comparable(report) == comparable(offline(frames, claims, spec))
    assert report["stream"]["records"] == len(frames)


def test_duplicate_publishes(nats_server: NatsServer, tmp_path: Path, spec) -> None:
    """A frame the engine sent twice is one message (JetStream's duplicate window drops the
    relay's second publish); a copy stored past the window (a new message id) is dropped by
    the watch. The report is the one of the engine's stream, each batch once."""
    claims = manifest_file(tmp_path)
    frames = engine_stream(12)
    sent = frames[:5] + [frames[4], frames[2]] + frames[5:] + [frames[11]]
    engine = Engine(frames)
    try:
        said = relay_all(engine, nats_server.url, sent)
    finally:
        engine.close()
    assert f"{len(frames)} stored, 3 dropped by JetStream" in said  # frames 4, 2, 11 again
    import asyncio

    async def republish() -> None:  # the copy JetStream cannot recognise: another message id
        nc = await jsw.connect(nats_server.url)
        js = nc.jetstream()
        h = jsw.headers("engine0", 0, 6, b"kv")
        h[jsw.MSG_ID] = "past-the-window"
        ack = await js.publish(SUBJECT, frames[6][1], stream=STREAM, headers=h)
        assert not ack.duplicate
        await nc.close()

    asyncio.run(republish())
    rc, lines = watch(nats_server.url, claims, "d")
    assert [x["seq"] for x in lines if x["kind"] == "dropped" and "seq" in x] == [6]
    assert comparable(final(lines)) == comparable(offline(frames, claims, spec))


def test_slow_consumer(nats_server: NatsServer, tmp_path: Path, spec) -> None:
    """The engine publishes faster than the watch decides, and one batch takes longer than the
    redelivery timeout: the stream holds what the watch has not read, nothing is lost or
    decided twice."""
    import time

    claims = manifest_file(tmp_path)
    frames = engine_stream(30)
    engine = Engine(frames)

    def slow(point: str, stream_seq: int) -> None:
        if point == "decided":
            time.sleep(1.5 if stream_seq == 5 else 0.02)

    try:
        r = Relay(engine, nats_server.url, max_batches=len(frames))
        out: list[Any] = []
        t = threading.Thread(daemon=True, target=lambda: out.append(watch(
            nats_server.url, claims, "slow", idle_timeout=3.0, fetch=8, ack_wait=0.5,
            fault=slow)))
        t.start()
        engine.send(frames)
        r.join()
        t.join(120)
        assert not t.is_alive()
    finally:
        engine.close()
    rc, lines = out[0]
    report = final(lines)
    assert comparable(report) == comparable(offline(frames, claims, spec))
    assert report["stream"]["records"] == len(frames)


def test_relay_fills_a_gap_from_the_replay_socket(nats_server: NatsServer, tmp_path: Path,
                                                  spec) -> None:
    """Batches lost on the PUB socket are asked from the engine's replay ROUTER and stored
    before the batch that showed them missing: the watch sees no gap."""
    claims = manifest_file(tmp_path)
    frames = engine_stream(12)
    pub = [f for f in frames if f[0] not in (0, 3, 4, 9)]  # even the first is missed
    engine = Engine(frames, replay=True)
    try:
        said = relay_all(engine, nats_server.url, pub)
    finally:
        engine.close()
    assert "4 filled from the replay socket" in said and f"{len(frames)} stored" in said
    rc, lines = watch(nats_server.url, claims, "d")
    report = final(lines)
    assert [a["kind"] for a in report["stream"]["anomalies"]] == []
    assert comparable(report) == comparable(offline(frames, claims, spec))


def test_publisher_restart_is_a_new_run(nats_server: NatsServer, tmp_path: Path, spec) -> None:
    """The engine restarts (numbering back to 0): the relay stores the new run under a new
    epoch (JetStream must not drop it as duplicates) and the watch reports the restart, as the
    offline check of the same frames does."""
    claims = manifest_file(tmp_path)
    run1 = engine_stream(6)
    run2 = [(s, batch(100.0 + s, store(2000 + s))) for s in range(4)]
    engine = Engine(run1 + run2)
    try:
        said = relay_all(engine, nats_server.url, run1 + run2)
    finally:
        engine.close()
    assert "10 stored, 0 dropped" in said
    rc, lines = watch(nats_server.url, claims, "d")
    report = final(lines)
    assert "restart" in [a["kind"] for a in report["stream"]["anomalies"]]
    assert comparable(report) == comparable(offline(run1 + run2, claims, spec))
    assert rc == 1  # the violation of the first run stands; the second run is unknown


def test_refused_checkpoint_and_usage_errors(nats_server: NatsServer, tmp_path: Path) -> None:
    claims = manifest_file(tmp_path)
    frames = engine_stream(4)
    engine = Engine(frames)
    try:
        relay_all(engine, nats_server.url, frames)
    finally:
        engine.close()
    rc, _ = watch(nats_server.url, claims, "d")
    assert rc == 1
    other = tmp_path / "other.toml"
    other.write_text(manifest_toml(Manifest([ManifestClaim("claim:x", [5], "hard_exclude", "x")],
                                            usable_blocks=8)))
    p = subprocess.run([*KV, "watch", nats_server.url, "--stream", STREAM, "--durable", "d",
                        "--claims", str(other), "--idle-timeout", "1"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 2 and "refused" in p.stdout and "another claim manifest" in p.stdout
    assert "Traceback" not in p.stderr
    q = subprocess.run([*KV, "watch", nats_server.url, "--stream", "NOPE", "--durable", "d",
                        "--claims", claims, "--idle-timeout", "1"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert q.returncode == 2 and "no stream NOPE" in q.stdout and "Traceback" not in q.stderr
    u = subprocess.run([*KV, "watch", nats_server.url, "--claims", claims], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert u.returncode == 2 and "--stream and --durable" in u.stderr
    env = dict(os.environ)
    m = subprocess.run([sys.executable, "-c", "import sys; sys.modules['nats'] = None; "
                        "from kvclaims.cli import main; sys.argv = ['kvclaims', 'watch', "
                        "'nats://127.0.0.1:9', '--stream', 'S', '--durable', 'D', '--claims', "
                        "sys.argv[1]]; main()", claims], capture_output=True, text=True,
                       cwd=ROOT, timeout=60, env=env)
    assert m.returncode == 2 and "kvclaims[nats]" in m.stderr and "Traceback" not in m.stderr
    for cmd in (["watch", "nats://127.0.0.1:9", "--stream", "S", "--durable", "D", "--claims",
                 claims], ["relay", "tcp://127.0.0.1:9", "nats://127.0.0.1:9", "--stream", "S",
                           "--subject", "s"]):
        r = subprocess.run([*KV, *cmd], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert r.returncode == 2 and "cannot connect" in r.stdout, (cmd, r.stdout, r.stderr)


def test_sigterm_while_the_server_is_away_still_reports(nats_server: NatsServer,
                                                        tmp_path: Path) -> None:
    claims = manifest_file(tmp_path)
    frames = engine_stream(6)
    engine = Engine(frames)
    try:
        relay_all(engine, nats_server.url, frames)
    finally:
        engine.close()
    proc = subprocess.Popen([*KV, "watch", nats_server.url, "--stream", STREAM, "--durable", "d",
                             "--claims", claims, "--format", "jsonl"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        seen = 0
        for line in proc.stdout:
            seen += json.loads(line)["kind"] == "batch"
            if seen == len(frames):
                break
        nats_server.kill()
        proc.send_signal(signal.SIGTERM)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    last = json.loads(rest.splitlines()[-1])
    assert last["kind"] == "verdict" and last["interrupted"] == "SIGTERM"
    assert last["report"]["stream"]["records"] == len(frames)


def test_relay_a_record_file_twice(nats_server: NatsServer, tmp_path: Path, spec) -> None:
    """An archived stream onto the bus: relayed again, every batch is a duplicate (the same
    ids), and the watch decides each once; a record without sequence numbers is refused."""
    claims = manifest_file(tmp_path)
    frames = engine_stream(9)
    rec = tmp_path / "s.kvbatches"
    rec.write_bytes(encode_frames([Frame(s, msgspec.msgpack.decode(p), i)
                                   for i, (s, p) in enumerate(frames, 1)]))
    args = [*KV, "relay", str(rec), nats_server.url, "--stream", STREAM, "--subject", SUBJECT,
            "--instance", "engine0"]
    first = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    again = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert first.returncode == 0 and "9 stored, 0 dropped" in first.stdout, first.stderr
    assert again.returncode == 0 and "0 stored, 9 dropped" in again.stdout, again.stderr
    rc, lines = watch(nats_server.url, claims, "d")
    assert comparable(final(lines)) == comparable(offline(frames, claims, spec))
    bare = tmp_path / "bare.kvbatches"
    bare.write_bytes(msgspec.msgpack.encode([1.0, [store(101)], 0]))
    p = subprocess.run([*KV, "relay", str(bare), nats_server.url, "--stream", STREAM,
                        "--subject", SUBJECT], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    assert p.returncode == 2 and f"{bare}:1:1" in p.stdout and "Traceback" not in p.stderr


def test_relay_restarted_while_the_engine_runs(nats_server: NatsServer, tmp_path: Path,
                                               spec) -> None:
    """A relay stopped and started again continues the instance's run from the stream's last
    message: the engine's next batches are the same run (no restart reported, nothing lost)."""
    claims = manifest_file(tmp_path)
    frames = engine_stream(14)
    engine = Engine(frames)
    try:
        first = Relay(engine, nats_server.url, max_batches=6)
        engine.send(frames[:6])
        first.join()
        second = Relay(engine, nats_server.url, max_batches=len(frames) - 6)
        engine.send(frames[6:])
        said = second.join()
    finally:
        engine.close()
    assert f"{len(frames) - 6} stored, 0 dropped" in said
    rc, lines = watch(nats_server.url, claims, "d")
    report = final(lines)
    assert report["stream"]["anomalies"] == []
    assert comparable(report) == comparable(offline(frames, claims, spec))
