"""The fuzz search (kvclaims.fuzz.driver) over the runtime interface (issue 7 acceptance).

Every MicroRuntime fault switch is found from a fixed seed within 2,000 examples, shrunk to a trace
of at most 12 events that, written as .kvt and read back, fails on the same rule; correct policies
survive (a few hundred examples in CI, 5,000 with KVCLAIMS_THOROUGH=1, bench/fuzz.md); the search is
deterministic, its database replays failures, its files reproduce them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fuzz_budget import THOROUGH, budget

from kvclaims.fuzz import strategies as kst
from kvclaims.fuzz.driver import (
    EXIT_FAILURES,
    EXIT_OK,
    EXIT_USAGE,
    fuzz_command,
    main,
    replay_command,
    search,
    workload_from_data,
    workload_to_data,
)
from kvclaims.runtime import policies as P
from kvclaims.runtime.interface import (
    VLLM_MISSING,
    MicroAdapter,
    RuntimeUnavailable,
    drive,
    resolve,
    vllm_installed,
)
from kvclaims.runtime.micro import run
from kvclaims.runtime.workload import ClaimSpec, PrefixSpec, RequestSpec, Workload

SEED = 0
# Faults whose policy never takes the faulty path (demote_on_conflict never refuses).
NEVER_FIRES = {(f, P.DEMOTE_ON_CONFLICT) for f in (P.SMEARED_ATTRIBUTION, P.WRONG_SHORTFALL,
                                                    P.WRONG_FREE)}
POLICY_ARGS = {P.RESIDENT_RESERVE: ",reserve_blocks=0"}  # the default reserve never refuses
# CI: each fault under its first policy; thorough: under every policy it applies to.
FAULT_CASES = [(f.name, p) for f in P.FAULTS.values()
               for p in (f.policies if THOROUGH else f.policies[:1]) if (f.name, p) not in NEVER_FIRES]


@pytest.mark.parametrize("fault,policy", FAULT_CASES, ids=lambda x: x)
def test_fault_is_found_and_shrunk(fault: str, policy: str, tmp_path: Path) -> None:
    rt = f"micro:{policy}{POLICY_ARGS.get(policy, '')}+{fault}"
    s = search(rt, examples=2000, seed=SEED, out=tmp_path, max_failures=1)
    assert s.failures, f"{rt}: not found in {s.examples} examples"
    f = s.failures[0]
    assert f.rule in P.FAULTS[fault].rules and f.status == "violation"
    assert f.found_after <= 2000
    assert f.kvt is not None and f.kvt.exists() and f.rechecked
    assert f.kvt_events is not None and f.kvt_events <= 12, f.kvt.read_text()
    assert f.command and f.workload_file is not None
    wl = workload_from_data(json.loads(f.workload_file.read_text()))
    assert wl == f.workload


def _policy_name(p: P.Policy) -> str:
    args = [f"defer_attempts={p.defer_attempts}"] if p.defer_attempts else []
    args += [f"reserve_blocks={p.reserve_blocks}"] if p.reserve_blocks is not None else []
    args += [f"free_order={p.free_order}"] if p.free_order != P.TAIL_FIRST else []
    return "micro:" + ",".join([p.name, *args])


@pytest.mark.parametrize("policy", [_policy_name(p) for p in kst.CORRECT_POLICIES])
def test_correct_policy_survives(policy: str, kvclaims_fuzz) -> None:
    s = kvclaims_fuzz(policy, examples=budget(150, 5000), seed=SEED)
    assert s.examples == budget(150, 5000) and not s.failures


def test_search_is_deterministic() -> None:
    a = search("micro:soft_priority+harm_twice", examples=500, seed=7, max_failures=1)
    b = search("micro:soft_priority+harm_twice", examples=500, seed=7, max_failures=1)
    assert [(f.rule, f.found_after, f.workload) for f in a.failures] == \
        [(f.rule, f.found_after, f.workload) for f in b.failures]


def test_database_replays_the_failure(tmp_path: Path) -> None:
    first = search("micro:expiring+expiry_after_loss", examples=2000, seed=3, out=tmp_path,
                   max_failures=1)
    assert first.failures and first.failures[0].found_after > 1
    again = search("micro:expiring+expiry_after_loss", examples=2000, seed=99, out=tmp_path,
                   max_failures=1)
    assert again.failures[0].found_after == 1  # the saved example is tried first
    assert again.failures[0].workload == first.failures[0].workload


def test_distinct_failures_by_rule(tmp_path: Path) -> None:
    # two faults switched on at once: two rules, each with its own files
    s = search("micro:hard_exclude+wrong_shortfall+post_hoc_acceptance", examples=400,
               seed=SEED, out=tmp_path)
    assert set(s.by_rule()) == {"R-attribution", "R-acceptance"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failures_by_rule"] == s.by_rule()
    assert (tmp_path / "R-acceptance.kvt").exists() and (tmp_path / "R-attribution.repro").exists()


def test_max_shrinks_zero_keeps_the_first_failure() -> None:
    s = search("micro:soft_priority+harm_twice", examples=500, seed=SEED, max_shrinks=0,
               max_failures=1)
    assert s.failures and s.failures[0].shrink_steps <= 1  # the final replay, no shrinking


def test_reproduction_command_reproduces(tmp_path: Path, capsys) -> None:
    s = search("micro:hard_exclude+wrong_free", examples=500, seed=SEED, out=tmp_path,
               max_failures=1)
    f = s.failures[0]
    assert f.command is not None and f.command.startswith("kvclaims fuzz --runtime ")
    code = replay_command("micro:hard_exclude+wrong_free", str(f.workload_file),
                          str(tmp_path / "again.kvt"))
    assert code == EXIT_FAILURES
    assert (tmp_path / "again.kvt").read_text() == f.kvt.read_text()
    assert "R-attribution" in capsys.readouterr().out
    assert replay_command("micro:hard_exclude", str(f.workload_file)) == EXIT_OK


def test_fuzz_command_summary_and_exit_codes(tmp_path: Path, capsys) -> None:
    assert fuzz_command("micro:soft_priority+silent_loss", 300, SEED, str(tmp_path), None) == \
        EXIT_FAILURES
    out = capsys.readouterr().out
    assert "300 examples" in out and "R-no-silent-loss" in out and "reproduce:" in out
    assert fuzz_command("micro:native", 50, SEED, str(tmp_path / "n"), None) == EXIT_OK
    assert "no failures" in capsys.readouterr().out


@pytest.mark.parametrize("runtime", ["vllm:stock", "vllm:plugin"])
def test_vllm_runtimes_resolve_only_where_vllm_is(runtime: str, tmp_path: Path, capsys) -> None:
    # In .venv (no vLLM) the name is a usage error that says how to get vLLM; where vLLM is
    # installed it resolves (tests/vllm/test_fuzz_vllm.py runs the searches there).
    if vllm_installed():
        assert resolve(runtime).name == runtime
        return
    assert fuzz_command(runtime, 10, SEED, str(tmp_path), None) == EXIT_USAGE
    assert VLLM_MISSING in capsys.readouterr().err.replace("\n", " ")


@pytest.mark.parametrize("runtime", ["kvrm", "vllm:other", "tpu",
                                     "micro:nope", "micro:native+silent_loss",
                                     "micro:soft_priority+nope", "py:no_such_module:factory"])
def test_unavailable_runtimes_are_usage_errors(runtime: str, tmp_path: Path, capsys) -> None:
    assert fuzz_command(runtime, 10, SEED, str(tmp_path), None) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "kvclaims fuzz:" in err and "Traceback" not in err
    if runtime.startswith("kvrm"):
        assert "not available yet" in err


def test_module_main(tmp_path: Path) -> None:
    assert main(["fuzz", "--runtime", "micro:native", "--examples", "20", "--out",
                 str(tmp_path)]) == EXIT_OK


# ---- the runtime interface ---------------------------------------------------------------------
WL = Workload(8, (PrefixSpec("p0", 4, ClaimSpec("claim:p0", 4)),),
              (RequestSpec("r0", (3,)), RequestSpec("r1", (2, 2)), RequestSpec("r2", (6,))))


def test_micro_adapter_matches_the_batch_run() -> None:
    for policy in kst.CORRECT_POLICIES:
        assert tuple(drive(MicroAdapter(policy), WL)) == run(WL, policy).events


def test_micro_adapter_steps_one_request_at_a_time() -> None:
    rt = MicroAdapter(P.Policy(P.SOFT_PRIORITY))
    rt.reset(WL)
    loaded = len(rt.events())
    for r in WL.requests:
        rt.submit(r)
    assert len(rt.events()) == loaded
    assert rt.step() is True and rt.step() is True and rt.step() is False
    assert rt.step() is False


class ListRuntime:
    """A user runtime: replays the MicroRuntime, but drops every harm report (a silent loss)."""

    def __init__(self) -> None:
        self.inner = MicroAdapter(P.Policy(P.SOFT_PRIORITY))

    def reset(self, workload):
        self.inner.reset(workload)

    def submit(self, request):
        self.inner.submit(request)

    def step(self):
        return self.inner.step()

    def events(self):
        return [e for e in self.inner.events() if e.kind != "resident_claim_harmed"]


def factory() -> ListRuntime:
    return ListRuntime()


def test_user_runtime_plugs_in_by_module_path() -> None:
    rt = resolve(f"py:{__name__}:factory")
    assert isinstance(rt.factory(), ListRuntime)
    s = search(rt, examples=500, seed=SEED, max_failures=1)
    assert s.failures and s.failures[0].rule == "R-no-silent-loss"


def test_resolve_rejects_bad_parameters() -> None:
    with pytest.raises(RuntimeUnavailable):
        resolve("micro:hard_exclude,bogus=1")
    assert resolve("micro:hard_exclude,defer_attempts=2+wrong_free").factory().policy == \
        P.Policy(P.HARD_EXCLUDE, defer_attempts=2)


def test_workload_file_round_trip() -> None:
    assert workload_from_data(json.loads(json.dumps(workload_to_data(WL, "micro:native")))) == WL
    with pytest.raises(ValueError):
        workload_from_data({"usable": 3})


def test_endless_deferral_past_a_declared_bound_is_found_and_checked(tmp_path: Path) -> None:
    """`kvclaims fuzz --runtime micro:hard_exclude,defer_attempts=2+defer_forever` finds the
    unbounded deferral (docs/model.md §6 R-progress), and `kvclaims check` on the written trace says
    violation (exit 1). Waits for the checker's R-progress (lead's merge)."""
    from click.testing import CliRunner

    from kvclaims.cli import cli

    rt = "micro:hard_exclude,defer_attempts=2+defer_forever"
    s = search(rt, examples=2000, seed=SEED, out=tmp_path, max_failures=1)
    assert s.failures, f"{rt}: not found in {s.examples} examples"
    f = s.failures[0]
    assert (f.rule, f.status, f.rechecked) == (P.FAULTS[P.DEFER_FOREVER].rule, "violation", True)
    assert f.kvt is not None and "defer_steps=2" in f.kvt.read_text()
    res = CliRunner().invoke(cli, ["check", str(f.kvt)])
    assert res.exit_code == 1, res.output
    assert P.FAULTS[P.DEFER_FOREVER].rule in res.output
