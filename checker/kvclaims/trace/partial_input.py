"""Read any trace format as a :class:`PartialTrace` (issue 4; docs/kvt.md "Partial order").

Adapts the importers to the partial-order view the deciding code consumes: detects the format as
`kvclaims.run.open_events` does, reads every event, and joins the trace's own skew declarations
(.kvt `skew` lines) with the caller's (`--skew A:B:NS`, parsed by :func:`parse_skew_option`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import BinaryIO, cast

from kvclaims.spec import Spec
from kvclaims.trace.compressed import decompressed
from kvclaims.trace.detect import FORMATS, format_of, skip_bom
from kvclaims.trace.jsonl import DEFAULT_MAX_LINE_BYTES, read_partial_jsonl
from kvclaims.trace.model import InputError, PartialTrace, Skew

HEAD_BYTES = 4096  # as kvclaims.run.open_events: the format is decided from this much
SKEW_OPTION = "A:B:NS"


def parse_skew_option(text: str) -> Skew:
    """`A:B:NS` (two different sources, a non-negative integer of nanoseconds) as a Skew
    located at line 0, column 0 (outside any trace). Raises ValueError saying what is wrong."""
    from kvclaims.trace.kvt_syntax import terminal_regex  # Lark: only once a skew is given

    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"skew {text!r}: expected {SKEW_OPTION} (source A, source B, "
                         f"nanoseconds; sources without ':'), e.g. scheduler:kv_events:2000000")
    a, b, delta = (part.strip() for part in parts)
    bare = terminal_regex("BARE").fullmatch
    for source in (a, b):
        if not bare(source):
            raise ValueError(f"skew {text!r}: source {source!r} is not a word (letters, digits "
                             f"and _./+- only)")
    if not (delta.isascii() and delta.isdigit()):
        raise ValueError(f"skew {text!r}: {delta!r} is not a non-negative integer of nanoseconds")
    if a == b:
        raise ValueError(f"skew {text!r}: a skew relates two different sources")
    return Skew(a, b, int(delta))


def read_partial(path_or_fh: str | os.PathLike[str] | BinaryIO, file: str | None, spec: Spec,
                 input_format: str | None = None, skews: Iterable[Skew] = (), *,
                 max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> PartialTrace:
    """Read a whole trace (a path or a binary file) as a PartialTrace. `input_format` is one of
    kvclaims.trace.detect.FORMATS, or None to detect it from the first bytes. `skews` are added
    to the trace's own declarations; one pair declared in both is an InputError, one pair given
    twice in `skews` a ValueError (a usage error, found before reading)."""
    extra = tuple(skews)
    if len({s.sources for s in extra}) != len(extra):
        raise ValueError("a pair of sources is given two skews")
    if isinstance(path_or_fh, (str, os.PathLike)):
        with open(path_or_fh, "rb") as opened:
            return read_partial(opened, file or os.fspath(path_or_fh), spec, input_format, extra,
                                max_line_bytes=max_line_bytes)
    fh = path_or_fh
    file = file or "<trace>"
    if not hasattr(fh, "peek"):  # a PartialTrace holds the whole trace anyway
        fh = cast(BinaryIO, io.BufferedReader(io.BytesIO(fh.read())))  # type: ignore[arg-type]
    fh = decompressed(fh, file)
    skip_bom(fh, file)
    head = fh.peek(HEAD_BYTES)[:HEAD_BYTES]  # type: ignore[attr-defined]
    fmt = format_of(head, file, input_format)
    if fmt == "jsonl":
        trace = read_partial_jsonl(fh, file, spec, max_line_bytes=max_line_bytes)
    elif fmt == "kvt":
        from kvclaims.trace.dsl import read_partial_kvt  # Lark: only needed for .kvt

        trace = read_partial_kvt(fh, file, spec=spec, max_line_bytes=max_line_bytes)
    else:
        raise InputError(file, 1, 1, f"unknown input format {fmt!r}; expected one of: "
                         f"{', '.join(FORMATS)}")
    declared = {s.sources: s for s in trace.skews}
    for skew in extra:
        if skew.sources in declared:
            own = declared[skew.sources]
            raise InputError(file, own.line, own.column,
                             f"skew between {skew.source_a} and {skew.source_b} is declared "
                             f"both here and by the caller")
    return PartialTrace(trace.events, trace.skews + extra)
