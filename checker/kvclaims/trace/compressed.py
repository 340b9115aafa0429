"""gzip-compressed input, read wherever the plain file is (docs/cli.md, `check`; README "Inputs").

Adapts the bytes of an input before any format is detected: a stream that starts with gzip's
magic bytes (1f 8b) is decompressed as it is read, whatever its name (`.kvt.gz`, `.jsonl.gz`,
`.kvbatches.gz`, or standard input); anything else is passed through untouched. It decides
nothing about events. A truncated or corrupt compressed stream is an InputError located at the
line and column of the decompressed text where the readable data stops (fail-closed: the part
read before it is all the checker ever sees).
"""

from __future__ import annotations

import io
import zlib
from typing import BinaryIO, cast

from kvclaims.trace.model import InputError

GZIP_MAGIC = b"\x1f\x8b"


def is_gzip(head: bytes) -> bool:
    return head[:2] == GZIP_MAGIC


def head(peeked: bytes, n: int) -> bytes:
    """The first `n` bytes of the input that starts with `peeked`, decompressed when it is gzip,
    without consuming anything (for detecting the format of standard input before reading it);
    b"" when the compressed head is unreadable (the reading itself then reports where)."""
    if not is_gzip(peeked):
        return peeked[:n]
    try:
        return zlib.decompressobj(wbits=31).decompress(peeked, n)
    except zlib.error:
        return b""


CHUNK = 1 << 16  # compressed bytes read, and decompressed bytes made, at a time
SMALL = 256  # compressed bytes fed at a time when looking for where corrupt data starts


class _Gunzip(io.RawIOBase):
    """A gzip stream's decompressed bytes (every member, in order), counting lines and columns
    of what it has handed out so a bad stream is located where its readable data stops. All
    readable data is handed out before the error is raised."""

    def __init__(self, fh: BinaryIO, file: str):
        self._fh = fh
        self._file = file
        self._d = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._failed: str | None = None  # zlib's complaint, raised once the data before it is out
        self._line = 1
        self._column = 1

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            if self._failed is not None:
                raise self._error(f"corrupt gzip stream: {self._failed}")
            self._pending = self._more()
        data = self._pending[:len(buffer)]
        self._pending = self._pending[len(data):]
        n = len(data)
        buffer[:n] = data
        newlines = data.count(b"\n")
        if newlines:
            self._line += newlines
            self._column = n - data.rfind(b"\n")
        else:
            self._column += n
        return n

    def _more(self) -> bytes:
        """The next decompressed bytes; b"" at the end of the last member."""
        d = self._d
        while True:
            if d.unconsumed_tail:
                out = self._decompress(d.unconsumed_tail)
            elif d.eof:
                rest = d.unused_data or self._fh.read(CHUNK)
                if not rest:
                    return b""
                if len(rest) < 2:
                    rest += self._fh.read(1)
                if not is_gzip(rest):
                    raise self._error("corrupt gzip stream: bytes after its end that do not "
                                      "start another gzip member")
                self._d = d = zlib.decompressobj(wbits=31)
                out = self._decompress(rest)
            else:
                chunk = self._fh.read(CHUNK)
                if not chunk:
                    raise self._error("truncated gzip stream: the compressed data ends before "
                                      "its end marker")
                out = self._decompress(chunk)
            if out:
                return out

    def _decompress(self, data: bytes) -> bytes:
        """`data` decompressed; on corrupt data, the output before the corruption (fed again in
        small pieces to find it), the complaint kept for the next read."""
        saved = self._d.copy()
        try:
            return self._d.decompress(data, CHUNK)
        except zlib.error as err:
            self._failed = str(err)
        out = []
        try:
            for at in range(0, len(data), SMALL):
                out.append(saved.decompress(data[at:at + SMALL]))
        except zlib.error:
            pass
        self._d = zlib.decompressobj(wbits=31)  # never used: the next read raises
        return b"".join(out) or self._raise_failed()

    def _raise_failed(self) -> bytes:
        raise self._error(f"corrupt gzip stream: {self._failed}")

    def _error(self, message: str) -> InputError:
        return InputError(self._file, self._line, self._column, message)


def decompressed(fh: BinaryIO, file: str) -> BinaryIO:
    """`fh` itself, or its decompressed bytes when it starts with gzip's magic bytes. The result
    is buffered (it has `peek`), as the format detection needs."""
    peek = getattr(fh, "peek", None)
    if peek is None:
        fh = cast(BinaryIO, io.BufferedReader(io.BytesIO(fh.read())))  # type: ignore[arg-type]
        peek = fh.peek  # type: ignore[attr-defined]
    if not is_gzip(peek(2)[:2]):
        return fh
    return cast(BinaryIO, io.BufferedReader(_Gunzip(fh, file)))
