"""The configuration file: decision options kept beside a project (docs/cli.md "Configuration").

Adapts a `kvclaims.toml` (its top level) or the `[tool.kvclaims]` table of a `pyproject.toml`,
the first found searching upward from the current directory (in each directory `kvclaims.toml`
first; a `pyproject.toml` without the table is passed over), to the values of the decision
options' flags. Keys are the flags' long names without `--` (`ignore = ["no-silent-loss"]`,
`engine = "z3"`, `max-defer-steps = 4`); a flag given on the command line wins over its key. An
unknown key, a value of the wrong type or a file that is not TOML is a located error
(file:line:column). It decides nothing about a trace.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OWN_FILE = "kvclaims.toml"
PYPROJECT = "pyproject.toml"
TABLE = ("tool", "kvclaims")


class ConfigError(Exception):
    """A configuration file's mistake, located: `file:line:column: message`."""


@dataclass(frozen=True)
class Config:
    path: Path
    values: dict[str, Any]
    text: str

    @property
    def label(self) -> str:
        """The file as the reports name it: relative to the current directory when inside it."""
        try:
            return os.path.relpath(self.path) if self.path.is_relative_to(Path.cwd()) \
                else str(self.path)
        except ValueError:
            return str(self.path)

    def where(self, key: str) -> tuple[int, int]:
        """(line, column) of `key`'s assignment (1, 1 when not found: e.g. a dotted key)."""
        in_table = self.path.name == OWN_FILE
        pattern = re.compile(r"^\s*(\"?)" + re.escape(key) + r"\1\s*=")
        for n, line in enumerate(self.text.splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("["):
                in_table = self.path.name == OWN_FILE or stripped.replace(" ", "") == \
                    "[" + ".".join(TABLE) + "]"
                continue
            if in_table and pattern.match(line):
                return n, line.index(key[0]) + 1
        return 1, 1

    def error(self, key: str, message: str) -> ConfigError:
        line, column = self.where(key)
        return ConfigError(f"{self.label}:{line}:{column}: {message}")


def find(start: Path | None = None) -> Config | None:
    """The configuration that applies in `start` (default: the current directory), or None."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        own = folder / OWN_FILE
        if own.is_file():
            return _load(own, table=False)
        project = folder / PYPROJECT
        if project.is_file():
            found = _load(project, table=True)
            if found is not None:
                return found
    return None


def _load(path: Path, *, table: bool) -> Config | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}:1:1: cannot read: {err}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        line, column = getattr(err, "lineno", 1), getattr(err, "colno", 1)
        raise ConfigError(f"{path}:{line}:{column}: not TOML: {err}") from None
    if table:
        for key in TABLE:
            doc = doc.get(key) if isinstance(doc, dict) else None
            if doc is None:
                return None
        if not isinstance(doc, dict):
            raise ConfigError(f"{path}:1:1: [{'.'.join(TABLE)}] is not a table")
    return Config(path, doc, text)


def check_keys(config: Config, known: list[str]) -> None:
    """An unknown key is a located error naming the known ones."""
    for key in config.values:
        if key not in known:
            raise config.error(key, f"unknown key {key!r}; the known keys are "
                                    f"{', '.join(sorted(known))}")
