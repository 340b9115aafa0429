"""Accelerator for the .kvt line syntax: a hand-written recursive-descent parser (docs/model.md §5).

Adapts spec/trace.lark for speed and must accept exactly its language with the same values and
columns (tests/trace/test_fastpath.py checks this against the Lark parser). It lexes with the
grammar's own terminal regexes and, at each position, tries only the terminals the LALR
contextual lexer would accept there (a `60` is a word in the ID position, an integer in a value
position, `true` is a word inside a call). It never explains a rejection: it returns None and the
caller asks the Lark reference parser, so error messages have a single source.
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from typing import Any

from kvclaims.trace.kvt_syntax import (
    Pair,
    RawBatchClose,
    RawBatchOpen,
    RawEvent,
    RawHeader,
    RawLine,
    RawSkew,
    ValueErrors,
    call_spelling,
    terminal_literal,
    terminal_regex,
    to_float,
    to_int,
    to_object,
    to_range,
    to_string,
)

_KEYWORDS = {"true": True, "false": False, "null": None}
_new_pair = tuple.__new__  # Pair(...) without the namedtuple's Python-level __new__


class _Reject(Exception):
    """The line is outside the grammar (the Lark parser will say where and why)."""


class _Lexer:
    """The grammar's terminals, compiled once."""

    def __init__(self) -> None:
        self.ws = terminal_regex("WS")
        self.bare = terminal_regex("BARE").match
        self.name = terminal_regex("NAME").match
        self.int = terminal_regex("INT").match
        self.float = terminal_regex("FLOAT").match
        self.range = terminal_regex("RANGE").match
        self.string = terminal_regex("STRING").match
        self.header = terminal_literal("KVTRACE")
        self.batch = terminal_literal("BATCH")
        self.skew = terminal_literal("SKEW")
        self.batch_open = terminal_literal("LBRACE")
        self.batch_close = terminal_literal("RBRACE")
        self.natural = terminal_regex("NATURAL").match
        # Words that open a line other than an event when they are the whole first NAME.
        self.keywords = frozenset({self.header, self.batch, self.skew})
        self.numeric_start = frozenset("-0123456789")
        self.name_full = terminal_regex("NAME").fullmatch
        self.bare_full = terminal_regex("BARE").fullmatch
        self.int_full = terminal_regex("INT").fullmatch
        self.float_full = terminal_regex("FLOAT").fullmatch
        # Composite patterns for the common line shape, built from the same terminals. A match is
        # the very parse the recursive descent below would make (each word is maximal: a BARE
        # run ends at a non-BARE character, and the other terminals carry that lookahead);
        # whatever they do not match is left to the recursive descent, so they only add speed.
        ws = f"(?:{self.ws.pattern})?"
        name = terminal_regex("NAME").pattern
        bare = terminal_regex("BARE").pattern
        word_end = f"(?!{bare[:-1]})"  # the BARE class without its `+`: no word character next
        int_ = terminal_regex("INT").pattern
        string = terminal_regex("STRING").pattern
        # [@INT] NAME (STRING | BARE) NAME, and the blanks after it: group 1 spans the line from
        # `@` or the subject.
        self.head = re.compile(
            f"{ws}((?:@{ws}({int_}){ws})?({name}){ws}(?:({string})|({bare}){word_end}){ws}({name})){ws}"
        ).match
        # NAME = (INT | FLOAT | RANGE | STRING | BARE not followed by a call's `(`), and the blanks
        # after it: one pair with a plain key and a scalar value; groups 2..6 tell the terminal.
        self.pair = re.compile(
            f"({name}){ws}={ws}(?:({int_})|({terminal_regex('FLOAT').pattern})|"
            f"({terminal_regex('RANGE').pattern})|({string})|({bare}){word_end}(?!{ws}\\()){ws}"
        ).match

@lru_cache(maxsize=None)
def _lexer() -> _Lexer:
    return _Lexer()


def parse_raw_fast(line: str) -> RawLine | bool:
    """RawLine for a line in the grammar, False when outside it."""
    try:
        return _Parser(line, _lexer()).fast_line()
    except _Reject:
        return False


# ---- plain words: the tokens of a line written `SUBJECT ID VERB key=value ...` ----------------
# kvclaims.trace.dsl reads such a line by splitting it on single spaces; it asks these whether a
# token is a whole NAME, or a whole value by itself in a value position, with its value. Words
# once checked are remembered (the caches are emptied when full; a word is then checked again).

CACHE_LIMIT = 1 << 14
PLAIN_NAMES: set[str] = set()  # words known to be a whole NAME
PLAIN_VALUES: dict[str, Any] = {}  # words known to be a whole INT, FLOAT, keyword or BARE → value
NOT_PLAIN = object()


