"""Event and input-error data shared by every importer and writer (MODEL.md §5).

An :class:`Event` is one line of any trace format after import: the reference telemetry event
name (`kind`), all its fields under their telemetry names (unknown ones kept), and where it came
from. Importers yield events; the deciding core never sees a file.
"""

from __future__ import annotations

from typing import Any

import msgspec


class Event(msgspec.Struct, frozen=True, gc=False):
    kind: str
    fields: dict[str, Any]
    line: int = 0
    column: int = 1
    # The source line as read (bytes for JSON Lines, str for .kvt), for quoting in findings.
    text: bytes | str | None = None

    def get(self, name: str, default: Any = None) -> Any:
        return self.fields.get(name, default)


class InputError(Exception):
    """Bad input: carries file:line:column and a message; never a traceback for the user."""

    def __init__(self, file: str, line: int, column: int, message: str, *, unknown: bool = False):
        super().__init__(f"{file}:{line}:{column}: {message}")
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        # `unknown`: the input is well-formed but of a kind kvclaims does not know (exit 3).
        self.unknown = unknown
