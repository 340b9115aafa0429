"""Bad input gets a located error and a non-zero exit, never a traceback (fail-closed).

Runs the real console entry point in a subprocess for the user-visible contract (exit code,
file:line:column on stderr or in the JSON report, no traceback) and the library for the large
cases, whose inputs are generated on the fly rather than written to disk.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path


from kvclaims.check.verdict import INCONCLUSIVE, INPUT_ERROR
from kvclaims.run import Options, check_stream

VICTIM = (b'{"event":"allocation_victim_selected","physical_block_id":%d,"request_id":"a",'
          b'"victim_reason":"free_uncached","timestamp_ns":%d,"schema_version":1}\n')
ACCEPT = (b'{"event":"resident_claim_accepted","claim_id":"c%d","protection_mode":"soft_priority",'
          b'"resident_blocks_required":1,"schema_version":1}\n')


def run(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvclaims.cli", *args], input=stdin,
                          capture_output=True, timeout=120)


def assert_clean(proc: subprocess.CompletedProcess) -> None:
    both = proc.stdout + proc.stderr
    assert b"Traceback" not in both, both.decode(errors="replace")


def json_report(proc: subprocess.CompletedProcess) -> dict:
    lines = [ln for ln in proc.stdout.decode().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def write(tmp_path: Path, name: str, data: bytes) -> str:
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_empty_file(tmp_path: Path) -> None:
    proc = run(["check", "--format", "json", write(tmp_path, "e.jsonl", b"")])
    assert proc.returncode == 2
    assert_clean(proc)
    rep = json_report(proc)
    assert rep["verdict"] == INPUT_ERROR and rep["error"]["line"] == 1
    assert "empty" in rep["error"]["message"]


def test_whitespace_only_jsonl(tmp_path: Path) -> None:
    proc = run(["check", "--input-format", "jsonl", write(tmp_path, "w.jsonl", b"\n  \n")])
    assert proc.returncode == 2
    assert_clean(proc)
    assert b"empty trace" in proc.stdout


def test_binary_garbage(tmp_path: Path) -> None:
    proc = run(["check", write(tmp_path, "g.bin", bytes(range(256)) * 40)])
    assert proc.returncode == 2
    assert_clean(proc)
    assert b":1:1" in proc.stdout and b"cannot detect" in proc.stdout


def test_binary_garbage_forced_jsonl(tmp_path: Path) -> None:
    proc = run(["check", "--input-format", "jsonl", "--format", "json",
                write(tmp_path, "g.bin", b"\x00\xff\xfe garbage\n")])
    assert proc.returncode == 2
    assert_clean(proc)
    assert json_report(proc)["error"]["line"] == 1


def test_truncated_last_line_keeps_findings(tmp_path: Path) -> None:
    good = b"".join(VICTIM % (i, i) for i in range(1, 4))
    # A soft claim then a silent loss, then a truncated line.
    body = (b'{"event":"resident_claim_accepted","claim_id":"c","protection_mode":"soft_priority",'
            b'"resident_blocks_required":1,"prefix_id":"p","timestamp_ns":10}\n'
            b'{"event":"resident_block_materialized","claim_id":"c","prefix_id":"p",'
            b'"physical_block_id":1,"logical_block_position":0,"timestamp_ns":11}\n'
            b'{"event":"allocation_victim_selected","physical_block_id":1,"request_id":"a",'
            b'"victim_reason":"cached_prefix_reuse","timestamp_ns":12}\n'
            b'{"event":"allocation_victim_sel')
    proc = run(["check", "--format", "json", write(tmp_path, "t.jsonl", good + body)])
    assert proc.returncode == 2
    assert_clean(proc)
    rep = json_report(proc)
    assert rep["verdict"] == INPUT_ERROR
    assert rep["error"]["line"] == 7 and rep["error"]["column"] > 1
    assert "truncated" in rep["error"]["message"]
    # What was read before the bad line is still decided and reported.
    assert [f["rule"] for f in rep["findings"]] == ["R-no-silent-loss"]
    assert rep["findings"][0]["line"] == 6


def test_invalid_json_middle_line_text_report(tmp_path: Path) -> None:
    data = VICTIM % (1, 1) + b'{"event": "allocation_victim_selected", oops}\n' + VICTIM % (2, 2)
    proc = run(["check", write(tmp_path, "i.jsonl", data)])
    assert proc.returncode == 2
    assert_clean(proc)
    assert b"i.jsonl:2:" in proc.stdout and b"invalid JSON" in proc.stdout


def test_wrong_field_type_points_at_the_field(tmp_path: Path) -> None:
    data = b'{"event":"allocation_victim_selected","physical_block_id":"seven"}\n'
    proc = run(["check", "--format", "json", write(tmp_path, "w.jsonl", data)])
    assert proc.returncode == 2
    rep = json_report(proc)
    assert rep["error"]["column"] == data.index(b'"physical_block_id"') + 1
    assert "must be int" in rep["error"]["message"]


def test_bool_is_not_an_int(tmp_path: Path) -> None:
    data = b'{"event":"allocation_victim_selected","physical_block_id":true}\n'
    proc = run(["check", write(tmp_path, "b.jsonl", data)])
    assert proc.returncode == 2
    assert b"must be int" in proc.stdout


def test_missing_required_field(tmp_path: Path) -> None:
    data = b'{"event":"resident_block_materialized","physical_block_id":3}\n'
    proc = run(["check", write(tmp_path, "m.jsonl", data)])
    assert proc.returncode == 2
    assert_clean(proc)
    assert b"requires field 'logical_block_position'" in proc.stdout


def test_not_an_object(tmp_path: Path) -> None:
    proc = run(["check", "--input-format", "jsonl", write(tmp_path, "a.jsonl", b"[1, 2]\n")])
    assert proc.returncode == 2
    assert b"expected a JSON object" in proc.stdout


def test_ten_megabyte_line(tmp_path: Path) -> None:
    big = b'{"event":"allocation_victim_selected","physical_block_id":1,"hook_scope":"' + \
        b"x" * (10 << 20) + b'"}\n'
    proc = run(["check", "--format", "json", write(tmp_path, "big.jsonl", VICTIM % (1, 1) + big)])
    assert proc.returncode == 2
    assert_clean(proc)
    rep = json_report(proc)
    assert rep["error"]["line"] == 2 and "exceeds" in rep["error"]["message"]
    # The limit is a flag, not a silent cap: raised, the same line is read and checked.
    proc = run(["check", "--max-line-bytes", str(11 << 20),
                write(tmp_path, "big.jsonl", VICTIM % (1, 1) + big)])
    assert proc.returncode == 0, proc.stdout[-500:]


def test_unknown_schema_version_is_inconclusive(tmp_path: Path) -> None:
    data = VICTIM % (1, 1) + b'{"event":"allocation_victim_selected","physical_block_id":2,' \
        b'"schema_version":2}\n'
    proc = run(["check", "--format", "json", write(tmp_path, "v.jsonl", data)])
    assert proc.returncode == 3
    assert_clean(proc)
    rep = json_report(proc)
    assert rep["verdict"] == INCONCLUSIVE
    assert rep["error"]["line"] == 2 and "schema_version" in rep["error"]["message"]


def test_missing_file_and_directory(tmp_path: Path) -> None:
    proc = run(["check", str(tmp_path / "nope.jsonl"), str(tmp_path / "gone.kvt")])
    assert proc.returncode == 2
    assert_clean(proc)
    assert proc.stdout.count(b"cannot open") == 2
    # A directory is walked for traces (docs/fleet.md); one with none is a usage error.
    proc = run(["check", str(tmp_path / "nope.jsonl"), str(tmp_path)])
    assert proc.returncode == 2
    assert_clean(proc)
    assert b"no trace files" in proc.stderr


def test_unknown_require_is_a_usage_error(tmp_path: Path) -> None:
    proc = run(["check", "--require", "nonsense", write(tmp_path, "x.jsonl", VICTIM % (1, 1))])
    assert proc.returncode == 2
    assert_clean(proc)
    assert b"not a mode or gate" in proc.stderr


def test_stdin(tmp_path: Path) -> None:
    proc = run(["check", "--format", "json", "-"], stdin=VICTIM % (1, 1))
    assert proc.returncode == 0
    assert json_report(proc)["file"] == "<stdin>"


class _Generated(io.RawIOBase):
    """A read-only stream of generated lines, so a huge input never sits on disk or in memory."""

    def __init__(self, lines):
        self._lines = lines
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while len(self._buf) < len(b):
            chunk = next(self._lines, None)
            if chunk is None:
                break
            self._buf += chunk
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def test_million_claim_trace_stops_at_the_claim_limit(spec) -> None:
    lines = (ACCEPT % i for i in range(1_000_000))
    fh = io.BufferedReader(_Generated(lines), buffer_size=1 << 16)
    rep = check_stream(fh, "claims.jsonl", spec, Options())
    assert rep.verdict == INPUT_ERROR
    assert rep.error.line == 100_001 and "--max-claims" in rep.error.message
    # the part read is counted; no claim verdicts from a trace not read to its end
    assert rep.events == 100_000 and rep.claims == ()
