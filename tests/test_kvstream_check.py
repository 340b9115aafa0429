"""`kvclaims check FILE.kvbatches --claims M.toml`: recorded KV event streams as input
(kvclaims.kvstream; docs/model.md §6 R-stream; docs/vllm.md). Every edit of a record file that loses,
repeats or renumbers batches is reported, located, and never conformant where events may be
missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from kvclaims.run import Options, check_path

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "traces" / "vllm" / "0.34.0" / "stock-probe.kvbatches"
CLAIMS = ROOT / "traces" / "vllm" / "0.34.0" / "claims.toml"
KV = [sys.executable, "-m", "kvclaims.cli"]
RECORDS = msgspec.msgpack.decode(PROBE.read_bytes())


def kv(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*KV, *args], input=data, capture_output=True, cwd=ROOT, timeout=120)


def check(records: list, tmp: Path, spec, name: str = "edit.kvbatches"):
    p = tmp / name
    p.write_bytes(msgspec.msgpack.encode(records))
    return check_path(str(p), spec, Options(claims=str(CLAIMS)))


def stores_only() -> list:
    """A conformant stream: the claim's blocks stored, then two batches of other blocks."""
    other = lambda h: {"type": "BlockStored", "block_hashes": [h], "medium": "GPU"}  # noqa: E731
    return [[0, RECORDS[0][1]], [1, [2.0, [other(1)], 0]], [2, [3.0, [other(2)], 0]]]


def test_stock_probe_is_a_located_violation() -> None:
    p = kv("check", str(PROBE), "--claims", str(CLAIMS))
    assert p.returncode == 1
    out = p.stdout.decode()
    assert "VIOLATION R-no-silent-loss" in out
    assert "record 2, batch 1, position 1 in the batch" in out  # batch 1's first BlockRemoved
    j = kv("check", str(PROBE), "--claims", str(CLAIMS), "--format", "json")
    d = json.loads(j.stdout)
    assert j.returncode == 1 and d["verdict"] == "violation"
    (f,) = [f for f in d["findings"] if f["rule"] == "R-no-silent-loss"]
    assert (f["record"], f["batch"], f["batch_event"]) == (2, 1, 1)
    assert d["stream"] == {"records": 3, "batches": 3, "window": 32, "anomalies": []}


def test_stdin_and_input_format() -> None:
    p = kv("check", "-", "--claims", str(CLAIMS), "--input-format", "vllm", "--format", "json",
           data=PROBE.read_bytes())
    assert p.returncode == 1 and json.loads(p.stdout)["file"] == "<stdin>"


def test_raw_frame_layout_reads_as_the_record(tmp_path: Path, spec) -> None:
    raw = [[b"kv", s.to_bytes(8, "big"), msgspec.msgpack.encode(b)] for s, b in RECORDS]
    a = check(raw, tmp_path, spec)
    b = check_path(str(PROBE), spec, Options(claims=str(CLAIMS)))
    assert a.verdict == b.verdict == "violation"
    assert a.findings == b.findings


@pytest.mark.parametrize("args,words", [
    ((), "needs its claim manifest"),
    (("--claims", "missing.toml"), "cannot open claim manifest"),
])
def test_usage_errors_exit_2(args: tuple[str, ...], words: str) -> None:
    p = kv("check", str(PROBE), *args)
    assert p.returncode == 2 and words in p.stdout.decode(), p.stdout


def test_malformed_record_is_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.kvbatches"
    bad.write_bytes(msgspec.msgpack.encode([RECORDS[0], "nope"]))
    p = kv("check", str(bad), "--claims", str(CLAIMS), "--format", "json")
    d = json.loads(p.stdout)
    assert p.returncode == 2 and d["error"]["line"] == 2 and "record 2" in d["error"]["message"]


