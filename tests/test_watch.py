"""`kvclaims watch` live against `kvclaims check` offline: one answer (docs/model.md §6 R-stream).

A publisher in the test sends vLLM's frame layout `[topic, seq (8 bytes), payload]` over real ZMQ
sockets on 127.0.0.1 (an XPUB socket, so it publishes once the watcher's subscription arrived:
no sleeps). Generated streams with drops, duplicates, reordering within and beyond the window and
restarts must give the same report live, from the record the watch wrote, and from the frames
themselves; and never conformant where history is missing. The real vLLM publisher is exercised
in tests/vllm/test_watch.py.
"""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from kvclaims.kvstream import check_records
from kvclaims.report import json as json_report
from kvclaims.trace.kv_records import SEQ_BYTES, Frame, encode_frames, read_frames
from kvclaims.trace.vllm_events import Manifest, ManifestClaim, manifest_toml
from kvclaims.watch import watch

ROOT = Path(__file__).resolve().parents[1]
KV = [sys.executable, "-m", "kvclaims.cli"]
HASHES = [101, 102, 103]
TOPIC = b"kv"


def manifest_file(tmp: Path) -> str:
    p = tmp / "claims.toml"
    p.write_text(manifest_toml(Manifest([ManifestClaim("claim:c", HASHES, "hard_exclude", "c")],
                                        usable_blocks=8)))
    return str(p)


class Publisher:
    """An XPUB socket on a free loopback port; send() once a subscriber is there."""

    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.XPUB)
        self.sock.setsockopt(zmq.LINGER, 1000)
        self.sock.bind("tcp://127.0.0.1:0")
        self.endpoint = self.sock.getsockopt(zmq.LAST_ENDPOINT).decode()

    def send(self, frames: list[tuple[int, bytes]]) -> None:
        assert self.sock.poll(20_000), "no subscriber within 20 s"
        assert self.sock.recv()[:1] == b"\x01"  # the subscription message
        for seq, payload in frames:
            self.sock.send_multipart([TOPIC, seq.to_bytes(SEQ_BYTES, "big"), payload])

    def close(self) -> None:
        self.sock.close(linger=1000)
        self.ctx.term()


def live(tmp: Path, frames: list[tuple[int, bytes]], window: int, manifest: str | None = None,
         lines: list[dict] | None = None, **options) -> tuple[int, dict, str]:
    """Watch `frames` published live: (exit code, final report, the record written); every
    JSON line the watch printed is appended to `lines` when given."""
    pub = Publisher()
    out = io.StringIO()
    rec = str(tmp / "live.kvbatches")
    rc: list[int] = []
    t = threading.Thread(target=lambda: rc.append(watch(
        pub.endpoint, None, manifest or manifest_file(tmp), "jsonl", topic="kv", record=rec,
        max_batches=len(frames) or None, idle_timeout=None if frames else 0.5, window=window,
        out=out, **options)))
    t.start()
    try:
        pub.send(frames)
        t.join(120)
        assert not t.is_alive(), "watch did not stop"
    finally:
        pub.close()
    printed = [json.loads(x) for x in out.getvalue().splitlines()]
    if lines is not None:
        lines.extend(printed)
    assert printed[-1]["kind"] == "verdict"
    return rc[0], printed[-1]["report"], rec


def comparable(d: dict) -> dict:
    # a finding's location starts with the file's name, which differs between live and offline
    d["findings"] = [dict(f, location=f["location"].removeprefix(d["file"]))
                     for f in d["findings"]]
    d = dict(d, file=None)
    d["stream"] = {k: v for k, v in d["stream"].items() if k != "interrupted"}
    return d


# ---- generated streams -------------------------------------------------------------------------
kv_event = st.one_of(
    st.builds(lambda hs: {"type": "BlockStored", "block_hashes": hs, "parent_block_hash": None,
                          "token_ids": [], "block_size": 16, "lora_id": None, "medium": "GPU"},
              st.lists(st.sampled_from(HASHES + [7, 8]), min_size=1, max_size=3)),
    st.builds(lambda hs: {"type": "BlockRemoved", "block_hashes": hs, "medium": "GPU"},
              st.lists(st.sampled_from(HASHES + [7]), min_size=1, max_size=2)),
    st.just({"type": "AllBlocksCleared"}),
)


