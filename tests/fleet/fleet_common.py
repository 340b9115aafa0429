"""What the fleet tests share: the repository's traces and the corpus as file lists, and a
report rendered exactly as `kvclaims check` renders it (text and JSON)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from kvclaims.fleet.inputs import expand
from kvclaims.report import json as json_report
from kvclaims.report import text
from kvclaims.run import Options

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "traces"
CLAIMS = TRACES / "vllm" / "0.34.0" / "claims.toml"
# The manifest joins the recorded KV event stream(s); the other traces ignore it.
OPTIONS = Options(claims=str(CLAIMS))


def trace_files() -> list[str]:
    return expand([str(TRACES)])[0]


def rendered(report, spec) -> tuple[str, str]:
    """(text, JSON) as `kvclaims check` writes them off a terminal."""
    buf = io.StringIO()
    console = Console(file=buf, highlight=False, soft_wrap=True, width=120,
                      force_terminal=False)
    text.render(report, spec, console)
    return buf.getvalue(), json_report.render(report)
