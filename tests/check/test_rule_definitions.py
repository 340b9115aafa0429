"""Every rule of docs/model.md §6 has its one definition, and the two evaluators of the definitions
agree (issue 21 items 1-2; docs/checking.md, "One definition per rule").

- Each §6 rule id of spec/rules.toml (R-stream and R-vocabulary, about the input, aside) has its
  module check/rules/<id>.py, used by both engines (check/replay.py or a replay plug-in, and
  check/z3model.py), and docs/checking.md's rule table links it.
- The concrete operators (`PY`) and the symbolic ones (`symbolic.Ops`) give the same value on
  every operator, on Python values and on Z3 constants fixed to those values (Hypothesis).
- Every condition function of every rule module, called with random Python values, gives the
  same truth value under `PY`, compiled for Python values (check/rules/concrete.py, what the
  replay calls), and under the symbolic operators over Z3 variables bound to those values: the
  replay's reading and the Z3 engine's reading of one definition are the same.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
import z3
from conftest import ROOT
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.check import symbolic
from kvclaims.check.rules import concrete
from kvclaims.check.rules.ops import PY, Ops
from kvclaims.check.state import RuleIds

SPEC = spec_mod.load()
CHECK = ROOT / "checker" / "kvclaims" / "check"
INPUT_RULES = {"R-stream", "R-vocabulary"}  # decided where the input is read (docs/checking.md)
SECTION6 = sorted(r for r in SPEC.rules if r.startswith("R-") and r not in INPUT_RULES)


def module_name(rule_id: str) -> str:
    name = rule_id.removeprefix("R-").replace("-", "_")
    return name + "_" if name == "yield" else name


def _rule_modules() -> list[str]:
    return sorted(p.stem for p in (CHECK / "rules").glob("*.py")
                  if p.stem not in ("__init__", "ops"))


@pytest.mark.parametrize("rule_id", SECTION6)
def test_every_rule_has_its_module_used_by_both_engines(rule_id: str) -> None:
    mod = module_name(rule_id)
    path = CHECK / "rules" / f"{mod}.py"
    assert path.is_file(), f"{rule_id} has no definition at {path.relative_to(ROOT)}"
    assert rule_id in path.read_text(encoding="utf-8").split("\n", 1)[0], (
        f"{path.name}'s docstring must open with the rule id it defines")
    users = _users(mod)
    if "steps.py" in users:
        # composed per step by rules/steps.py, which both engines call
        users |= _users("steps")
    assert "z3model.py" in users, f"the Z3 engine does not evaluate rules/{mod}.py"
    assert users & {"replay.py", "attribution.py", "offload.py", "progress.py"}, (
        f"the replay does not evaluate rules/{mod}.py")


def _users(mod: str) -> set[str]:
    """The files of check/ (and rules/steps.py) that import the rule module `mod`."""
    files = [*CHECK.glob("*.py"), CHECK / "rules" / "steps.py"]
    return {p.name for p in files
            if re.search(rf"from kvclaims\.check\.rules(\.concrete)? import[^\n]*\b{mod}\b|^\s+{mod},$",
                         p.read_text(encoding="utf-8"), re.M)}


@pytest.mark.parametrize("rule_id", SECTION6)
def test_the_rule_table_links_the_definition(rule_id: str) -> None:
    table = (ROOT / "docs" / "checking.md").read_text(encoding="utf-8")
    row = next(ln for ln in table.splitlines() if ln.startswith(f"| {rule_id} |"))
    assert f"(../checker/kvclaims/check/rules/{module_name(rule_id)}.py)" in row


# ---- the two evaluators ---------------------------------------------------------------------------
CTX = z3.Context()
ZOPS = symbolic.Ops(CTX)
_ints = st.integers(-5, 5)
_vals = st.one_of(st.booleans(), _ints)


def _sym(x: object) -> z3.ExprRef:
    """A fresh Z3 variable constrained to the Python value (so nothing folds)."""
    v = (z3.Bool if isinstance(x, bool) else z3.Int)(f"v{next(_fresh)}", CTX)
    _facts.append(v == symbolic.lift(x, CTX))
    return v


_fresh = iter(range(10**9))
_facts: list[z3.ExprRef] = []


def _value(t: object) -> object:
    if not symbolic.is_sym(t):
        return t
    s = z3.Solver(ctx=CTX)
    s.add(*_facts)
    assert s.check() == z3.sat
    r = s.model().eval(t, model_completion=True)
    return z3.is_true(r) if z3.is_bool(r) else r.as_long()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=4), _ints, _ints,
       st.sampled_from(["<", "<=", ">", ">="]), st.lists(_ints, max_size=4))
def test_the_operators_agree(bs: list[bool], a: int, b: int, op: str, xs: list[int]) -> None:
    _facts.clear()
    sb = [_sym(x) for x in bs]
    sa, sbb = _sym(a), _sym(b)
    pairs = [
        (PY.and_(*bs), ZOPS.and_(*sb)), (PY.or_(*bs), ZOPS.or_(*sb)),
        (PY.not_(bs[0]), ZOPS.not_(sb[0])), (PY.implies(bs[0], bs[-1]), ZOPS.implies(sb[0], sb[-1])),
        (PY.ite(bs[0], a, b), ZOPS.ite(sb[0], sa, sbb)), (PY.eq(a, b), ZOPS.eq(sa, sbb)),
        (PY.member(a, xs), ZOPS.member(sa, xs)), (PY.cmp(op, a, b), ZOPS.cmp(op, sa, sbb)),
        (PY.total([a, b, *bs]), ZOPS.total([sa, sbb, *sb])), (PY.count(bs), ZOPS.count(sb)),
    ]
    for concrete, symbolic_ in pairs:
        assert concrete == _value(symbolic_)
        # and the folding path: the symbolic operators on plain Python values compute them
    assert ZOPS.and_(*bs) == PY.and_(*bs) and ZOPS.total([a, b]) == PY.total([a, b])


def _conditions(modules: list[str] | None = None) -> list[tuple[str, object]]:
    out = []
    for mod in modules or [m for m in _rule_modules() if m != "steps"]:
        m = importlib.import_module(f"kvclaims.check.rules.{mod}")
        for name, fn in inspect.getmembers(m, inspect.isfunction):
            if fn.__module__ != m.__name__ or name.startswith("_"):
                continue
            params = list(inspect.signature(fn).parameters.values())
            if not params or params[0].name != "o":
                continue  # a static fact of the spec or of an event's own fields
            out.append((f"{mod}.{name}", fn))
    return out


CONDITIONS = _conditions()


def test_conditions_are_found() -> None:
    assert len(CONDITIONS) >= 30


def _compiled(name: str) -> object:
    mod, fn = name.split(".")
    return getattr(getattr(concrete, mod), fn)


def test_the_replay_calls_compiled_definitions() -> None:
    # Every condition is compiled (its operator calls inlined), not passed through.
    for name, fn in CONDITIONS:
        fast = _compiled(name)
        assert fast is not fn and getattr(fast, "__wrapped__", None) is fn, name
        assert ".and_(" not in inspect.getsource(fn) or fast.__code__ is not fn.__code__


def _arg(draw: st.DrawFn, p: inspect.Parameter) -> object:
    ann = str(p.annotation)
    if "Iterable" in ann or "Sequence" in ann or p.name in ("sources", "yielding",
                                                             "refusal_outcomes"):
        return draw(st.frozensets(_ints, max_size=3))
    if ann in ("bool",) or p.name.startswith(("is_", "has_")):
        return draw(st.booleans())
    return draw(_vals)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(st.data())
def test_every_condition_reads_the_same_under_both_evaluators(data: st.DataObject) -> None:
    name, fn = data.draw(st.sampled_from(CONDITIONS))
    params = list(inspect.signature(fn).parameters.values())[1:]
    if name == "attribution.listed_mismatch":
        # listed_mismatch: ids and a predicate over them
        listed = data.draw(st.lists(st.sampled_from("abc"), max_size=3))
        blocking = data.draw(st.lists(st.sampled_from("abcd"), max_size=3))
        ok = data.draw(st.dictionaries(st.sampled_from("abcd"), st.booleans()))
        _facts.clear()
        sym = {k: _sym(v) for k, v in ok.items()}
        want = fn(PY, listed, blocking, lambda c: ok.get(c, False))
        fast = _compiled(name)(PY, listed, blocking, lambda c: ok.get(c, False))
        assert bool(want) == bool(fast), name
        got = fn(ZOPS, listed, blocking, lambda c: sym.get(c, False))
        assert bool(want) == _value(got), name
        return
    args = [_arg(data.draw, p) for p in params]
    # Arithmetic on bools is not an operator of the interface: ints where a rule subtracts.
    try:
        want = fn(PY, *args)
    except TypeError:
        assume(False)  # e.g. an int compared with a frozenset: not a well-typed call
        return
    fast = _compiled(name)(PY, *args)  # short-circuit evaluates a part of what PY evaluated
    assert bool(fast) == bool(want) and (isinstance(want, bool) or fast == want), (name, args)
    _facts.clear()
    sargs = [a if isinstance(a, frozenset) else _sym(a) for a in args]
    try:
        got = fn(ZOPS, *sargs)
    except (z3.Z3Exception, TypeError):
        assume(False)  # sorts Z3 refuses to mix (Bool where Int is meant): not well-typed
        return
    got_v = _value(got)
    if isinstance(want, bool) or isinstance(got_v, bool):
        assert bool(want) == bool(got_v), (name, args)
    else:
        assert want == got_v, (name, args)


STEPS = _conditions(["steps"])
R = RuleIds(SPEC)


def _flat(x: object) -> list[object]:
    """A step's result as a flat list: every condition, new value, rule id and wording in it."""
    if isinstance(x, tuple):
        return [y for item in x for y in _flat(item)]
    return [x]


