"""Differential test: the fast .kvt parser accepts exactly the Lark grammar's language (docs/model.md §5).

Both the raw parse (tokens, values, columns, value errors) and the final result (Event, or
InputError line, column and message) must agree, on writer output and on mutated or random lines.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from kvclaims.trace import dsl
from kvclaims.trace.kvt_fast import parse_raw_fast
from kvclaims.trace.kvt_syntax import SyntaxProblem, parse_raw_lark
from kvclaims.trace.model import InputError, Skew
from kvclaims.trace.write import kvt_line
from kvt_strategies import directive_lines, events, typed

NOISE = " \t\"\\[]{}(),=@#.:-+/_0123456789aez\x01é"


def _outcome(parse: Any, line: str) -> Any:
    try:
        r = parse(line, 7, "t.kvt")
    except InputError as e:
        return ("error", e.line, e.column, e.message, e.unknown)
    if isinstance(r, (dsl.Header, dsl.BatchOpen, dsl.BatchClose, Skew)):
        return (type(r).__name__, r)
    return None if r is None else ("event", r.kind, typed(r.fields), r.line, r.column, r.text)


def _agree(line: str) -> None:
    fast = parse_raw_fast(line)
    try:
        ref: Any = parse_raw_lark(line)
    except SyntaxProblem:
        ref = False
    # repr tells True from 1 and keeps field order
    assert repr(fast) == repr(ref), line
    assert _outcome(dsl.parse_line_fast, line) == _outcome(dsl.parse_line_lark, line)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    line = draw(st.one_of(st.builds(kvt_line, events()), directive_lines()))
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["insert", "delete", "truncate", "replace"]))
        i = draw(st.integers(0, len(line)))
        if op == "insert":
            line = line[:i] + draw(st.text(NOISE, min_size=1, max_size=3)) + line[i:]
        elif op == "delete":
            line = line[:i] + line[i + draw(st.integers(1, 4)):]
        elif op == "truncate":
            line = line[:i]
        else:
            line = line[:i] + draw(st.sampled_from(NOISE)) + line[i + 1:]
    return line


@settings(max_examples=500, deadline=None)
@given(events())
def test_writer_lines_agree(event: Any) -> None:
    _agree(kvt_line(event))


@settings(max_examples=1500, deadline=None)
@given(mutated())
@example("claim x accepted a=[1 2]")
@example("claim x accepted a=5..1 b=")
@example("claim x accepted a=5..1!")
@example("@3 kvtrace 1")
@example("kvtrace 1 # c")
@example("kvtrace x")
@example("claim:x accepted")
@example('claim x accepted a=f (1, 0..3, true) b=true(1)')
@example('claim x accepted a=1e999 b=' + "9" * 5000)
@example("batch{#x")
@example("batch { }")
@example("@1 batch {")
@example("}}")
@example("skew a b -5")
@example("skew a a 5")
@example("skew true 0..3 1e3")
@example("skew a b " + "9" * 5000)
@example("skew a b 5.0")
@example('skew "a" b 5')
def test_mutated_lines_agree(line: str) -> None:
    _agree(line)


@settings(max_examples=300, deadline=None)
@given(directive_lines())
def test_directive_lines_agree(line: str) -> None:
    _agree(line)


@settings(max_examples=1000, deadline=None)
@given(st.text(NOISE + "claimblockvitdrs{}", max_size=40)
       | st.builds(lambda k, t: k + t, st.sampled_from(["batch", "skew", "}", " batch {"]),
                   st.text(NOISE + "ab{}", max_size=12)))
def test_random_lines_agree(line: str) -> None:
    _agree(line)
