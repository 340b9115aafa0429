"""Every runtime KV-event importer (kvclaims.trace.formats): Hypothesis round trips (write ->
read -> the same events), malformed input fuzzed (a located InputError naming the field, never
another exception), schema drift (every undeclared key of every declared object is an error
naming it; every declared ignored key is accepted), and the command line's exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import msgspec
import pytest
from format_streams import CLAIM_TIER, FORMATS, OTHER_TIER, encode, records, removed, stored
from hypothesis import given, settings
from hypothesis import strategies as st

from kvclaims import spec as spec_mod
from kvclaims.kvstream import check_records
from kvclaims.trace.formats import IMPORTERS
from kvclaims.trace.formats.base import CLEARED, STORED, declarations
from kvclaims.trace.model import InputError
from kvclaims.trace.vllm_events import KVEvent, manifest_from_dict

SPEC = spec_mod.load()
HASHES = st.integers(0, 2**64 - 1)


def _neutral(fmt: str):
    """Sequences of neutral batches a format can carry: stores and removes on its tiers
    (TensorRT-LLM: a remove only of a hash held on one level, as its radix tree has it), and
    clears where the format has them."""
    tiers = [CLAIM_TIER[fmt], OTHER_TIER[fmt]]

    @st.composite
    def build(draw) -> list[list[KVEvent]]:
        held: dict[int, str] = {}
        batches = []
        for _ in range(draw(st.integers(0, 6))):
            events = []
            for _ in range(draw(st.integers(1, 3))):
                kind = draw(st.sampled_from(["s", "r", "c"] if fmt in ("vllm", "dynamo")
                                            else ["s", "r"]))
                if kind == "c":
                    events.append(KVEvent(CLEARED, {}))
                    held.clear()
                    continue
                tier = draw(st.sampled_from(tiers))
                if kind == "s":
                    hs = draw(st.lists(HASHES.filter(lambda h: h not in held), min_size=1,
                                       max_size=3, unique=True))
                    held.update({h: tier for h in hs})
                    events.append(stored(hs, tier))
                else:
                    if not held:
                        continue
                    h = draw(st.sampled_from(sorted(held)))
                    events.append(removed([h], held.pop(h)))
            if events:
                batches.append(events)
        return batches

    return build()


def _flat(events) -> list[tuple[Any, ...]]:
    out = []
    for e in events:
        if e.type == CLEARED:
            out.append((e.type,))
        else:
            out += [(e.type, h, e.fields.get("medium") or "GPU") for h in e.fields["block_hashes"]]
    return out


def _read(fmt: str, data: bytes) -> list:
    imp = IMPORTERS[fmt]
    decode = imp.decoder()
    return [decode(f.payload, f.seq) for f in imp.frames(data, "rt")]


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip(fmt: str, data) -> None:
    batches = data.draw(_neutral(fmt))
    got = _read(fmt, encode(fmt, records(fmt, batches)))
    assert _flat(e for b in got for e in b.events) == _flat(e for b in batches for e in b)
    seqs = [b.seq for b in got]
    if fmt == "lmcache":  # numbered per location: each location's numbers are 0, 1, 2, ...
        by: dict[str, list[int]] = {}
        for b in got:
            by.setdefault(b.events[0].fields["medium"], []).append(b.seq)
        assert all(v == list(range(len(v))) for v in by.values())
    else:
        assert seqs == list(range(len(seqs)))
    if fmt in ("dynamo", "lmcache"):
        assert {b.instance for b in got} <= {"7", "inst-0"}


# ---- malformed input ----------------------------------------------------------------------------
def _valid(fmt: str) -> list[Any]:
    t, o = CLAIM_TIER[fmt], OTHER_TIER[fmt]
    return records(fmt, [[stored([1, 2], t)], [stored([3], o)], [removed([2], t)]])


def _decide(fmt: str, data: bytes):
    m = manifest_from_dict({"claim": [{"id": "c", "block_hashes": [1, 2],
                                       "medium": CLAIM_TIER[fmt]}]})
    return check_records(data, "bad", SPEC, m, input_format=fmt)


def _objects(value: Any, path: tuple = ()) -> list[tuple[tuple, dict]]:
    """Every JSON object inside a value, with its path."""
    out = []
    if isinstance(value, dict):
        out.append((path, value))
        for k, v in value.items():
            out += _objects(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _objects(v, path + (i,))
    return out


JSON_FORMATS = ("dynamo", "trtllm", "lmcache")


@pytest.mark.parametrize("fmt", JSON_FORMATS)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_malformed_json_lines_are_located_errors(fmt: str, data) -> None:
    recs = [json.loads(r) for r in _valid(fmt)]
    line = data.draw(st.integers(0, len(recs) - 1))
    rec = recs[line]
    objs = _objects(rec)
    path, obj = data.draw(st.sampled_from(objs))
    how = data.draw(st.sampled_from(["unknown key", "drop key", "wrong type", "cut", "garbage"]))
    ignored, loose = _ignored(fmt, obj, path), _ignored_or_optional(fmt, obj, path)
    key = None
    if how == "unknown key":
        key = data.draw(st.from_regex(r"\Azz_[a-z]{1,8}\Z"))
        obj[key] = 1
        text = json.dumps(rec)
    elif how == "drop key":
        key = data.draw(st.sampled_from(sorted(obj)))
        del obj[key]
        text = json.dumps(rec)
        if key in loose:
            return  # an optional or ignored key may be absent
    elif how == "wrong type":
        key = data.draw(st.sampled_from(sorted(obj)))
        obj[key] = {"not": "this"} if not isinstance(obj[key], dict) else "not this"
        text = json.dumps(rec)
        if key in ignored:
            return  # carried and ignored: its value is not read
    elif how == "cut":
        full = json.dumps(rec)
        text = full[:data.draw(st.integers(1, len(full) - 1))]
    else:
        text = data.draw(st.text(min_size=1).filter(lambda s: "\n" not in s and "\r" not in s
                                                    and not s.strip().startswith("#")
                                                    and s.strip() != ""))
        try:
            json.loads(text)
            return  # random text that is JSON is covered by the other mutations
        except ValueError:
            pass
    lines = [json.dumps(r) for r in recs]
    lines[line] = text
    body = ("\n".join(lines) + "\n").encode()
    with pytest.raises(InputError) as err:
        _decide(fmt, body)
    e = err.value
    assert e.line == line + 1 and e.column >= 1, (how, e)
    if how in ("unknown key", "drop key") and key is not None:
        assert repr(key) in e.message, (how, e.message)


def _decl_kind(fmt: str, obj: dict, path: tuple) -> str | None:
    """The spec/formats.toml object kind of an object at `path` of a record."""
    if fmt == "dynamo":
        names = {(): "router_event", ("event",): "event"}
        if path in names:
            return names[path]
        if len(path) == 4 and path[2] in ("stored", "removed"):
            return path[2]
        if len(path) >= 5 and path[3] == "blocks":
            return "block"
        return path[-1] if path and isinstance(path[-1], str) else None
    if fmt == "trtllm":
        if path == ():
            return "event"
        t = obj.get("type")
        return t if isinstance(t, str) else None
    if path == ():
        return obj.get("type")
    return "KVOpEvent"


def _keys_of(fmt: str, obj: dict, path: tuple, which: str) -> set[str]:
    kind = _decl_kind(fmt, obj, path)
    d = declarations()[fmt].objects.get(kind or "")
    return set(getattr(d, which)) if d else set()


def _ignored(fmt: str, obj: dict, path: tuple) -> set[str]:
    return _keys_of(fmt, obj, path, "ignored")


def _ignored_or_optional(fmt: str, obj: dict, path: tuple) -> set[str]:
    return _ignored(fmt, obj, path) | _keys_of(fmt, obj, path, "optional")


@pytest.mark.parametrize("fmt", FORMATS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_byte_damage_is_a_report_or_a_located_error(fmt: str, data) -> None:
    """Bytes flipped, cut or inserted anywhere: a report, or an InputError with a line and a
    column; never any other exception."""
    body = bytearray(encode(fmt, _valid(fmt)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(body) - 1))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            body[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del body[i:]
            if not body:
                body = bytearray(b"x")
        else:
            body[i:i] = data.draw(st.binary(min_size=1, max_size=4))
    try:
        report = _decide(fmt, bytes(body))
    except InputError as e:
        assert e.line >= 1 and e.column >= 1
    else:
        assert report.verdict in ("conformant", "violation", "inconclusive")


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_every_undeclared_key_of_every_object_is_named(fmt: str) -> None:
    recs = [json.loads(r) for r in _valid(fmt)]
    seen = 0
    for n, rec in enumerate(recs):
        for path, obj in _objects(rec):
            if _decl_kind(fmt, obj, path) is None:
                continue
            obj["drifted_field"] = 0
            body = "\n".join(json.dumps(r) for r in recs).encode()
            with pytest.raises(InputError) as err:
                _decide(fmt, body)
            assert err.value.line == n + 1 and "'drifted_field'" in err.value.message
            assert err.value.column > 1
            del obj["drifted_field"]
            seen += 1
    assert seen >= 3


@pytest.mark.parametrize("fmt", JSON_FORMATS)
def test_unknown_event_variants_are_named(fmt: str) -> None:
    rec = json.loads(_valid(fmt)[0])
    if fmt == "dynamo":
        rec["event"]["data"] = {"placed": {}}
    elif fmt == "trtllm":
        rec["data"]["type"] = "moved"
    else:
        rec["type"] = "KVMoveMsg"
    with pytest.raises(InputError) as err:
        _decide(fmt, json.dumps(rec).encode() + b"\n")
    assert any(name in err.value.message for name in ("placed", "moved", "KVMoveMsg"))


def test_declared_ignored_keys_are_carried_and_ignored() -> None:
    """Dynamo's tokens_hash and residency_domain, TensorRT-LLM's priority and token_extra_id
    are on every sample line, and the samples read (test_formats_acceptance)."""
    d = declarations()
    assert "tokens_hash" in d["dynamo"].objects["block"].ignored
    assert "priority" in d["trtllm"].objects["stored_block"].ignored
    assert "priority" in d["trtllm"].objects["updated"].ignored
    assert "tokens" in d["lmcache"].objects["PinWorkerMsg"].ignored
    pin = {"type": "PinWorkerMsg", "worker_event_id": "e1", "location": "LocalCPUBackend",
           "tokens": [1, 2]}
    body = b"\n".join([json.dumps(pin).encode()] + _valid("lmcache")) + b"\n"
    assert _decide("lmcache", body).verdict == "violation"


@pytest.mark.parametrize("fmt", FORMATS)
def test_command_line_exit_2_located(fmt: str, tmp_path) -> None:
    bad = tmp_path / f"bad.{fmt}"
    if fmt == "vllm":
        bad.write_bytes(msgspec.msgpack.encode([[0, "not a batch"], "junk"]))
    else:
        recs = [json.loads(r) for r in _valid(fmt)]
        recs[1]["zz_new"] = 1
        bad.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    claims = tmp_path / "m.toml"
    claims.write_text('[[claim]]\nid = "c"\nblock_hashes = [1, 2]\n')
    r = subprocess.run([sys.executable, "-m", "kvclaims.cli", "check", str(bad), "--claims",
                        str(claims), "--input-format", fmt], capture_output=True, text=True)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert f"{bad}:2:" in r.stdout + r.stderr
    assert STORED  # the neutral names come from vllm_events (kvclaims.trace.formats.base)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_vllm_importer_reads_both_event_layouts_alike(data) -> None:
    """vLLM's events as tagged maps (since PR #42892) and as the older all-array layout
    (fields in wire order, spec/streams.toml) read to the same events."""
    from kvclaims.trace.vllm_events import stream_format

    wire = {name: v.fields for name, v in stream_format("vllm").variants.items()}
    batches = data.draw(_neutral("vllm"))
    maps = records("vllm", batches)
    arrays = [[seq, [ts, [[e["type"], *[e.get(k) for k in wire[e["type"]]]]
                          for e in events], rank]] for seq, (ts, events, rank) in maps]
    a, b = _read("vllm", encode("vllm", maps)), _read("vllm", encode("vllm", arrays))
    assert [(x.seq, _flat(x.events)) for x in a] == [(x.seq, _flat(x.events)) for x in b]
    assert _flat(e for x in a for e in x.events) == _flat(e for bt in batches for e in bt)