def edits(records: list) -> dict[str, list]:
    """Every removal, duplication and renumbering-from-0 of one record, and adjacent swaps."""
    n = len(records)
    out = {}
    for i in range(n):
        out[f"remove {i}"] = records[:i] + records[i + 1:]
        out[f"duplicate {i}"] = records[:i + 1] + [records[i]] + records[i + 1:]
        out[f"duplicate {i} at end"] = records + [records[i]]
        if i > 0:
            out[f"renumber from 0 at {i}"] = records[:i] + [[k, r[1]] for k, r in
                                                            enumerate(records[i:])]
        if i + 1 < n:
            out[f"swap {i}"] = records[:i] + [records[i + 1], records[i]] + records[i + 2:]
    out["renumber all from 5"] = [[k + 5, r[1]] for k, r in enumerate(records)]
    return out


def test_edited_stock_probe_is_never_conformant(tmp_path: Path, spec) -> None:
    for name, records in edits([list(r) for r in RECORDS]).items():
        rep = check(records, tmp_path, spec)
        assert rep.verdict in ("violation", "inconclusive"), name


def test_edits_of_a_conformant_stream(tmp_path: Path, spec) -> None:
    base = stores_only()
    assert check(base, tmp_path, spec).verdict == "conformant"
    for name, records in edits(base).items():
        rep = check(records, tmp_path, spec)
        kinds = [a["kind"] for a in rep.extra["stream"]["anomalies"]]
        if name == f"remove {len(base) - 1}":
            # a lost last batch leaves no trace in the numbers: nothing follows it
            assert rep.verdict == "conformant" and kinds == []
        elif name.startswith("duplicate"):
            assert rep.verdict == "conformant" and kinds == ["duplicate"], name  # dropped, said
        elif name.startswith("swap"):
            assert rep.verdict == "conformant" and kinds == [], name  # within the window
        else:
            assert rep.verdict == "inconclusive", (name, kinds)
            assert any(a["unknown"] for a in rep.extra["stream"]["anomalies"])
            assert any(f.rule == "R-stream" and f.status == "unknown" for f in rep.findings)


def test_swap_beyond_the_window_is_a_gap(tmp_path: Path, spec) -> None:
    base = stores_only()
    p = tmp_path / "s.kvbatches"
    p.write_bytes(msgspec.msgpack.encode([base[1], base[2], base[0]]))
    rep = check_path(str(p), spec, Options(claims=str(CLAIMS), reorder_window=1))
    kinds = [a["kind"] for a in rep.extra["stream"]["anomalies"]]
    assert kinds == ["missed_history", "late"] and rep.verdict == "inconclusive"


def test_explain_draws_a_recorded_stream(tmp_path: Path) -> None:
    out = tmp_path / "probe.html"
    p = kv("explain", str(PROBE), "--claims", str(CLAIMS), "--out", str(out))
    assert p.returncode == 0, p.stderr
    assert "claim:resident" in out.read_text()
    q = kv("explain", str(PROBE), "--out", str(out))
    assert q.returncode == 2 and b"--claims" in q.stderr


def test_undecodable_and_conflicting_batches_are_unknown(tmp_path: Path, spec) -> None:
    base = stores_only()
    bad = check([base[0], [1, [1.0, "not events"]], base[2]], tmp_path, spec)
    assert [a["kind"] for a in bad.extra["stream"]["anomalies"]] == ["undecodable"]
    assert bad.verdict == "inconclusive"
    two = check([base[0], base[2], [2, base[1][1]], base[1]], tmp_path, spec)
    assert "conflict" in [a["kind"] for a in two.extra["stream"]["anomalies"]]
    assert two.verdict == "inconclusive"


def test_require_gate_reads_the_joined_stream() -> None:
    p = kv("check", str(PROBE), "--claims", str(CLAIMS), "--require", "soft_priority",
           "--format", "json")
    d = json.loads(p.stdout)
    assert p.returncode == 1 and [g["bundle"] for g in d["gates"]] == ["soft_priority"]
    assert not d["gates"][0]["passed"]
