"""gzip input (kvclaims.trace.compressed): read wherever the plain file is, by its magic bytes;
a truncated or corrupt stream is a located input error, and nothing but a prefix of the real
data is ever handed to a reader before it (fail-closed)."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from kvclaims.run import Options, decide_path
from kvclaims.report import json as json_report
from kvclaims.trace.compressed import decompressed
from kvclaims.trace.model import InputError

RULES = ROOT / "traces" / "rules"
TEXT = st.lists(st.text(alphabet="ab \t{}\"=", max_size=40), max_size=30).map(
    lambda lines: "\n".join(lines).encode())


def read_all(data: bytes) -> tuple[bytes, InputError | None]:
    """What a reader gets from `data`: the bytes before any error, and the error (a buffered
    reader may drop the bytes of the read call that ended in the error: a prefix)."""
    fh = decompressed(io.BufferedReader(io.BytesIO(data)), "t.gz")  # type: ignore[arg-type]
    got = bytearray()
    try:
        while chunk := fh.read(7):  # small reads: the error must come after all data before it
            got += chunk
    except InputError as err:
        return bytes(got), err
    return bytes(got), None


def position_after(data: bytes) -> tuple[int, int]:
    """1-based (line, column) of the byte after `data`."""
    return data.count(b"\n") + 1, len(data) - (data.rfind(b"\n") + 1) + 1


@given(TEXT)
def test_plain_bytes_pass_through_and_gzip_is_read_by_its_magic(text: bytes) -> None:
    assert read_all(text) == (text, None) or text[:2] == b"\x1f\x8b"
    assert read_all(gzip.compress(text)) == (text, None)
    # several members, as `cat a.gz b.gz` makes
    assert read_all(gzip.compress(text) + gzip.compress(b"tail")) == (text + b"tail", None)


@settings(max_examples=60)
@given(TEXT, st.data())
def test_a_truncated_stream_is_an_error_located_where_its_data_stops(text: bytes,
                                                                      data: st.DataObject) -> None:
    packed = gzip.compress(text)
    cut = data.draw(st.integers(min_value=2, max_value=len(packed) - 1))
    got, err = read_all(packed[:cut])
    assert err is not None, "a truncated stream must never read as complete"
    readable = zlib.decompressobj(wbits=31).decompress(packed[:cut])
    assert text.startswith(readable) and readable.startswith(got)
    assert (err.line, err.column) == position_after(readable)
    assert "truncated gzip stream" in err.message


@settings(max_examples=60)
@given(TEXT, st.data())
def test_a_corrupt_stream_never_hands_out_wrong_data_silently(text: bytes,
                                                             data: st.DataObject) -> None:
    packed = bytearray(gzip.compress(text))
    at = data.draw(st.integers(min_value=10, max_value=len(packed) - 1))  # past the header
    packed[at] ^= data.draw(st.integers(min_value=1, max_value=255))
    got, err = read_all(bytes(packed))
    if err is None:
        assert got == text  # only a flip that changes nothing may pass
    else:
        assert "gzip stream" in err.message and err.line >= 1 and err.column >= 1


@pytest.mark.parametrize("name", ["bad-silent-loss.kvt", "ok-hard-refusal.kvt",
                                  "unknown-stream-gap.kvt"])
def test_a_compressed_trace_decides_as_the_plain_one(tmp_path: Path, spec, name: str) -> None:
    plain = RULES / name
    packed = tmp_path / (name + ".gz")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for engine in ("auto", "replay", "z3"):
        a = json_report.to_dict(decide_path(str(plain), spec, Options(engine=engine)))
        b = json_report.to_dict(decide_path(str(packed), spec, Options(engine=engine)))
        assert without_file(a) == without_file(b)


def without_file(d: dict) -> dict:
    """A JSON report without its file's name (also the start of each finding's location)."""
    return dict(d, file=None, findings=[dict(f, location=f["location"].removeprefix(d["file"]))
                                        for f in d["findings"]])


def kv(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvclaims.cli", *args], capture_output=True,
                          input=stdin, timeout=120)


def test_every_command_reads_gzip_and_locates_a_truncation(tmp_path: Path) -> None:
    plain = (RULES / "bad-silent-loss.kvt").read_bytes()
    gz = tmp_path / "t.kvt.gz"
    gz.write_bytes(gzip.compress(plain))
    odd = tmp_path / "t.trace"  # detected by content, not by name
    odd.write_bytes(gzip.compress(plain))
    assert kv("check", str(gz)).returncode == 1
    assert kv("check", str(odd)).returncode == 1
    assert kv("check", "-", stdin=gzip.compress(plain)).returncode == 1
    converted = kv("convert", str(gz), "--to", "jsonl")
    assert converted.returncode == 0
    assert converted.stdout == kv("convert", str(RULES / "bad-silent-loss.kvt"), "--to",
                                  "jsonl").stdout
    assert kv("shrink", str(gz), "-o", str(tmp_path / "min.kvt")).returncode == 0
    cut = tmp_path / "cut.kvt.gz"
    cut.write_bytes(gzip.compress(plain)[:-20])
    for args in (("check", str(cut)), ("check", "--format", "json", str(cut)),
                 ("convert", str(cut), "--to", "kvt"), ("shrink", str(cut))):
        r = kv(*args)
        assert r.returncode == 2, args
        out = (r.stdout + r.stderr).decode()
        assert "truncated gzip stream" in out and "Traceback" not in out
    report = json.loads(kv("check", "--format", "json", str(cut)).stdout)
    assert report["error"]["line"] >= 1 and "truncated gzip" in report["error"]["message"]


def test_a_compressed_kv_event_record_is_read_with_its_manifest(tmp_path: Path) -> None:
    vllm = ROOT / "traces" / "vllm" / "0.34.0"
    gz = tmp_path / "probe.kvbatches.gz"
    gz.write_bytes(gzip.compress((vllm / "stock-probe.kvbatches").read_bytes()))
    plain = kv("check", "--format", "json", str(vllm / "stock-probe.kvbatches"), "--claims",
               str(vllm / "claims.toml"))
    packed = kv("check", "--format", "json", str(gz), "--claims", str(vllm / "claims.toml"))
    assert packed.returncode == plain.returncode == 1
    a, b = json.loads(plain.stdout), json.loads(packed.stdout)
    assert without_file(a) == without_file(b)
    piped = kv("check", "-", "--claims", str(vllm / "claims.toml"), stdin=gz.read_bytes())
    assert piped.returncode == 1
