"""Descriptors and the lowering tables load and validate (spec/descriptor.schema.json)."""

from __future__ import annotations

import copy
import json
import tomllib

import pytest

from kvclaims.lower import kvhints, primitives
from kvclaims.lower.descriptor import (
    DescriptorError,
    descriptors_dir,
    load_descriptors,
    load_schema,
    load_tables,
    parse_descriptor,
    validate,
)

EXPECTED = {"vllm", "vllm-kvhints", "tensorrt-llm", "sglang", "dynamo", "lmcache", "microruntime",
            "kv-rm"}


def _raw(name: str) -> dict:
    with open(descriptors_dir() / name, "rb") as fh:
        return tomllib.load(fh)


def test_every_runtime_has_a_descriptor():
    assert {d.runtime for d in load_descriptors()} == EXPECTED


def test_descriptors_validate_against_the_schema():
    schema = load_schema()
    for f in sorted(descriptors_dir().glob("*.toml")):
        with open(f, "rb") as fh:
            assert validate(tomllib.load(fh), schema) == [], f


def test_schema_agrees_with_jsonschema():
    # jsonschema is in the test extra: the hand validator and the reference one must agree.
    import jsonschema

    schema = load_schema()
    for f in sorted(descriptors_dir().glob("*.toml")):
        with open(f, "rb") as fh:
            jsonschema.validate(tomllib.load(fh), schema)


def test_schema_primitives_are_the_modelled_ones():
    from kvclaims.lower import kvrm_proof

    # the KV-RM arbiter is its own Z3 system (kvclaims.lower.kvrm_proof), not a pool primitive
    assert set(load_schema()["$defs"]["primitive"]["enum"]) == \
        set(primitives.PRIMITIVES) | {kvrm_proof.NAME} | set(kvhints.primitive_names())


def test_schema_modes_are_the_spec_modes(spec):
    assert set(load_schema()["$defs"]["mode"]["enum"]) == set(spec.modes)


def test_every_bundle_obligation_has_allowed_depths(spec):
    tables = load_tables()
    for mode in spec.modes:
        for o in tables.bundle(spec, mode):
            assert tables.allowed[o], o


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.pop("version"), "missing required field 'version'"),
    (lambda d: d["mapping"][0].update(primitives=["pinned_forever"]), "pinned_forever"),
    (lambda d: d["evidence"][0].update(depth="deep"), "'deep' is not one of"),
    (lambda d: d["evidence"][0]["anchors"].append({"kind": "source", "ref": "no-anchor"}),
     "allowed shapes"),
    (lambda d: d["evidence"][0].update(supports=["R-nonsense"]), "unknown obligation"),
    (lambda d: d["evidence"].append(copy.deepcopy(d["evidence"][0])), "used twice"),
    (lambda d: d.update(colour="blue"), "unknown field 'colour'"),
])
def test_bad_descriptors_are_refused_with_where(mutate, message):
    d = _raw("vllm-0.33.0.toml")
    mutate(d)
    with pytest.raises(DescriptorError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_descriptor(d, "vllm-0.33.0.toml")


def test_schema_is_json():
    json.dumps(load_schema())
