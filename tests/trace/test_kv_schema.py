"""Schema drift never passes silently (issue 24 item 5; docs/formats.md "Schema drift"): an event
field a format does not declare (spec/streams.toml), an unknown variant, a missing required field
or a value of another shape is a located stream finding naming it, never conformant; and the
claim manifest's keys are closed, each error located at its key."""

from __future__ import annotations

import keyword

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims.kvstream import check_records
from kvclaims.spec import stream_formats
from kvclaims.trace.formats.base import declarations
from kvclaims.trace.model import InputError
from kvclaims.trace.vllm_events import decode_event, load_manifest, manifest_from_dict

# the formats whose wire is vLLM's msgpack batch (spec/formats.toml `wire`), which these tests
# write; the JSON Lines importers' schema drift is tested in tests/trace/test_formats_io.py
FORMATS = {n: f for n, f in stream_formats().items() if declarations()[n].wire == "msgpack"}
NAMES = st.from_regex(r"[a-z][a-z_]{0,15}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s))


def _valid(fmt: str, kind: str) -> dict:
    variant = FORMATS[fmt].variants[kind]
    sample = {"list": [1], "int": 1, "str": "GPU", "any": None}
    ev = {"type": kind}
    for name in variant.required:
        ev[name] = sample[FORMATS[fmt].field_types[name][0]]
    return ev


def _decide(spec, fmt: str, ev: dict):
    good = {"type": "BlockStored", **{k: v for k, v in _valid(fmt, "BlockStored").items()
                                      if k != "type"}, "block_hashes": [1, 2]}
    records = [[0, [1.0, [good], 0]], [1, [2.0, [ev], 0]]]
    doc = {"runtime": fmt, "claim": [{"id": "claim:c", "block_hashes": [1, 2]}]}
    return check_records(msgspec.msgpack.encode(records), "drift", spec, manifest_from_dict(doc))


def _undecodable(rep) -> dict:
    (a,) = [a for a in rep.extra["stream"]["anomalies"] if a["kind"] == "undecodable"]
    assert rep.verdict != "conformant" and a["record"] == 2
    return a


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.sampled_from(["BlockStored", "BlockRemoved",
                                                          "AllBlocksCleared"]), NAMES)
def test_an_undeclared_field_is_named_and_never_conformant(spec, fmt, kind, name) -> None:
    variant = FORMATS[fmt].variants[kind]
    ev = {**_valid(fmt, kind), name: 1}
    if name in variant.fields or name == "type":
        decode_event(ev, FORMATS[fmt])  # declared: read
        return
    with pytest.raises(ValueError, match=repr(name)):
        decode_event(ev, FORMATS[fmt])
    assert repr(name) in _undecodable(_decide(spec, fmt, ev))["message"]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), NAMES)
def test_an_unknown_variant_is_named_and_never_conformant(spec, fmt, kind) -> None:
    if kind in FORMATS[fmt].variants:
        return
    assert repr(kind) in _undecodable(_decide(spec, fmt, {"type": kind}))["message"]


WRONG = {"list": st.one_of(st.integers(-999, 999), st.text(max_size=3)),
         "int": st.one_of(st.text(max_size=3), st.lists(st.integers(0, 9), max_size=2),
                          st.booleans()),
         "str": st.one_of(st.integers(-999, 999), st.lists(st.integers(0, 9), max_size=2))}


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.sampled_from(["BlockStored", "BlockRemoved"]),
       st.data())
def test_a_changed_shape_is_named_and_never_conformant(spec, fmt, kind, data) -> None:
    F = FORMATS[fmt]
    name = data.draw(st.sampled_from([f for f in F.variants[kind].fields
                                      if F.field_types[f][0] != "any"]))
    value = data.draw(WRONG[F.field_types[name][0]])
    ev = {**_valid(fmt, kind), name: value}
    assert repr(name) in _undecodable(_decide(spec, fmt, ev))["message"]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.sampled_from(["BlockStored", "BlockRemoved"]),
       st.data())
def test_a_missing_required_field_is_named(spec, fmt, kind, data) -> None:
    ev = _valid(fmt, kind)
    name = data.draw(st.sampled_from(sorted(FORMATS[fmt].variants[kind].required)))
    del ev[name]
    assert repr(name) in _undecodable(_decide(spec, fmt, ev))["message"]


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.text(min_size=1, max_size=8))
def test_an_unknown_medium_is_named(spec, fmt, medium) -> None:
    if medium in FORMATS[fmt].media:
        return
    ev = {**_valid(fmt, "BlockRemoved"), "medium": medium}
    assert repr(medium) in _undecodable(_decide(spec, fmt, ev))["message"]


