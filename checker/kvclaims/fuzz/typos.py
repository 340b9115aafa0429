"""Single-character typos of keys and values, the input mistakes closed input must catch
(issue 16; docs/checking.md "Closed input").

Data only: the Damerau-Levenshtein neighbours at distance one of a word (every deletion,
insertion, substitution and adjacent transposition of one character), and the mutants of one
event (a key or a closed value replaced by such a neighbour). Whether a mutant is still valid
input is the spec's to say: a key that becomes another key the event may carry (`block` and
`blocks`) is not a typo, and neither is a value that becomes another value of the vocabulary.
Used by tests/test_closed_input.py and bench/typo_campaign.py.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kvclaims.spec import Spec
from kvclaims.trace.model import Event

# The characters of field names and of closed values (lower case, digits, `_`).
KEY_ALPHABET = string.ascii_lowercase + string.digits + "_"


def edits(word: str, alphabet: str = KEY_ALPHABET) -> set[str]:
    """Every word at Damerau-Levenshtein distance exactly one from `word` (not `word` itself)."""
    out: set[str] = set()
    n = len(word)
    for i in range(n):
        out.add(word[:i] + word[i + 1:])  # deletion
        for c in alphabet:
            out.add(word[:i] + c + word[i + 1:])  # substitution
    for i in range(n + 1):
        for c in alphabet:
            out.add(word[:i] + c + word[i:])  # insertion
    for i in range(n - 1):
        out.add(word[:i] + word[i + 1] + word[i] + word[i + 2:])  # transposition
    out.discard(word)
    return out


@dataclass(frozen=True, slots=True)
class Mutant:
    """One event with one key renamed (`what` = "key") or one closed value replaced ("value")."""

    what: str
    field: str  # the original field
    typo: str  # the new key, or the new value
    event: Event


def key_mutants(event: Event, spec: Spec, key: str, alphabet: str = KEY_ALPHABET
                ) -> Iterator[Mutant]:
    """`event` with key `key` renamed to each of its typos that the event may not carry."""
    allowed = spec.allowed_keys(event.kind) or frozenset()
    for typo in sorted(edits(key, alphabet)):
        if typo in allowed or typo in event.fields:
            continue  # another key of the event: not a typo (or a duplicate key, its own error)
        fields = {(typo if k == key else k): v for k, v in event.fields.items()}
        yield Mutant("key", key, typo, Event(event.kind, fields, event.line, event.column))


def value_mutants(event: Event, spec: Spec, key: str, alphabet: str = KEY_ALPHABET
                  ) -> Iterator[Mutant]:
    """`event` with the value of closed field `key` replaced by each value not in its
    vocabulary at distance one from a value in it, and by case variants of its values."""
    values = spec.fields[key].values or frozenset()
    seen: set[str] = set()
    for value in sorted(values):
        for typo in sorted(edits(value, alphabet) | _cases(value)):
            if typo in values or typo in seen:
                continue
            seen.add(typo)
            fields: dict[str, Any] = {**event.fields, key: typo}
            yield Mutant("value", key, typo, Event(event.kind, fields, event.line, event.column))


def _cases(value: str) -> set[str]:
    """`Post_Hoc`, `POST_HOC`, `Post_hoc`: what a person types for `post_hoc`."""
    return {value.upper(), value.title(), value.capitalize(), value.replace("_", "-"),
            value.replace("_", "")}
