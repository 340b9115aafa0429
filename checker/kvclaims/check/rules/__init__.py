"""The rules of docs/model.md §6, each defined once, for both engines (docs/checking.md, "One definition per rule").

A rule lives in the module named after its id: `R-release-order` in `rules/release_order.py`,
`R-no-silent-loss` in `rules/no_silent_loss.py` (the `R-` dropped, `-` read as `_`; `R-yield` is
`rules/yield_.py`, `yield` being a Python keyword). The id itself is read from spec/rules.toml
(check/state.py `RuleIds`), never typed here.

The shape of a definition. A rule is a set of plain functions

    condition(o: Ops, <values read from the state and the event>) -> Val

each returning the condition under which the engine files a finding of that rule (a violation or,
where the function says so, an `unknown`), or a condition the rule needs to settle its own state
(a pending harm announced, a deferral past its bound). The functions use only the operators of
:mod:`kvclaims.check.rules.ops` (and/or/not/implies, if-then-else, comparisons, membership,
counting and sums) on the values they are given; static facts of the spec (which events count as
releases, which modes give way) are plain functions of the spec tables, computed once.

Two evaluators run the same definitions:

- the replay (check/replay.py and its plug-ins) passes Python values and `PY` to the definitions
  as compiled by rules/concrete.py (operator calls inlined once, at import, from the definition's
  own source), and gets a truth value: it streams the trace, keeps the state, locates the
  finding (line, column, quote) and fills the rule's wording;
- the Z3 engine (check/z3model.py) passes its encoded state (Python values where the order is
  known, Z3 terms inside unordered parts) and `symbolic.Ops`, and gets a guard under which the
  finding holds in some linearizations.

A rule module also holds the wording of its findings (`str.format` templates), and
rules/steps.py composes the definitions per step of a claim (a claim event, a harm, a loss, the end
of a group of block events, an offload event): the order of the cases and what the step does to
the state the rules read, returned as `Filed` findings (rules/ops.py) and new values.

So the engines hold state and iterate events; what a rule *is* is written here once, and the
engine differential (tests/check/test_engines.py) tests the two evaluators and the symbolic
unrolling, while the mutation suite (tests/mutation) tests the definitions' reading of the model.
docs/checking.md's rule table links every rule to its module, and its "One definition per rule"
lists what is still the engines' own code (wiring and bookkeeping around the definitions).
"""