def test_media_differ_per_format() -> None:
    """SGLang's host tier is CPU_PINNED, vLLM's CPU: each one's spelling is the other's drift."""
    with pytest.raises(ValueError, match="CPU_PINNED"):
        decode_event({"type": "BlockRemoved", "block_hashes": [1], "medium": "CPU_PINNED"},
                     FORMATS["vllm"])
    with pytest.raises(ValueError, match="'CPU'"):
        decode_event({"type": "BlockRemoved", "block_hashes": [1], "medium": "CPU"},
                     FORMATS["sglang"])


# ---- the manifest's closed keys ---------------------------------------------------------------
BASE = '''runtime = "vllm"
usable_blocks = 80

[[claim]]
id = "claim:a"
block_hashes = [1, 2]

[[claim]]
id = "claim:b"
block_hashes = [3]
'''


@settings(max_examples=40, deadline=None)
@given(NAMES, st.sampled_from(["top", "claim"]))
def test_an_unknown_manifest_key_is_located_at_it(tmp_path_factory, name, where) -> None:
    from kvclaims.trace import vllm_events

    known = vllm_events._TOP_KEYS if where == "top" else vllm_events._CLAIM_KEYS
    if name in known or name in ("id", "claim_id", "block_hashes"):
        return
    text = (f"{name} = 1\n" + BASE if where == "top"
            else BASE + f"{name} = 1\n")
    p = tmp_path_factory.mktemp("m") / "m.toml"
    p.write_text(text)
    with pytest.raises(InputError) as err:
        load_manifest(str(p))
    line = 1 if where == "top" else text.count("\n")
    assert (err.value.line, err.value.column) == (line, 1), err.value
    assert repr(name) in err.value.message


@pytest.mark.parametrize("edit,line,words", [
    ('runtime = "nosuch"', 1, "runtime 'nosuch'"),
    ("usable_blocks = \"80\"", 2, "usable_blocks must be int"),
    ('kv_cache_report_mode = "sometimes"\nusable_blocks = 80', 2, "kv_cache_report_mode"),
])
def test_top_level_values_are_checked_and_located(tmp_path, edit, line, words) -> None:
    first, second = BASE.split("\n", 2)[:2]
    text = BASE.replace(first, edit) if edit.startswith("runtime") else BASE.replace(
        second, edit)
    p = tmp_path / "m.toml"
    p.write_text(text)
    with pytest.raises(InputError) as err:
        load_manifest(str(p))
    assert err.value.line == line and words in err.value.message, err.value


@pytest.mark.parametrize("key,value,words", [
    ("group", '"0"', "group must be int"),
    ("dp_rank", "true", "dp_rank must be int"),
    ("medium", '"HBM"', "medium 'HBM'"),
    ("lora", "3", "lora must be str"),
    ("cache_salt", "[1]", "cache_salt must be str"),
])
def test_claim_scope_values_are_checked_and_located(tmp_path, key, value, words) -> None:
    p = tmp_path / "m.toml"
    p.write_text(BASE + f"{key} = {value}\n")
    with pytest.raises(InputError) as err:
        load_manifest(str(p))
    assert err.value.line == BASE.count("\n") + 1 and words in err.value.message, err.value


def test_scoping_keys_read() -> None:
    doc = {"claim": [{"id": "claim:a", "block_hashes": [1], "instance": 7, "dp_rank": 1,
                      "group": 2, "cache_salt": "s", "lora": "l", "medium": "CPU"}]}
    (c,) = manifest_from_dict(doc).claims
    assert (c.instance, c.dp_rank, c.group, c.cache_salt, c.lora, c.medium) == (
        "7", 1, 2, "s", "l", "CPU")


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(FORMATS)), st.sampled_from(["BlockStored", "BlockRemoved"]),
       st.one_of(st.text(max_size=4), st.lists(st.integers(0, 9), max_size=2), st.booleans(),
                 st.floats(allow_nan=False), st.dictionaries(st.text(max_size=2),
                                                              st.integers(0, 9), max_size=1)))
def test_a_block_hash_of_another_shape_is_named(spec, fmt, kind, h) -> None:
    """Never a traceback: a hash the join could not key is the stream finding naming it."""
    if isinstance(h, str):
        try:
            int(h.strip(), 16 if h.strip().lower().startswith("0x") else 10)
            return  # a numeral is a hash as text
        except ValueError:
            pass
    ev = {**_valid(fmt, kind), "block_hashes": [1, h]}
    assert "'block_hashes'" in _undecodable(_decide(spec, fmt, ev))["message"]
