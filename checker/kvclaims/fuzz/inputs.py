"""The input contract, as one function fuzzers call (ARCHITECTURE.md: bad input never a traceback).

Any byte string given to a reader yields events or raises an InputError carrying a location
(line >= 1, column >= 1); the replay checker never raises on what a reader yields; the whole
pipeline (kvclaims.run.check_stream, what `kvclaims check` runs) returns a report, with a located
error when the input was bad. :func:`check_input` decides all three for one input.
"""

from __future__ import annotations

import io
import traceback

from kvclaims import spec as spec_mod
from kvclaims.check.replay import ClaimLimit, check_events
from kvclaims.check.verdict import INPUT_ERROR
from kvclaims.trace.model import Event, InputError

EVENTS = "events"  # read to the end
INPUT_ERROR_OUTCOME = "input_error"  # a located InputError
UNKNOWN_INPUT = "unknown_input"  # well-formed but of a kind kvclaims does not know (exit 3)


def _read(data: bytes, fmt: str) -> list[Event]:
    spec = spec_mod.load()
    if fmt == "jsonl":
        from kvclaims.trace.jsonl import read_jsonl

        return list(read_jsonl(io.BytesIO(data), "fuzz.jsonl", spec))
    from kvclaims.trace.dsl import read_kvt

    return list(read_kvt(io.BytesIO(data), "fuzz.kvt", spec=spec))


def check_input(data: bytes, fmt: str) -> str:
    """Feed `data` (format ``kvt`` or ``jsonl``) to the reader, the checker and the pipeline.
    Returns the outcome; raises AssertionError, with the traceback, if the contract is broken."""
    from kvclaims.run import Options, check_stream

    spec = spec_mod.load()
    try:
        events = _read(data, fmt)
        outcome = EVENTS
    except InputError as err:
        assert err.line >= 1 and err.column >= 1, f"InputError without a location: {err}"
        events = []
        outcome = UNKNOWN_INPUT if err.unknown else INPUT_ERROR_OUTCOME
    except Exception:  # noqa: BLE001 -- any other exception breaks the contract
        raise AssertionError(f"reader raised on {data[:200]!r}:\n{traceback.format_exc()}"
                             ) from None
    try:
        check_events(spec, events, f"fuzz.{fmt}")
    except ClaimLimit:
        pass  # the claim limit is an input error the pipeline reports with its location
    except Exception:  # noqa: BLE001 -- any other exception breaks the contract
        raise AssertionError(f"checker raised on {data[:200]!r}:\n{traceback.format_exc()}"
                             ) from None
    try:
        report = check_stream(io.BufferedReader(io.BytesIO(data)), f"fuzz.{fmt}", spec,
                              Options(input_format=fmt))
    except Exception:  # noqa: BLE001 -- any other exception breaks the contract
        raise AssertionError(f"pipeline raised on {data[:200]!r}:\n{traceback.format_exc()}"
                             ) from None
    if report.verdict == INPUT_ERROR:
        assert report.error is not None and report.error.line >= 1 and report.error.column >= 1, \
            f"input error without a location: {report.error}"
    return outcome
