"""Traces named by URL (fsspec, installed by scripts/setup with the `ray` extra): a URL is decided
as the local file it names, in this process, in worker processes and walked as a directory; one
that cannot be read is that file's input error, located at the URL, and nothing else is lost
(kvclaims.trace.urls; docs/fleet.md "Inputs"). Ray reads URLs the same way: tests/fleet/test_ray.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import fsspec
import pytest
from fleet_common import OPTIONS, ROOT, TRACES, rendered, trace_files
from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims.check.verdict import INPUT_ERROR
from kvclaims.fleet import pool
from kvclaims.fleet.inputs import expand
from kvclaims.run import decide_path, exit_code
from kvclaims.trace import urls

RULES = TRACES / "rules"
KV = [sys.executable, "-m", "kvclaims.cli"]


def as_url(path: str, how: str) -> str:
    a = str(Path(path).resolve())
    return {"file": f"file://{a}", "local": f"local://{a}",
            "cached": f"simplecache::file://{a}"}[how]


def same_as_local(url_report, local_report, spec) -> None:
    assert url_report.file != local_report.file
    moved = replace(url_report, file=local_report.file)
    assert moved == local_report
    assert rendered(moved, spec) == rendered(local_report, spec)


SOME = trace_files()


@settings(max_examples=12, deadline=None)
@given(path=st.sampled_from(SOME), how=st.sampled_from(["file", "local", "cached"]))
def test_a_url_is_decided_as_the_file_it_names(path, how, spec) -> None:
    # every format (.kvt, .jsonl, .kvbatches with the manifest, gzip) and three local fsspec
    # filesystems: a plain one, its `local://` name, and a caching layer chained over it
    same_as_local(decide_path(as_url(path, how), spec, OPTIONS), decide_path(path, spec, OPTIONS),
                  spec)


def test_a_memory_url_in_this_process(spec) -> None:
    # memory:// lives in one process: it is read where the check runs (--jobs 1, one file)
    src = RULES / "bad-silent-loss.kvt"
    with fsspec.open("memory://kvclaims-test/bad.kvt", "wb") as fh:
        fh.write(src.read_bytes())
    try:
        same_as_local(decide_path("memory://kvclaims-test/bad.kvt", spec, OPTIONS),
                      decide_path(str(src), spec, OPTIONS), spec)
    finally:
        fsspec.filesystem("memory").rm("/kvclaims-test", recursive=True)


def test_a_directory_url_is_walked_like_the_directory() -> None:
    local, directories = expand([str(RULES)])
    url = as_url(str(RULES), "file")
    walked, url_directories = expand([url])
    assert directories and url_directories
    assert [u.removeprefix(url) for u in walked] == [p.removeprefix(str(RULES)) for p in local]
    assert expand([as_url(str(RULES), "cached")])[0][0].startswith("simplecache::file://")


def test_worker_processes_read_urls_alike(spec) -> None:
    files = [f for f in SOME if "/rules/" in f][:6] + [f for f in SOME if "kvbatches" in f][:2]
    got = pool.decide_all([as_url(f, "file") for f in files], OPTIONS, 2)
    for url_report, f in zip(got, files):
        same_as_local(url_report, decide_path(f, spec, OPTIONS), spec)


@pytest.mark.parametrize("url, why", [
    ("file:///nonexistent/kvclaims/trace.kvt", "no such file"),
    ("nosuchprotocol://bucket/trace.kvt", "Protocol not known: nosuchprotocol"),
    ("s3://bucket/trace.kvt", "s3fs"),  # fsspec knows it; its package is not installed here
])
def test_an_unreadable_url_is_that_file_s_input_error(url: str, why: str, spec) -> None:
    rep = decide_path(url, spec, OPTIONS)
    assert rep.verdict == INPUT_ERROR and rep.file == url
    assert rep.error.message.startswith("cannot open: ") and why in rep.error.message
    good = str(RULES / "ok-hard-refusal.kvt")
    reports = pool.decide_all([good, url, good], OPTIONS, 2)
    assert reports[1] == rep and reports[0] == reports[2] == decide_path(good, spec, OPTIONS)
    assert exit_code(reports) == 2


def test_without_fsspec_a_url_says_how_to_install_it(monkeypatch, spec) -> None:
    monkeypatch.setitem(sys.modules, "fsspec", None)
    monkeypatch.setitem(sys.modules, "fsspec.core", None)
    rep = decide_path("file:///x/trace.kvt", spec, OPTIONS)
    assert rep.verdict == INPUT_ERROR and urls.MISSING_FSSPEC in rep.error.message


def test_a_local_file_whose_name_looks_like_a_url_is_the_file(tmp_path: Path, monkeypatch,
                                                                spec) -> None:
    (tmp_path / "x:").mkdir()
    (tmp_path / "x:" / "trace.kvt").write_bytes((RULES / "ok-hard-refusal.kvt").read_bytes())
    monkeypatch.chdir(tmp_path)
    name = "x://trace.kvt"  # a relative path: directory "x:", then the file
    assert Path(name).exists() and not urls.is_url(name)
    assert decide_path(name, spec, OPTIONS).verdict != INPUT_ERROR


def test_the_command_checks_urls_and_says_where_one_fails() -> None:
    good = as_url(str(RULES / "bad-silent-loss.kvt"), "file")
    bad = "file:///nonexistent/kvclaims/trace.kvt"
    p = subprocess.run([*KV, "check", good, bad, "--format", "json"], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert p.returncode == 2, p.stderr
    a, b, summary = (json.loads(x) for x in p.stdout.splitlines())
    assert a["file"] == good and a["result"] == "violation"
    assert b["file"] == bad and b["result"] == "input_error"
    assert b["error"]["message"] == "cannot open: no such file" and "Traceback" not in p.stderr
    assert summary["kind"] == "summary" and summary["files"] == 2