def plain_name(word: str) -> bool:
    """True when `word` is a whole NAME (then remembered in PLAIN_NAMES)."""
    if _lexer().name_full(word) is None:
        return False
    if len(PLAIN_NAMES) >= CACHE_LIMIT:
        PLAIN_NAMES.clear()
    PLAIN_NAMES.add(word)
    return True


def plain_value(word: str) -> Any:
    """The value of `word` alone in a value position (then remembered in PLAIN_VALUES), or
    NOT_PLAIN when it is not one plain word or its value is a value error or a (fresh) list."""
    lx = _lexer()
    if lx.bare_full(word) is None:
        return NOT_PLAIN
    if word[0] in lx.numeric_start:
        if lx.int_full(word) is not None:
            try:
                value: Any = int(word)
            except ValueError:  # too long: a value error
                return NOT_PLAIN
        elif lx.float_full(word) is not None:
            value = float(word)
            if value in (math.inf, -math.inf):
                return NOT_PLAIN
        elif lx.range(word) is not None:  # (it ends at the word's end, by its lookahead)
            return NOT_PLAIN
        else:
            value = word
    else:
        value = _KEYWORDS[word] if word in _KEYWORDS else word
    if len(PLAIN_VALUES) >= CACHE_LIMIT:
        PLAIN_VALUES.clear()
    PLAIN_VALUES[word] = value
    return value


