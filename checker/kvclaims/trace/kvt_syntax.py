"""The .kvt line syntax: the Lark reference parser and the shared value conversions (docs/model.md §5).

Decides what a line *says* (its tokens, values and their columns) without any vocabulary: a
parsed line is a :class:`RawEvent` or :class:`RawHeader`, with subject, verb and keys as written.
spec/trace.lark is the definition; :mod:`kvclaims.trace.kvt_fast` is the accelerator proven equal
to it. Value errors found while parsing (an empty range, a huge integer) are collected, not raised,
so a syntax error later on the line wins in both parsers alike.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any, NamedTuple

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from kvclaims import spec as spec_mod

MAX_RANGE = 1 << 20  # a range longer than this is an input error, not a memory bomb
END_OF_LINE = "$END"

# (column, message): value errors noticed while parsing; the smallest column is reported.
ValueErrors = list[tuple[int, str]]


class Pair(NamedTuple):
    key: str
    quoted: bool  # a quoted key is a field name taken literally, never a kvt alias
    column: int
    value: Any


class RawEvent(NamedTuple):
    seq: int | None
    seq_column: int
    subject: str
    subject_column: int
    id_text: str
    id_quoted: bool
    id_column: int
    verb: str
    verb_column: int
    pairs: list[Pair]
    errors: ValueErrors


class RawHeader(NamedTuple):
    version: int
    column: int
    errors: ValueErrors


class RawBatchOpen(NamedTuple):
    """`batch {`: opens a block of events whose relative order is unknown."""

    column: int


class RawBatchClose(NamedTuple):
    """`}`: closes the open batch block."""

    column: int


class RawSkew(NamedTuple):
    """`skew A B DELTA_NS`: sources A and B may interleave within DELTA_NS nanoseconds."""

    column: int
    source_a: str
    source_a_column: int
    source_b: str
    source_b_column: int
    delta_ns: int
    errors: ValueErrors


# None: blank or comment-only line
RawLine = RawEvent | RawHeader | RawBatchOpen | RawBatchClose | RawSkew | None


class SyntaxProblem(Exception):
    """A line outside the grammar: where, and which tokens would have been accepted."""

    def __init__(self, column: int, message: str):
        super().__init__(message)
        self.column = column
        self.message = message


# ---- value conversions shared by both parsers -----------------------------------------------


def to_int(text: str, column: int, errors: ValueErrors) -> int:
    try:
        return int(text)
    except ValueError:  # more digits than int() converts (sys.int_info.str_digits_check_threshold)
        errors.append((column, f"integer literal of {len(text)} characters is too long"))
        return 0


def to_float(text: str, column: int, errors: ValueErrors) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):  # JSON has no infinity; 1e999 is not a trace value
        errors.append((column, f"float {text} is out of range"))
        return 0.0
    return value


def to_range(text: str, column: int, errors: ValueErrors) -> list[int]:
    lo_text, hi_text = text.split("..")
    lo, hi = to_int(lo_text, column, errors), to_int(hi_text, column, errors)
    if hi < lo:
        errors.append((column, f"range {text} is empty; write [] for an empty list"))
        return []
    if hi - lo + 1 > MAX_RANGE:
        errors.append((column, f"range {text} has more than {MAX_RANGE} elements"))
        return []
    return list(range(lo, hi + 1))


def to_string(text: str) -> str:
    return json.loads(text) if "\\" in text else text[1:-1]


def call_spelling(name: str, args: list[str]) -> str:
    """A call value is stored as its canonical spelling, e.g. contiguous_range(0, 8)."""
    return f"{name}({', '.join(args)})"


def to_object(pairs: list[Pair], errors: ValueErrors) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for p in pairs:
        if p.key in obj:
            errors.append((p.column, f"key {p.key!r} given twice in one object"))
        obj[p.key] = p.value
    return obj


# ---- the Lark reference parser --------------------------------------------------------------


@lru_cache(maxsize=None)
def grammar_text() -> str:
    # spec/ is located by kvclaims.spec (wheel or repository); trace.lark is read only here.
    return spec_mod.grammar_text()


@lru_cache(maxsize=None)
def lark_parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", lexer="contextual", maybe_placeholders=True)


@lru_cache(maxsize=None)
def terminal_regex(name: str) -> re.Pattern[str]:
    """The compiled regular expression of a grammar terminal: the fast path lexes with these."""
    for t in lark_parser().terminals:
        if t.name == name:
            return re.compile(t.pattern.to_regexp())
    raise KeyError(name)


@lru_cache(maxsize=None)
def terminal_literal(name: str) -> str:
    """The text of a keyword terminal of the grammar (e.g. KVTRACE)."""
    for t in lark_parser().terminals:
        if t.name == name and t.pattern.type == "str":
            return str(t.pattern.value)
    raise KeyError(name)


_WORDS = {
    "NAME": "a name",
    "BARE": "a word",
    "INT": "an integer",
    "FLOAT": "a float",
    "RANGE": "a range a..b",
    "STRING": "a quoted string",
    "NATURAL": "a non-negative integer",
    END_OF_LINE: "end of line",
}


@lru_cache(maxsize=None)
def _terminal_words() -> dict[str, str]:
    words = dict(_WORDS)
    for t in lark_parser().terminals:
        if t.name not in words and t.pattern.type == "str":
            words[t.name] = repr(t.pattern.value)
    return words


def expected_words(names: set[str]) -> str:
    words = _terminal_words()
    return ", ".join(sorted(words.get(n, n) for n in names))


class _ToRaw(Transformer[Token, Any]):
    """Parse tree → RawLine; one instance per line (it collects that line's value errors)."""

    def __init__(self) -> None:
        super().__init__()
        self.errors: ValueErrors = []

    def INT(self, t: Token) -> Any:
        return to_int(str(t), t.column or 0, self.errors)

    def FLOAT(self, t: Token) -> Any:
        return to_float(str(t), t.column or 0, self.errors)

    def RANGE(self, t: Token) -> Any:
        return to_range(str(t), t.column or 0, self.errors)

    def STRING(self, t: Token) -> Any:
        return _Quoted(to_string(str(t)), t.column or 0)

    def BARE(self, t: Token) -> Any:
        return _Word(str(t), t.column or 0)

    def TRUE(self, t: Token) -> Any:
        return True

    def FALSE(self, t: Token) -> Any:
        return False

    def NULL(self, t: Token) -> Any:
        return _NULL  # not None: None is the placeholder of an empty [..] in the tree

    def start(self, items: list[Any]) -> RawLine:
        return items[0] if items else None

    def header(self, items: list[Any]) -> RawHeader:
        return RawHeader(items[0], 1, self.errors)

    def NATURAL(self, t: Token) -> Any:
        return _Word(str(t), t.column or 0)  # converted by `skew`, which needs its column

    def batch_open(self, items: list[Any]) -> RawBatchOpen:
        return RawBatchOpen(1)

    def batch_close(self, items: list[Any]) -> RawBatchClose:
        return RawBatchClose(1)

    def skew(self, items: list[Any]) -> RawSkew:
        a, b, delta = items
        return RawSkew(1, a.text, a.column, b.text, b.column,
                       to_int(delta.text, delta.column, self.errors), self.errors)

    def seq(self, items: list[Any]) -> Any:
        return items[0]

    def event(self, items: list[Any]) -> RawEvent:
        seq, subject, ident, verb, *pairs = items
        return RawEvent(seq, 1, str(subject), subject.column, ident.text,
                        isinstance(ident, _Quoted), ident.column, str(verb), verb.column,
                        pairs, self.errors)

    def id(self, items: list[Any]) -> Any:
        return items[0]

    def key(self, items: list[Any]) -> Any:
        k = items[0]
        if isinstance(k, _Quoted):
            return k
        return _Word(str(k), k.column)

    def pair(self, items: list[Any]) -> Pair:
        k, v = items
        return Pair(k.text, isinstance(k, _Quoted), k.column, _plain(v))

    def list(self, items: list[Any]) -> list[Any]:
        return [] if items == [None] else [_plain(v) for v in items]

    def object(self, items: list[Any]) -> dict[str, Any]:
        return to_object([] if items == [None] else items, self.errors)

    def call(self, items: list[Any]) -> str:
        name, *args = items
        if args == [None]:
            args = []
        return call_spelling(name.text, [_arg_spelling(a) for a in args])


class _Word(NamedTuple):
    text: str
    column: int


class _Quoted(NamedTuple):
    text: str
    column: int


_NULL = object()


def _plain(v: Any) -> Any:
    if v is _NULL:
        return None
    return v.text if isinstance(v, (_Word, _Quoted)) else v


def _arg_spelling(a: Any) -> str:
    if isinstance(a, _Word):
        return a.text
    return repr(a) if isinstance(a, float) else str(a)


def _expected(e: UnexpectedInput, fallback: set[str]) -> str:
    # The LALR state after a reduction merges lookaheads of several contexts (`,` `]` `}` after a
    # value anywhere); asking the interactive parser gives the terminals this very line accepts.
    ip = getattr(e, "interactive_parser", None)
    names = set(ip.accepts()) if ip is not None else set(fallback)
    return expected_words(names)


def _syntax_problem(line: str, e: UnexpectedInput) -> SyntaxProblem:
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == END_OF_LINE:
            return SyntaxProblem(_end_column(line, e),
                                 f"unexpected end of line; expected {_expected(e, e.expected)}")
        return SyntaxProblem(tok.column or 1, f"unexpected {str(tok)!r}; expected {_expected(e, e.expected)}")
    if isinstance(e, UnexpectedCharacters):
        ch = line[e.pos_in_stream] if e.pos_in_stream < len(line) else ""
        return SyntaxProblem(e.column, f"unexpected character {ch!r}; expected {_expected(e, e.allowed)}")
    return SyntaxProblem(getattr(e, "column", 1) or 1, str(e))


def _end_column(line: str, e: UnexpectedToken) -> int:
    # $END borrows the position of the last token; point just after that token.
    end = getattr(e.token, "end_column", None)
    return end if isinstance(end, int) else len(line) + 1


def parse_raw_lark(line: str) -> RawLine:
    """The reference: one LALR parse of one line; raises SyntaxProblem."""
    try:
        tree = lark_parser().parse(line)
    except UnexpectedInput as e:
        raise _syntax_problem(line, e) from None
    raw: RawLine = _ToRaw().transform(tree)
    if raw is not None:
        first = len(line) - len(line.lstrip(" \t")) + 1  # `@` or `kvtrace` opens the line
        raw = raw._replace(seq_column=first) if isinstance(raw, RawEvent) else raw._replace(column=first)
    return raw
