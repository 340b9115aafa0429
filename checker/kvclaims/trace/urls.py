"""Traces named by URL (`file://`, `s3://`, `memory://`, chained `simplecache::s3://`...), read
through fsspec where it is installed (docs/fleet.md "Inputs"; the `ray` and `urls` extras).

Decides only what a URL names: whether an argument is a URL (a scheme, or an fsspec chain, and
no local file of that name), the bytes behind it (opened for reading, buffered as the format
detection needs), and, for a directory, the files under it. Every failure is a :class:`UrlError`
whose message says what could not be read and why (fsspec not installed, a protocol it does not
know or whose package is missing, no such file), for the caller to report as an input error of
that file, located at the URL.
"""

from __future__ import annotations

import io
import os
import re
from typing import Any, BinaryIO, cast

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*(://|::)")
MISSING_FSSPEC = "reading a URL needs fsspec, which is not installed: pip install 'kvclaims[urls]'"


class UrlError(Exception):
    """A URL that cannot be read; the message says why."""


def is_url(path: str) -> bool:
    """Whether `path` names a URL rather than a local file (a local file of that name wins)."""
    return bool(_URL.match(path)) and not os.path.exists(path)


def _fs(url: str) -> tuple[Any, str]:
    try:
        from fsspec.core import url_to_fs
    except ModuleNotFoundError:
        raise UrlError(MISSING_FSSPEC) from None
    try:
        return url_to_fs(url)
    except ImportError as err:  # a protocol whose package is missing (s3fs, gcsfs, ...)
        raise UrlError(f"{err} (fsspec cannot open this protocol here)") from None
    except ValueError as err:  # an unknown protocol, a malformed URL
        raise UrlError(str(err)) from None


def open_url(url: str) -> BinaryIO:
    """The file behind `url`, open for reading (the caller closes it)."""
    fs, path = _fs(url)
    try:
        fh = fs.open(path, "rb")
    except FileNotFoundError:
        raise UrlError("no such file") from None
    except IsADirectoryError:
        raise UrlError("a directory, not a file") from None
    except OSError as err:
        raise UrlError(err.strerror or str(err)) from None
    except Exception as err:  # noqa: BLE001 - any backend's failure to open is this file's
        raise UrlError(f"{type(err).__name__}: {err}") from None
    if getattr(fh, "peek", None) is None and hasattr(fh, "readinto"):
        try:
            return cast(BinaryIO, io.BufferedReader(fh))
        except (TypeError, ValueError, AttributeError):
            pass
    return cast(BinaryIO, fh)


def walk_url(url: str, is_trace_name: Any) -> list[str] | None:
    """The trace files under the directory `url`, as URLs spelled as `url` is (its scheme and
    chain kept), sorted by their path components; None when `url` is not a directory."""
    fs, root = _fs(url)
    try:
        if not fs.isdir(root):
            return None
        found = fs.find(root)
    except Exception as err:  # noqa: BLE001 - a listing that fails is said for this argument
        raise UrlError(f"cannot list: {type(err).__name__}: {err}") from None
    base = root.rstrip("/")
    rel = sorted(tuple(p[len(base):].lstrip("/").split("/")) for p in found
                 if p.startswith(base) and is_trace_name(p.rsplit("/", 1)[-1]))
    return [url.rstrip("/") + "/" + "/".join(parts) for parts in rel]