class _Parser:
    __slots__ = ("s", "n", "pos", "lx", "errors")

    def __init__(self, s: str, lx: _Lexer) -> None:
        self.s = s
        self.n = len(s)
        self.pos = 0
        self.lx = lx
        self.errors: ValueErrors = []

    def skip(self) -> int:
        s, pos = self.s, self.pos
        n = self.n
        while pos < n and (s[pos] == " " or s[pos] == "\t"):
            pos += 1
        self.pos = pos
        return pos

    def at_end(self) -> bool:
        pos = self.skip()
        return pos >= self.n or self.s[pos] == "#"

    def fast_line(self) -> RawLine:
        """`line()` by the composite patterns, falling back to recursive descent where they miss."""
        s, lx = self.s, self.lx
        m = lx.head(s)
        if m is None:
            return self.line()
        seq_text, subject, qid, bid, verb = m.group(2, 3, 4, 5, 6)
        if seq_text is None:
            if subject in lx.keywords:
                return self.line()
            seq = None
        else:
            try:
                seq = int(seq_text)
            except ValueError:
                seq = to_int(seq_text, m.start(2) + 1, self.errors)
        if qid is None:
            id_text, id_quoted = bid, False
        else:
            id_text, id_quoted = (json.loads(qid) if "\\" in qid else qid[1:-1]), True
        pairs: list[Pair] = []
        append = pairs.append
        errors = self.errors
        pair_at = lx.pair
        n = self.n
        pos = m.end()
        while pos < n:
            pm = pair_at(s, pos)
            if pm is None:
                self.pos = pos
                if self.at_end():
                    break
                append(self.pair())
                pos = self.skip()
                continue
            key, i, f, r, q, b = pm.groups()
            if b is not None:
                value = _KEYWORDS[b] if b in _KEYWORDS else b
            elif i is not None:
                try:
                    value = int(i)
                except ValueError:
                    value = to_int(i, pm.start(2) + 1, errors)
            elif q is not None:
                value = json.loads(q) if "\\" in q else q[1:-1]
            elif f is not None:
                value = to_float(f, pm.start(3) + 1, errors)
            else:
                value = to_range(r, pm.start(4) + 1, errors)
            append(_new_pair(Pair, (key, False, pos + 1, value)))
            pos = pm.end()
        return RawEvent(seq, m.start(1) + 1, subject, m.start(3) + 1, id_text, id_quoted,
                        m.start(4 if qid is not None else 5) + 1, verb, m.start(6) + 1, pairs,
                        errors)

    def line(self) -> RawLine:
        if self.at_end():
            return None
        first = self.pos + 1
        s = self.s
        if s[self.pos] == self.lx.batch_close:
            self.pos += 1
            if not self.at_end():
                raise _Reject
            return RawBatchClose(first)
        seq: int | None = None
        if s[self.pos] == "@":
            self.pos += 1
            self.skip()
            m = self.lx.int(s, self.pos)
            if m is None:
                raise _Reject
            seq = to_int(m.group(), self.pos + 1, self.errors)
            self.pos = m.end()
            self.skip()
        subject_col = self.pos + 1
        subject = self.word(self.lx.name)
        if seq is None and subject == self.lx.header:
            self.skip()
            m = self.lx.int(s, self.pos)
            if m is None:
                raise _Reject
            version = to_int(m.group(), self.pos + 1, self.errors)
            self.pos = m.end()
            if not self.at_end():
                raise _Reject
            return RawHeader(version, first, self.errors)
        if seq is None and subject == self.lx.batch:
            self.skip()
            if self.pos >= self.n or s[self.pos] != self.lx.batch_open:
                raise _Reject
            self.pos += 1
            if not self.at_end():
                raise _Reject
            return RawBatchOpen(first)
        if seq is None and subject == self.lx.skew:
            return self.skew_line(first)
        self.skip()
        id_col = self.pos + 1
        if self.pos < self.n and s[self.pos] == '"':
            id_text, id_quoted = self.string(), True
        else:
            id_text, id_quoted = self.word(self.lx.bare), False
        self.skip()
        verb_col = self.pos + 1
        verb = self.word(self.lx.name)
        pairs: list[Pair] = []
        while not self.at_end():
            pairs.append(self.pair())
        return RawEvent(seq, first, subject, subject_col, id_text, id_quoted, id_col, verb,
                        verb_col, pairs, self.errors)

    def skew_line(self, first: int) -> RawSkew:
        self.skip()
        a_col = self.pos + 1
        a = self.word(self.lx.bare)
        self.skip()
        b_col = self.pos + 1
        b = self.word(self.lx.bare)
        self.skip()
        m = self.lx.natural(self.s, self.pos)
        if m is None:
            raise _Reject
        delta = to_int(m.group(), self.pos + 1, self.errors)
        self.pos = m.end()
        if not self.at_end():
            raise _Reject
        return RawSkew(first, a, a_col, b, b_col, delta, self.errors)

    def word(self, match: Any) -> str:
        m = match(self.s, self.pos)
        if m is None:
            raise _Reject
        self.pos = m.end()
        return m.group()  # type: ignore[no-any-return]

    def string(self) -> str:
        m = self.lx.string(self.s, self.pos)
        if m is None:
            raise _Reject
        self.pos = m.end()
        return to_string(m.group())

    def pair(self) -> Pair:
        s = self.s
        col = self.pos + 1
        if self.pos < self.n and s[self.pos] == '"':
            key, quoted = self.string(), True
        else:
            key, quoted = self.word(self.lx.name), False
        self.skip()
        if self.pos >= self.n or s[self.pos] != "=":
            raise _Reject
        self.pos += 1
        self.skip()
        return Pair(key, quoted, col, self.value())

    def value(self) -> Any:
        s, pos = self.s, self.pos
        if pos >= self.n:
            raise _Reject
        c = s[pos]
        if c == '"':
            return self.string()
        if c == "[":
            return self.list()
        if c == "{":
            return self.object()
        lx = self.lx
        if c in lx.numeric_start:
            m = lx.int(s, pos)
            if m is not None:
                self.pos = m.end()
                return to_int(m.group(), pos + 1, self.errors)
            m = lx.float(s, pos)
            if m is not None:
                self.pos = m.end()
                return to_float(m.group(), pos + 1, self.errors)
            m = lx.range(s, pos)
            if m is not None:
                self.pos = m.end()
                return to_range(m.group(), pos + 1, self.errors)
        word = self.word(lx.bare)
        if word in _KEYWORDS:
            return _KEYWORDS[word]
        if self.skip() < self.n and s[self.pos] == "(":
            return self.call(word)
        return word

    def list(self) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        if self.close("]"):
            return out
        while True:
            out.append(self.value())
            if self.close("]"):
                return out
            self.comma()

    def object(self) -> dict[str, Any]:
        self.pos += 1
        pairs: list[Pair] = []
        if self.close("}"):
            return {}
        while True:
            pairs.append(self.pair())
            if self.close("}"):
                return to_object(pairs, self.errors)
            self.comma()

    def call(self, name: str) -> str:
        self.pos += 1
        args: list[str] = []
        if self.close(")"):
            return call_spelling(name, args)
        while True:
            args.append(self.arg())
            if self.close(")"):
                return call_spelling(name, args)
            self.comma()

    def arg(self) -> str:
        # Inside a call only INT, FLOAT and BARE are accepted: `0..3` and `true` are words here.
        s, pos, lx = self.s, self.pos, self.lx
        m = lx.int(s, pos)
        if m is not None:
            self.pos = m.end()
            return str(to_int(m.group(), pos + 1, self.errors))
        m = lx.float(s, pos)
        if m is not None:
            self.pos = m.end()
            return repr(to_float(m.group(), pos + 1, self.errors))
        return self.word(lx.bare)

    def close(self, bracket: str) -> bool:
        pos = self.skip()
        if pos < self.n and self.s[pos] == bracket:
            self.pos = pos + 1
            return True
        return False

    def comma(self) -> None:
        pos = self.skip()
        if pos >= self.n or self.s[pos] != ",":
            raise _Reject
        self.pos = pos + 1
        self.skip()


def parse_value_text(text: str) -> tuple[bool, Any]:
    """(True, value) when `text` is exactly one valid .kvt value, else (False, None)."""
    p = _Parser(text, _lexer())
    try:
        value = p.value()
    except _Reject:
        return False, None
    if p.skip() != p.n or p.errors:
        return False, None
    return True, value
