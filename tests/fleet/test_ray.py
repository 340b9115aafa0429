"""`--ray`: Ray tasks give the reports `--jobs 1` gives, file by file and in the input order,
and a failing task costs its own shard only (kvclaims.fleet.ray_tasks; docs/fleet.md).

Ray is installed by the project's test setup (scripts/setup, the `ray` extra): these tests run,
they are not skipped. The cluster is small (one CPU) and shut down after the module."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import fleet_faults
import pytest
import ray
from fleet_common import OPTIONS, ROOT, TRACES, rendered, trace_files

from kvclaims.check.verdict import INCONCLUSIVE, INPUT_ERROR
from kvclaims.fleet import ray_tasks
from kvclaims.fleet.inputs import expand
from kvclaims.run import Options, decide_path

from conftest import ARTIFACTS


@pytest.fixture(scope="module", autouse=True)
def cluster():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    # The fault deciders travel by value: Ray's workers need not import the tests.
    ray.cloudpickle.register_pickle_by_value(fleet_faults)
    yield
    ray.shutdown()


def in_process(files: list[str], spec, options=OPTIONS) -> list:
    return [decide_path(f, spec, options) for f in files]


def assert_same(files, got, want, spec) -> None:
    assert [r.file for r in got] == [r.file for r in want] == [str(f) for f in files]
    for f, a, b in zip(files, got, want):
        assert a == b, f
        assert rendered(a, spec) == rendered(b, spec), f


def test_the_repository_traces_decide_alike_on_ray(spec) -> None:
    files = trace_files()
    assert_same(files, ray_tasks.decide_all(files, OPTIONS), in_process(files, spec), spec)


@pytest.mark.corpus
def test_the_whole_corpus_decides_alike_on_ray(spec) -> None:
    files, _ = expand([str(ARTIFACTS)])
    assert_same(files, ray_tasks.decide_all(files, Options()),
                in_process(files, spec, Options()), spec)


def test_urls_are_read_where_the_task_runs(spec) -> None:
    # file:// URLs (a file system every node of this local cluster shares) decide as the files
    # they name; an unreadable one is its own input error (kvclaims.trace.urls)
    files = [f for f in trace_files() if "/rules/" in f][:4]
    bad = "file:///nonexistent/kvclaims/trace.kvt"
    named = [f"file://{Path(f).resolve()}" for f in files] + [bad]
    got = ray_tasks.decide_all(named, OPTIONS)
    assert [r.file for r in got] == named
    for r, f in zip(got, files):
        assert replace(r, file=f) == decide_path(f, spec, OPTIONS)
    assert got[-1].verdict == INPUT_ERROR and got[-1].error.message == "cannot open: no such file"


def test_a_killed_worker_and_a_defect_cost_their_shards_only(tmp_path: Path, spec) -> None:
    rules = sorted((TRACES / "rules").glob("*.kvt"))[:4]
    files = []
    for i, src in enumerate(rules):
        name = {1: f"{fleet_faults.CRASH}-{src.name}", 2: f"{fleet_faults.RAISE}-{src.name}"}
        dst = tmp_path / name.get(i, src.name)
        shutil.copy(src, dst)
        files.append(str(dst))
    want = in_process(files, spec)
    crashed = ray_tasks.decide_all(files, OPTIONS, decide=fleet_faults.crash)
    assert crashed[1].verdict == INCONCLUSIVE and "died" in crashed[1].error.message
    assert [crashed[i] for i in (0, 2, 3)] == [want[i] for i in (0, 2, 3)]
    raised = ray_tasks.decide_all(files, OPTIONS, decide=fleet_faults.defect)
    assert raised[2].verdict == INPUT_ERROR and "injected defect" in raised[2].error.message
    assert [raised[i] for i in (0, 1, 3)] == [want[i] for i in (0, 1, 3)]


def test_the_command_on_a_local_ray_prints_what_jobs_prints() -> None:
    # `--ray` with no address starts (and stops) its own local Ray in the command's process.
    rules = str(TRACES / "rules")
    kv = [sys.executable, "-m", "kvclaims.cli", "check", rules, "--format", "json"]
    a = subprocess.run([*kv, "--ray"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    b = subprocess.run([*kv, "--jobs", "1"], capture_output=True, text=True, cwd=ROOT,
                       timeout=600)
    assert a.returncode == b.returncode == 1, a.stderr
    la, lb = a.stdout.splitlines(), b.stdout.splitlines()
    assert la[:-1] == lb[:-1]
    sa, sb = json.loads(la[-1]), json.loads(lb[-1])
    sa.pop("seconds"), sb.pop("seconds")
    assert sa == sb
