"""`--jobs N`: worker processes give the reports `--jobs 1` gives, file by file and in the input
order, and a failing worker costs its own shard only (kvclaims.fleet.pool; docs/fleet.md)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import fleet_faults
import pytest
from fleet_common import OPTIONS, rendered, trace_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvclaims.check.verdict import INCONCLUSIVE, INPUT_ERROR
from kvclaims.fleet import pool
from kvclaims.fleet.inputs import expand
from kvclaims.run import Options, decide_path, exit_code

from conftest import ARTIFACTS


def in_process(files: list[str], spec, options=OPTIONS) -> list:
    return [decide_path(f, spec, options) for f in files]


def assert_same(files, got, want, spec) -> None:
    assert [r.file for r in got] == [r.file for r in want]
    for f, a, b in zip(files, got, want):
        assert a == b, f
        assert rendered(a, spec) == rendered(b, spec), f


def test_the_repository_traces_decide_alike_with_two_workers(spec) -> None:
    files = trace_files()
    assert len(files) > 100
    assert_same(files, pool.decide_all(files, OPTIONS, 2), in_process(files, spec), spec)


@pytest.mark.corpus
def test_the_whole_corpus_decides_alike_with_two_workers(spec) -> None:
    files, _ = expand([str(ARTIFACTS)])
    assert len(files) >= 38
    assert_same(files, pool.decide_all(files, Options(), 2), in_process(files, spec, Options()),
                spec)


SMALL = [f for f in trace_files() if "/rules/" in f][:12]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.sampled_from(SMALL), min_size=2, max_size=8),
       jobs=st.integers(min_value=2, max_value=3))
def test_any_files_in_any_order_come_back_in_that_order(picks, jobs, spec) -> None:
    # Workers finish out of order (a delay drawn from each name); the reports do not.
    got = pool.decide_all(picks, OPTIONS, jobs, decide=fleet_faults.shuffled)
    assert_same(picks, got, in_process(picks, spec), spec)


@pytest.fixture
def five(tmp_path: Path) -> list[str]:
    """Five traces of different verdicts, copied so one name can carry a fault marker."""
    rules = sorted(Path(f) for f in SMALL)[:5]
    out = []
    for i, src in enumerate(rules):
        dst = tmp_path / f"{i}-{src.name}"
        shutil.copy(src, dst)
        out.append(str(dst))
    return out


def mark(files: list[str], k: int, marker: str) -> list[str]:
    p = Path(files[k])
    q = p.with_name(f"{marker}-{p.name}")
    os.rename(p, q)
    return [*files[:k], str(q), *files[k + 1:]]


@pytest.mark.parametrize("k", [0, 2, 4])
def test_a_killed_worker_costs_its_shard_only(five, k, spec) -> None:
    files = mark(five, k, fleet_faults.CRASH)
    got = pool.decide_all(files, OPTIONS, 2, decide=fleet_faults.crash)
    want = in_process(files, spec)
    for i, (a, b) in enumerate(zip(got, want)):
        if i == k:
            assert a.verdict == INCONCLUSIVE and a.file == files[k]
            assert "worker process died (SIGKILL)" in a.error.message
        else:
            assert a == b
    assert exit_code(got) in (1, 3)  # the lost shard is never a pass


def test_a_shard_past_its_time_is_inconclusive_and_the_rest_decided(five, spec) -> None:
    files = mark(five, 1, fleet_faults.HANG)
    got = pool.decide_all(files, OPTIONS, 2, timeout=3.0, decide=fleet_faults.hang)
    want = in_process(files, spec)
    assert got[1].verdict == INCONCLUSIVE and "--shard-timeout 3 s" in got[1].error.message
    assert [r for i, r in enumerate(got) if i != 1] == [r for i, r in enumerate(want) if i != 1]


def test_an_exception_in_a_worker_is_a_defect_of_that_shard(five, spec) -> None:
    files = mark(five, 3, fleet_faults.RAISE)
    got = pool.decide_all(files, OPTIONS, 2, decide=fleet_faults.defect)
    assert got[3].verdict == INPUT_ERROR and "RuntimeError: injected defect" in \
        got[3].error.message
    assert exit_code(got) == 2
    assert got[:3] + got[4:] == [r for i, r in enumerate(in_process(files, spec)) if i != 3]
