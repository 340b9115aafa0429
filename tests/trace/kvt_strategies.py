"""Hypothesis strategies for events of the spec (docs/model.md §5), shared by the .kvt tests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.trace.dsl import EVENT_KEY
from kvclaims.trace.model import Event, Skew

SPEC = spec_mod.load()

# Strings that look like other .kvt values, so the writer's quoting is exercised.
TRICKY = st.sampled_from(["-", "true", "false", "null", "12", "-3", "1.5", "1e5", "0..3", "a b",
                          'q"uote', "back\\slash", "", "#x", "f(1)", "x=y", "claim:resident",
                          "0-8c32530b", "kvtrace", "é", "tab\there", "line\nbreak", "[1]", "@1"])
BARE_TEXT = st.from_regex(r"[A-Za-z0-9_.:/+\-]{1,12}", fullmatch=True)
STRINGS = st.one_of(TRICKY, BARE_TEXT, st.text(max_size=12))
INTS = st.integers(-(2**63), 2**63)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
INT_LISTS = st.one_of(st.lists(INTS, max_size=6),
                      st.builds(lambda a, n: list(range(a, a + n)), st.integers(-50, 50),
                                st.integers(0, 70)))
JSON = st.recursive(
    st.none() | st.booleans() | INTS | FLOATS | STRINGS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4),
    max_leaves=10,
)
OBJECTS = st.dictionaries(STRINGS, JSON, max_size=4)
PREDICATES = st.one_of(
    st.builds(lambda n: f"leading_prefix_at_least({n})", st.integers(-5, 500)),
    st.builds(lambda a, b: f"contiguous_range({a}, {b})", st.integers(0, 99), st.integers(0, 99)),
    st.sampled_from(["f()", "f(1,2)", "f( 1)", "g(1.50)", "g(true)", "h(0..3)", "leading(x, 1e3)"]),
    STRINGS,
)

_BY_TYPE: dict[str, st.SearchStrategy[Any]] = {
    "int": INTS,
    "float": FLOATS | INTS,
    "str": STRINGS,
    "bool": st.booleans(),
    "list[str]": st.lists(STRINGS, max_size=5),
    "list[int]": INT_LISTS,
    "list[object]": st.lists(OBJECTS, max_size=3),
    "object": OBJECTS,
    "any": JSON,
}


def value_for(name: str) -> st.SearchStrategy[Any]:
    """Valid values of field `name`: inside its range, from its closed vocabulary (or, where an
    unknown value is `unknown` rather than an error, any string too; docs/checking.md)."""
    f = SPEC.fields[name]
    if name == "schema_version":  # importers refuse other versions (unknown, not a value)
        return st.just(1)
    base = PREDICATES if name == "materialization_predicate" else _BY_TYPE[f.type]
    if f.min is not None and f.max is not None:
        ints = st.integers(f.min, f.max)
        base = ints if f.type == "int" else st.one_of(
            st.lists(ints, max_size=6),
            st.builds(lambda a, n: list(range(a, a + n)), st.integers(f.min, 50),
                      st.integers(0, 70)))
    if f.values is not None:
        closed = st.sampled_from(sorted(f.values))
        base = closed | STRINGS if f.on_unknown == "unknown" else closed
    # `any` includes null in JSON, but the validator refuses null for a non-nullable field
    return base | st.none() if f.nullable else base.filter(lambda v: v is not None)


# Keys outside fields.toml a known event may carry: the informational names (events.toml); any
# other key is an input error (docs/checking.md "Closed input").
UNKNOWN_NAMES = st.sampled_from(sorted(SPEC.informational))


@st.composite
def events(draw: st.DrawFn) -> Event:
    es = SPEC.events[draw(st.sampled_from(sorted(SPEC.events)))]
    fields: dict[str, Any] = {}
    for name in es.required:
        fields[name] = draw(value_for(name).filter(lambda v: v is not None))
    for name in (*es.optional, *es.carries, *SPEC.base_fields):
        if name not in fields and draw(st.booleans()):
            fields[name] = draw(value_for(name))
    for name in draw(st.lists(UNKNOWN_NAMES, max_size=3, unique=True)):
        fields[name] = draw(JSON)
    return Event(es.name, fields)


def typed(v: Any) -> Any:
    """A comparison key that tells 1, 1.0, True and -0.0 apart."""
    if isinstance(v, dict):
        return ("dict", [(k, typed(x)) for k, x in sorted(v.items())])
    if isinstance(v, list):
        return ("list", [typed(x) for x in v])
    if isinstance(v, float):
        return ("float", repr(v))
    return (type(v).__name__, v)


# ---- partial-order lines (docs/kvt.md "Partial order: batch and skew") ----------------------

BLANKS = st.sampled_from(["", " ", "  ", "\t", " \t "])
COMMENTS = st.sampled_from(["", " # c", "#x", "\t# batch {"])
SOURCES = st.one_of(BARE_TEXT, st.sampled_from(["sched", "kv", "dp0", "true", "-", "12", "0..3",
                                                "claim:r", "batch", "skew", "}"]))


@st.composite
def directive_lines(draw: st.DrawFn) -> str:
    """`batch {`, `}` and `skew A B N` lines, spaced and commented in the ways the grammar allows
    (and, through SOURCES, some it does not: `}` is no word)."""
    lead, gap, gap2, gap3, comment = (draw(BLANKS) for _ in range(5))
    kind = draw(st.sampled_from(["open", "close", "skew"]))
    if kind == "open":
        return f"{lead}batch{gap}{{{comment}"
    if kind == "close":
        return f"{lead}}}{comment}"
    delta = draw(st.one_of(st.integers(0, 10**12), st.integers(-5, -1)))
    gap, gap2, gap3 = (g or " " for g in (gap, gap2, gap3))  # words need a blank between them
    return f"{lead}skew{gap}{draw(SOURCES)}{gap2}{draw(SOURCES)}{gap3}{delta}{comment}"


BATCH_KEYS = st.one_of(st.none(), st.integers(1, 4))  # small: runs of equal keys, block numbers


@st.composite
def partial_events(draw: st.DrawFn) -> list[Event]:
    """Events carrying batch keys (`unordered_batch` in runs that may or may not follow the
    block numbering, `kv_batch_seq`) and sources."""
    out = []
    key, fresh = None, 1
    for event in draw(st.lists(events(), max_size=6)):
        fields = dict(event.fields)
        how = draw(st.sampled_from(["keep", "keep", "next", "none", "any"]))
        if how == "next":  # the numbering `.kvt` blocks follow
            key, fresh = fresh, fresh + 1
        elif how == "none":
            key = None
        elif how == "any":  # a number out of turn: written as a plain field
            key = draw(BATCH_KEYS)
        if key is not None:
            fields[SPEC.order.block_field] = key
        if draw(st.booleans()):
            fields["kv_batch_seq"] = draw(st.integers(0, 3))
        if draw(st.booleans()):
            fields[SPEC.order.source_field] = draw(SOURCES | st.none())
        out.append(Event(event.kind, fields))
    return out


_SKEW_SOURCES = SOURCES.filter(lambda s: s != "}")
SKEWS = st.lists(st.tuples(_SKEW_SOURCES, _SKEW_SOURCES, st.integers(0, 10**15))
                 .filter(lambda t: t[0] != t[1]), max_size=3,
                 unique_by=lambda t: frozenset(t[:2])).map(lambda ts: [Skew(*t) for t in ts])
