"""Partly ordered traces (kvclaims.check.partial, docs/partial.md): the examples in
traces/partial decide as expected.toml says, every witness re-checks with the replay engine as
written, and the engines are chosen as --engine says."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from kvclaims.check import partial
from kvclaims.check.replay import check_events as replay_check
from kvclaims.check.verdict import CONFORMANT, INCONCLUSIVE, VIOLATION
from kvclaims.cli import cli
from kvclaims.run import Options, check_path
from kvclaims.trace.dsl import read_kvt
from kvclaims.trace.partial_input import read_partial

ROOT = Path(__file__).resolve().parents[2]
PARTIAL = ROOT / "traces" / "partial"
EXPECTED = tomllib.loads((PARTIAL / "expected.toml").read_text())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_decides_as_expected(name, spec):
    exp = EXPECTED[name]
    path = PARTIAL / exp["file"]
    rep = check_path(str(path), spec, Options(engine="auto"))
    assert rep.verdict == exp["verdict"], [(f.status, f.rule, f.message) for f in rep.findings]
    assert rep.extra["engine"] == "z3"
    assert rep.extra.get("linearizations", rep.extra["order"]) == exp["linearizations"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_witnesses_recheck_with_the_replay(name, spec):
    """A violating witness is a violation of the expected rules and a conforming one conforms,
    when the replay engine checks them as totally ordered traces."""
    exp = EXPECTED[name]
    path = PARTIAL / exp["file"]
    rep = check_path(str(path), spec, Options(engine="z3"))
    trace = read_partial(str(path), str(path), spec)
    found = partial.witnesses(spec, rep, trace.events, spec.order.batch_fields)
    if exp["linearizations"] in ("some_violate", "all_violate"):
        again = replay_check(spec, found["violating"])
        assert again.verdict == VIOLATION
        assert sorted({f.rule for f in again.findings if f.status == VIOLATION}) == \
            sorted(exp["rules"])
        # the Z3 engine's own findings on its witness name the same rules
        assert {f.rule for f in rep.findings if f.rule in exp["rules"]} == set(exp["rules"])
    else:
        assert "violating" not in found
    if exp["linearizations"] in ("some_violate", "all_conform"):
        assert replay_check(spec, found["conforming"]).verdict == CONFORMANT
    if exp["linearizations"] == "all_violate":
        assert "conforming" not in found
    for events in found.values():
        assert not any(name in ev.fields for ev in events for name in spec.order.batch_fields)


def test_some_violate_names_the_unordered_part(spec):
    rep = check_path(str(PARTIAL / "batch-hides-silent-loss.kvt"), spec, Options())
    stream = [f for f in rep.findings if f.rule == "R-stream"]
    assert stream and "some admissible orders conform, others violate" in stream[0].message
    # nothing reads as a violation when only some orders violate
    assert all(f.status != VIOLATION for f in rep.findings)


def test_replay_engine_never_passes_a_partial_trace(spec):
    for name in ("batch-any-order-conforms", "skew-demotion-beyond-delta"):
        rep = check_path(str(PARTIAL / EXPECTED[name]["file"]), spec, Options(engine="replay"))
        assert rep.verdict == INCONCLUSIVE
        assert any(f.rule == "R-stream" and "written order only" in f.message
                   for f in rep.findings)


def test_auto_keeps_the_replay_for_total_orders(spec):
    rep = check_path(str(ROOT / "traces" / "rules" / "bad-silent-loss.kvt"), spec, Options())
    assert rep.extra.get("engine", "replay") == "replay" and rep.verdict == VIOLATION
    z3rep = check_path(str(ROOT / "traces" / "rules" / "bad-silent-loss.kvt"), spec,
                       Options(engine="z3"))
    assert z3rep.extra["engine"] == "z3" and z3rep.extra["order"] == "total"
    assert z3rep.first_violation().rule == rep.first_violation().rule
    assert z3rep.first_violation().event_index == rep.first_violation().event_index


def test_one_order_of_a_batch_hides_the_loss(spec):
    """The semantics in docs/partial.md on the smallest case: harm and victim in one batch."""
    head = ["kvtrace 1",
            "claim c accepted mode=soft_priority required=1 predicate=leading_prefix_at_least(1)"
            " prefix=p usable=4",
            "block 1 materialized claim=c prefix=p position=0",
            "claim c materialized"]
    harm_first = head + ["claim c harmed", "block 1 victim request=a reason=cached_prefix_reuse"]
    victim_first = head + ["block 1 victim request=a reason=cached_prefix_reuse", "claim c harmed"]
    events_h = list(read_kvt(harm_first, "h.kvt", spec=spec))
    events_v = list(read_kvt(victim_first, "v.kvt", spec=spec))
    assert replay_check(spec, events_h).verdict == CONFORMANT
    assert replay_check(spec, events_v).verdict == VIOLATION
    for events in (events_h, events_v):  # either written order: the batch decides the same
        rep = partial.decide(spec, events, batches=[(3, 5)])
        assert rep.verdict == INCONCLUSIVE and rep.extra["linearizations"] == "some_violate"
        assert sorted(rep.extra["violating"][3:]) == [3, 4]
        assert rep.extra["violating"][3:] != rep.extra["conforming"][3:]


def test_cli_witness_files_and_json(tmp_path):
    runner = CliRunner()
    prefix = tmp_path / "w"
    res = runner.invoke(cli, ["check", str(PARTIAL / "batch-hides-silent-loss.kvt"),
                              "--witness", str(prefix), "--format", "json"])
    assert res.exit_code == 3, res.output
    doc = json.loads(res.stdout.splitlines()[0])
    assert doc["engine"] == "z3" and doc["order"]["linearizations"] == "some_violate"
    # the one unordered part decides the verdict: it is detailed with both witnesses' orders
    part, = doc["order"]["conflicting"]
    assert part["events"] == [5, 6] and sorted(part["violating"]) == [5, 6]
    assert part["violating"] != part["conforming"]
    assert part["witnesses"]["violating"][0].startswith("block 2 victim")
    assert doc["order"]["order_free"]["parts"] == 0
    bad = runner.invoke(cli, ["check", str(prefix) + ".violating.kvt"])
    good = runner.invoke(cli, ["check", str(prefix) + ".conforming.kvt"])
    assert bad.exit_code == 1 and good.exit_code == 0, (bad.output, good.output)


def test_cli_skew_option_and_errors(tmp_path):
    runner = CliRunner()
    src = (PARTIAL / "skew-demotion-within-delta.kvt").read_text()
    undeclared = tmp_path / "merged.kvt"
    undeclared.write_text("\n".join(ln for ln in src.splitlines()
                                    if not ln.startswith("skew ")) + "\n")
    plain = runner.invoke(cli, ["check", str(undeclared)])
    assert plain.exit_code == 0, plain.output  # no skew: the written order holds
    skewed = runner.invoke(cli, ["check", str(undeclared), "--skew",
                                 "scheduler:kv_events:1000000"])
    assert skewed.exit_code == 3 and "some admissible orders conform" in skewed.output
    bad = runner.invoke(cli, ["check", str(undeclared), "--skew", "scheduler:kv_events:-1"])
    assert bad.exit_code == 2 and "--skew" in bad.output


def test_kvrm_is_out_of_the_z3_engines_scope(spec):
    kvrm = sorted((ROOT / "traces" / "kvrm").glob("*.kvt"))
    assert kvrm
    rep = check_path(str(kvrm[0]), spec, Options(engine="z3"))
    assert rep.verdict == INCONCLUSIVE
    assert any("KV-RM" in f.message for f in rep.findings)


def test_solver_giving_up_is_inconclusive(spec, monkeypatch):
    """A solver that gives up (timeout) never passes and never convicts: inconclusive."""
    import z3

    class GivingUp(z3.Solver):
        def check(self, *a):  # noqa: ANN001 - z3's signature
            return z3.unknown

        def reason_unknown(self) -> str:
            return "timeout"

    path = PARTIAL / "batch-any-order-conforms.kvt"
    trace = read_partial(str(path), str(path), spec)
    batches = [(s, e) for s, e, _ in trace.batches(spec) if e - s >= 2]
    assert partial.decide(spec, trace.events, batches=batches).verdict == CONFORMANT
    monkeypatch.setattr(partial.z3, "Solver", GivingUp)
    rep = partial.decide(spec, trace.events, batches=batches)
    assert rep.verdict == INCONCLUSIVE and rep.extra["linearizations"] == "unknown"
    assert any("could not decide" in f.message and "timeout" in f.message for f in rep.findings)