@st.composite
def streams(draw):
    """A publisher's runs of batches (restarts start again at 0), then a network that drops,
    duplicates and reorders frames."""
    runs = draw(st.lists(st.lists(st.lists(kv_event, max_size=3), min_size=1, max_size=5),
                         min_size=1, max_size=2))
    sent = [(r, s, msgspec.msgpack.encode([float(r * 100 + s), events, 0]))
            for r, batches in enumerate(runs) for s, events in enumerate(batches)]
    out = []
    for item in sent:
        what = draw(st.sampled_from(["keep"] * 6 + ["drop", "dup"]))
        if what != "drop":
            out.append(item)
        if what == "dup":
            out.append(item)
    for _ in range(draw(st.integers(0, 2))):
        if len(out) >= 2:
            i = draw(st.integers(0, len(out) - 2))
            j = draw(st.integers(i + 1, min(len(out) - 1, i + 4)))
            out.insert(j, out.pop(i))
    return runs, sent, out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(case=streams(), window=st.integers(0, 3))
def test_live_and_offline_give_one_report(tmp_path: Path, spec, case, window: int) -> None:
    runs, sent, arrived = case
    frames = [(s, p) for _, s, p in arrived]
    rc, live_report, rec = live(tmp_path, frames, window)
    from kvclaims.trace.vllm_events import load_manifest

    manifest = load_manifest(manifest_file(tmp_path))
    offline = check_records(encode_frames([Frame(s, p, i) for i, (s, p) in enumerate(frames, 1)]),
                            "f", spec, manifest, window=window)
    recorded = check_records(Path(rec).read_bytes(), "f", spec, manifest, window=window)
    assert comparable(live_report) == comparable(json_report.to_dict(offline))
    assert comparable(json_report.to_dict(recorded)) == comparable(json_report.to_dict(offline))
    assert rc == {"conformant": 0, "violation": 1, "inconclusive": 3}[offline.verdict]
    event(f"{offline.verdict} ({offline.extra.get('engine', 'replay')})")
    # History missing (the first batch, or one below a later received one) is never conformant;
    # nor is a restart (numbers going back). A run whose numbers continue another's after losses
    # cannot be told from one run by its numbers (docs/vllm.md, limits): single runs, and clean
    # restarts, are asserted.
    got = {(r, s) for r, s, _ in arrived}
    if len(runs) == 1:
        seen = [s for _, s in got]
        if not arrived or 0 not in seen or any(s not in seen for s in range(max(seen))):
            assert offline.verdict != "conformant", (arrived, offline.extra["stream"])
    elif list(dict.fromkeys((r, s) for r, s, _ in arrived)) == [(r, s) for r, s, _ in sent]:
        assert offline.verdict != "conformant"


# ---- the command line --------------------------------------------------------------------------
def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*KV, *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          **kw)


