"""Parser robustness (issue 7): generated malformed .kvt and JSON Lines never crash the checker;
every input reads as events or as an InputError with a location, and the pipeline behind
`kvclaims check` always returns a report. Well-formed generated traces never make it raise.
CI runs a few hundred inputs; bench/fuzz.md records 100,000 (bench/fuzz_bench.py parsers)."""

from __future__ import annotations


from fuzz_budget import hsettings
from hypothesis import given

from kvclaims.fuzz import strategies as kst
from kvclaims.fuzz.inputs import EVENTS, check_input


def _check(data: bytes, fmt: str) -> str:
    return check_input(data, fmt)


@hsettings(300, 50_000)
@given(data=kst.malformed_kvt())
def test_malformed_kvt_never_crashes(data: bytes) -> None:
    _check(data, "kvt")


@hsettings(300, 50_000)
@given(data=kst.malformed_jsonl())
def test_malformed_jsonl_never_crashes(data: bytes) -> None:
    _check(data, "jsonl")


@hsettings(100, 5000)
@given(data=kst.well_formed_kvt())
def test_well_formed_kvt_reads_to_the_end(data: bytes) -> None:
    assert check_input(data, "kvt") == EVENTS


@hsettings(100, 5000)
@given(data=kst.well_formed_jsonl())
def test_well_formed_jsonl_reads_to_the_end(data: bytes) -> None:
    assert check_input(data, "jsonl") == EVENTS


def test_jsonl_invalid_utf8_in_a_string_is_located() -> None:
    assert check_input(b'{"event":"resident_claim_accepted","claim_id":"c\xff"}\n', "jsonl") \
        == "input_error"