def test_steps_are_found() -> None:
    assert {n for n, _ in STEPS} >= {"steps.at_claim_event", "steps.at_harm", "steps.at_loss",
                                     "steps.at_group_end", "steps.at_offload"}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_step_reads_the_same_under_both_evaluators(data: st.DataObject) -> None:
    """rules/steps.py: every filed condition and every new state value of a step, from random
    state, is the same under PY, compiled (the replay) and the symbolic operators (the Z3 engine);
    so is which rule and which wording each finding has."""
    name, fn = data.draw(st.sampled_from(STEPS))
    params = list(inspect.signature(fn).parameters.values())[2:]  # o, R
    args = [data.draw(_ints if p.name in ("lost_reports", "gen", "open_gen", "state") else
                      st.frozensets(_ints, max_size=3) if p.name == "sources" else st.booleans())
            for p in params]
    want = _flat(fn(PY, R, *args))
    fast = _flat(_compiled(name)(PY, R, *args))
    _facts.clear()
    sargs = [a if p.annotation == "bool" or isinstance(a, frozenset) else _sym(a)
             for p, a in zip(params, args)]
    got = [_value(v) for v in _flat(fn(ZOPS, R, *sargs))]
    assert len(want) == len(fast) == len(got), name
    for w, f, g in zip(want, fast, got):
        if isinstance(w, str):
            assert w == f == g, (name, args)
        else:
            assert bool(w) == bool(f) == bool(g), (name, args, w, f, g)


def test_ops_protocol_is_met_by_both() -> None:
    for impl in (PY, ZOPS):
        for name in ("and_", "or_", "not_", "implies", "ite", "eq", "member", "cmp", "total",
                     "count"):
            assert callable(getattr(impl, name)), (type(impl).__name__, name)
    assert Ops  # the Protocol the definitions are typed against
