"""`kvclaims check` over several files and directories: the closing summary, `--quiet`, JUnit
one suite per file, identical output for every `--jobs`, a shard past its time, Ctrl-C
(docs/fleet.md)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fleet_common import CLAIMS, ROOT, TRACES

KV = [sys.executable, "-m", "kvclaims.cli"]
RULES = TRACES / "rules"


def kv(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*KV, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def without_time(out: str) -> list[str]:
    """The output with the summary's time taken out (the one field that differs run to run)."""
    lines = out.splitlines()
    last = lines[-1]
    if last.startswith("{"):
        d = json.loads(last)
        assert d["kind"] == "summary" and d["seconds"] >= 0
        d.pop("seconds")
        lines[-1] = json.dumps(d)
    else:
        assert last.startswith("checked ") and last.endswith(" s")
        lines[-1] = last.rsplit(" in ", 1)[0]
    return lines


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_every_jobs_count_prints_the_same_reports(fmt: str) -> None:
    # with no --jobs, the machine's cores (2 here: worker processes) decide the files
    args = ("check", str(TRACES), "--claims", str(CLAIMS), "--format", fmt)
    one, two, default = kv(*args, "--jobs", "1"), kv(*args, "--jobs", "2"), kv(*args)
    assert one.returncode == two.returncode == default.returncode == 1
    assert without_time(one.stdout) == without_time(two.stdout) == without_time(default.stdout)


def test_the_json_summary_counts_the_per_file_lines() -> None:
    p = kv("check", str(RULES), "--format", "json", "--jobs", "1")
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    *files, summary = lines
    assert all("kind" not in d for d in files) and summary["kind"] == "summary"
    assert summary["files"] == len(files) == len(list(RULES.glob("*.kvt"))) + len(
        list(RULES.glob("*.jsonl")))
    results = {}
    for d in files:
        results[d["result"]] = results.get(d["result"], 0) + 1
    assert {k: v for k, v in summary["results"].items() if v} == results
    assert summary["findings"]["violation"] == sum(
        f["status"] == "violation" for d in files for f in d["findings"])
    assert summary["events"] == sum(d["events"] for d in files)
    assert summary["exit_code"] == p.returncode == 1
    assert summary["report_version"] == files[0]["report_version"]


def test_quiet_prints_what_needs_attention_and_the_summary() -> None:
    full = kv("check", str(RULES), "--format", "json", "--jobs", "1")
    quiet = kv("check", str(RULES), "--format", "json", "--jobs", "1", "--quiet")
    everything = [json.loads(x) for x in full.stdout.splitlines()]
    shown = [json.loads(x) for x in quiet.stdout.splitlines()]
    assert shown[:-1] == [d for d in everything[:-1] if d["result"] != "conformant"]
    assert len(shown[:-1]) < len(everything[:-1])
    assert quiet.returncode == full.returncode
    text = kv("check", str(RULES), "--jobs", "1", "-q")
    assert text.stdout.splitlines()[-1].startswith("checked ")
    assert "CONFORMANT" not in text.stdout and "VIOLATION" in text.stdout


def test_one_file_has_no_summary_unless_quiet() -> None:
    one = RULES / "bad-hard-victim.kvt"
    p = kv("check", str(one), "--format", "json")
    assert len(p.stdout.splitlines()) == 1
    q = kv("check", str(one), "--format", "json", "--quiet")
    assert json.loads(q.stdout.splitlines()[-1])["kind"] == "summary"


def test_junit_has_one_suite_per_file() -> None:
    p = kv("check", str(RULES), "--format", "junit", "--jobs", "2")
    n = len(list(RULES.glob("*.kvt"))) + len(list(RULES.glob("*.jsonl")))
    assert p.stdout.count("<testsuite ") == n
    assert p.stdout.rstrip().endswith("</testsuites>")


def test_a_directory_without_traces_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x")
    p = kv("check", str(tmp_path))
    assert p.returncode == 2 and "no trace files" in p.stderr


def test_a_file_that_never_ends_is_reported_for_itself(tmp_path: Path) -> None:
    # A named pipe nobody writes: reading it blocks forever, as a hung decision would.
    fifo = tmp_path / "stuck.kvt"
    os.mkfifo(fifo)
    a, b = RULES / "bad-hard-victim.kvt", RULES / "ok-hard-refusal.kvt"
    p = kv("check", str(a), str(fifo), str(b), "--jobs", "2", "--shard-timeout", "4",
           "--format", "json")
    d = [json.loads(x) for x in p.stdout.splitlines()]
    assert [x.get("file") for x in d[:3]] == [str(a), str(fifo), str(b)]
    assert d[1]["result"] == "inconclusive" and "ran past --shard-timeout 4 s" in \
        d[1]["error"]["message"]
    assert d[0]["result"] == "violation" and d[2]["result"] == "conformant"
    assert p.returncode == 1  # a violation outranks inconclusive (kvclaims.run.exit_code)


def test_ctrl_c_exits_130_and_leaves_no_worker(tmp_path: Path) -> None:
    fifo = tmp_path / "stuck.kvt"
    os.mkfifo(fifo)
    proc = subprocess.Popen([*KV, "check", str(RULES), str(fifo), "--jobs", "2"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)  # long enough for the workers to be deciding (a sooner Ctrl-C also exits 130)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; no result" in err and "Traceback" not in err
    # No process still has the pipe open for reading (a worker left behind would).
    with pytest.raises(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_the_default_jobs_is_the_cores_at_most_one_per_file(monkeypatch) -> None:
    from kvclaims import cli

    monkeypatch.setattr(cli, "_cores", lambda: 4)
    assert cli._default_jobs(["a.kvt"]) == 1  # one file: decided in this process
    assert cli._default_jobs(["a.kvt", "b.kvt"]) == 2
    assert cli._default_jobs([f"{i}.kvt" for i in range(10)]) == 4
    assert cli._default_jobs(["a.kvt", "b.kvt", "-"]) == 1  # standard input: this process
    monkeypatch.setattr(cli, "_cores", lambda: 1)
    assert cli._default_jobs([f"{i}.kvt" for i in range(10)]) == 1
    monkeypatch.undo()
    assert 1 <= cli._cores() <= (os.cpu_count() or 1)
