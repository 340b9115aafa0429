"""FILES and DIRS on the command line as the ordered list of traces to check (docs/fleet.md).

A named file is checked whatever its name (format detection reads its content). A directory is
walked recursively, its entries in sorted order, and contributes the files whose name ends in a
known trace suffix (`.kvt`, `.jsonl`, `.kvbatches`, each also gzip-compressed as `.gz`); other
files (summaries, Markdown, manifests) are left out. The order is deterministic: the arguments
in the order given, each directory's files sorted by path. A file named twice is checked twice.
A URL (fsspec, kvclaims.trace.urls) naming a directory is walked the same way; any other URL is
one file, and one that cannot be read is that file's input error.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from kvclaims.trace import urls

# Trace suffixes a directory walk picks up; the `.gz` form of each is read by the reading layer.
TRACE_SUFFIXES = (".kvt", ".jsonl", ".kvbatches")
KNOWN_SUFFIXES = TRACE_SUFFIXES + tuple(s + ".gz" for s in TRACE_SUFFIXES)


class NoTraces(ValueError):
    """A directory named on the command line holds no trace file (a usage error)."""


def is_trace_name(name: str) -> bool:
    return name.endswith(KNOWN_SUFFIXES)


def walk(directory: str) -> list[str]:
    """The trace files under `directory`, recursively, sorted by their path components."""
    found: list[tuple[tuple[str, ...], str]] = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        rel = os.path.relpath(root, directory)
        parts = () if rel == os.curdir else tuple(rel.split(os.sep))
        for name in files:
            if is_trace_name(name):
                found.append(((*parts, name), os.path.join(root, name)))
    found.sort()
    return [path for _, path in found]


def expand(arguments: Iterable[str]) -> tuple[list[str], bool]:
    """The files to check, in order, and whether a directory was named (a fleet check: the
    closing summary is printed). Raises NoTraces for a directory without a trace file."""
    out: list[str] = []
    directories = False
    for arg in arguments:
        if urls.is_url(arg):
            try:
                files = urls.walk_url(arg, is_trace_name)
            except urls.UrlError:
                files = None  # not listable here: decided as one file, whose report says why
            if files is not None:
                directories = True
                if not files:
                    raise NoTraces(f"{arg}: no trace files (suffixes "
                                   f"{', '.join(KNOWN_SUFFIXES)}) in this directory or below")
                out.extend(files)
                continue
        if arg != "-" and os.path.isdir(arg):
            directories = True
            files = walk(arg)
            if not files:
                raise NoTraces(f"{arg}: no trace files (suffixes {', '.join(KNOWN_SUFFIXES)}) "
                               "in this directory or below")
            out.extend(files)
        else:
            out.append(arg)
    return out, directories