def test_nothing_published_is_inconclusive(tmp_path: Path) -> None:
    pub = Publisher()
    try:
        p = run_cli("watch", pub.endpoint, "--claims", manifest_file(tmp_path),
                    "--idle-timeout", "1", "--format", "jsonl")
    finally:
        pub.close()
    assert p.returncode == 3, p.stderr
    final = json.loads(p.stdout.splitlines()[-1])
    assert final["verdict"] == "inconclusive"
    assert [a["kind"] for a in final["report"]["stream"]["anomalies"]] == ["empty"]


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_prints_the_report_and_says_interrupted(tmp_path: Path, sig, code) -> None:
    pub = Publisher()
    rec = tmp_path / "sig.kvbatches"
    proc = subprocess.Popen([*KV, "watch", pub.endpoint, "--claims", manifest_file(tmp_path),
                             "--format", "jsonl", "--topic", "kv", "--record", str(rec)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        store = msgspec.msgpack.encode([1.0, [{"type": "BlockStored", "block_hashes": HASHES}],
                                        0])
        pub.send([(0, store)])
        assert proc.stdout is not None
        for line in proc.stdout:  # the batch was decided: the watch is running
            if json.loads(line)["kind"] == "batch":
                break
        # the record is whole while the watch runs
        assert [f.seq for f in read_frames(rec.read_bytes(), "r")] == [0]
        proc.send_signal(sig)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        pub.close()
    assert proc.returncode == code, err
    final = json.loads(rest.splitlines()[-1])
    assert final["interrupted"] == signal.Signals(sig).name
    assert final["report"]["stream"]["interrupted"] == signal.Signals(sig).name
    assert final["verdict"] == "conformant"  # one complete batch: the verdict is still given


def test_missing_pyzmq_names_the_extra(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['zmq'] = None; from kvclaims.cli import main; "
            "sys.argv = ['kvclaims', 'watch', 'tcp://127.0.0.1:9', '--claims', sys.argv[1]]; "
            "main()")
    p = subprocess.run([sys.executable, "-c", code, manifest_file(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0 and "kvclaims[vllm]" in p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr


def test_record_rechecks_from_the_command_line(tmp_path: Path) -> None:
    store = msgspec.msgpack.encode([1.0, [{"type": "BlockStored", "block_hashes": HASHES}], 0])
    lose = msgspec.msgpack.encode([2.0, [{"type": "BlockRemoved", "block_hashes": [102]}], 0])
    rc, report, rec = live(tmp_path, [(0, store), (1, lose)], 32)
    assert rc == 1 and report["verdict"] == "violation"
    p = run_cli("check", rec, "--claims", manifest_file(tmp_path), "--format", "json")
    assert p.returncode == 1
    offline = json.loads(p.stdout)
    assert comparable(offline) == comparable(report)
    (f,) = [f for f in offline["findings"] if f["rule"] == "R-no-silent-loss"]
    assert (f["record"], f["batch"], f["batch_event"]) == (2, 1, 1)
    p2 = subprocess.run([*KV, "check", "-", "--claims", manifest_file(tmp_path), "--format",
                         "json"], input=Path(rec).read_bytes(), capture_output=True, cwd=ROOT,
                        timeout=120)
    assert p2.returncode == 1
    assert comparable(json.loads(p2.stdout)) == comparable(report)


def test_bad_endpoint_or_manifest_is_exit_2(tmp_path: Path) -> None:
    p = run_cli("watch", "notanendpoint", "--claims", manifest_file(tmp_path))
    assert p.returncode == 2 and "notanendpoint" in p.stdout and "Traceback" not in p.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("x = [")
    q = run_cli("watch", "tcp://127.0.0.1:9", "--claims", str(bad))
    assert q.returncode == 2 and "bad.toml:1:1" in q.stdout


def test_rules_left_out_live_as_offline(tmp_path: Path, spec) -> None:
    """--select/--ignore (kvclaims.check.selection): the live watch leaves out what `check` of
    the same frames leaves out, shows no finding it does not count, and names the rules."""
    from kvclaims.check import selection
    from kvclaims.run import Options, decide_path

    vllm = ROOT / "traces" / "vllm" / "0.34.0"
    data = (vllm / "stock-probe.kvbatches").read_bytes()
    frames = [(f.seq, f.payload if isinstance(f.payload, bytes) else msgspec.msgpack.encode(
        f.payload)) for f in read_frames(data, "probe")]
    left = selection.resolve(spec, ["no-silent-loss", "hard"])
    rules = selection.selection(spec, (), left, "--ignore")
    lines: list[dict] = []
    code, live_report, _ = live(tmp_path, frames, 32, str(vllm / "claims.toml"), lines,
                                rules=rules)
    offline = decide_path(str(vllm / "stock-probe.kvbatches"), spec,
                          Options(claims=str(vllm / "claims.toml"), ignore=left,
                                  rules_by="--ignore"))
    whole = decide_path(str(vllm / "stock-probe.kvbatches"), spec,
                        Options(claims=str(vllm / "claims.toml")))
    assert {f.rule for f in whole.findings if f.status == "violation"} & set(left)
    assert comparable(live_report) == comparable(json_report.to_dict(offline))
    assert live_report["rules_left_out"]["rules"] == list(left)
    assert not any(x["kind"] == "finding" and x["rule"] in left and x["status"] == "violation"
                   for x in lines)
    assert code == {"conformant": 0, "violation": 1, "inconclusive": 3}[offline.verdict]
