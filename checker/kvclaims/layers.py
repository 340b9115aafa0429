"""The declared layering of the kvclaims package: its parts, their layers, and what each may import.

A *part* is a subpackage (trace/, check/, ...) or a top-level module (run.py, cli.py, ...) of
kvclaims. The pipeline reads a trace into events, orders and decides them by the model's rules
(docs/model.md §5-§6), returns a report as data, and renders it last; lowering, commands,
producers and the command line sit above it. docs/architecture.md draws this table;
tests/test_layers.py measures the import statements of every file (those inside functions and
`if TYPE_CHECKING:` blocks included) and fails on an import the table does not allow, or on an
import cycle between parts or between the files of a part.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """One part of the package: its layer and the parts it may import."""

    name: str
    layer: str
    may_import: frozenset[str]
    does: str


def _part(name: str, layer: str, may_import: str, does: str) -> Part:
    return Part(name, layer, frozenset(may_import.split()), does)


# Layers bottom-up: a part imports only parts of its own layer or of layers below it, and of
# those only the ones its row names.
LAYERS = ("model", "input", "decide", "pipeline", "lower", "views", "commands", "producers",
          "face")

PARTS = (
    _part("spec", "model", "", "the model as data: spec/ tables and the grammar, loaded"),
    _part("solver", "model", "", "one way to ask Z3, timeouts as unknown"),
    _part("exits", "model", "", "how the process ends: exit codes, a reader closing the pipe"),
    _part("layers", "model", "", "this table"),
    _part("config", "model", "",
          "the [tool.kvclaims] / kvclaims.toml settings, found and read; flags win in cli"),
    _part("trace", "input", "spec",
          "formats -> events (and partial order: batches, skews); knows events, not rules or "
          "runtimes"),
    _part("jetstream", "input", "",
          "the JetStream wire contract between relay and watch: headers, message ids, connect"),
    _part("check", "decide", "spec solver trace",
          "the rules, both engines and the verdict (data); no I/O"),
    _part("kvstream", "pipeline", "spec trace check",
          "a recorded or live KV event stream, joined with its claim manifest and decided"),
    _part("run", "pipeline", "spec trace check kvstream",
          "the one decision path: read once, order, decide, gate"),
    _part("checkpoint", "pipeline", "spec trace check kvstream",
          "a stream check's state saved to and resumed from a JetStream object store"),
    _part("shrink", "pipeline", "spec trace check run",
          "minimal failing traces, each candidate decided by run"),
    _part("lower", "lower", "spec solver trace check run",
          "the lowering relation, its anchors (trace anchors decided by run), proofs and table "
          "renderers"),
    _part("report", "views", "spec trace check",
          "renderers of a decided report and the timeline data they draw; never open or decide "
          "a trace"),
    _part("docs", "views", "spec", "the spec rendered into docs/"),
    _part("explain", "commands", "spec trace check kvstream run report",
          "`kvclaims explain` and the finding strips: read a trace, decide it with run, hand the "
          "timeline to a renderer"),
    _part("watch", "commands", "spec exits trace check kvstream run report explain",
          "`kvclaims watch`: a live stream decided as it arrives"),
    _part("relay", "commands", "spec trace jetstream",
          "`kvclaims relay`: an engine's KV event batches published once each to JetStream"),
    _part("watch_nats", "commands", "spec trace check kvstream watch jetstream checkpoint",
          "`kvclaims watch nats://`: a durable, checkpointed audit of a JetStream stream"),
    _part("fleet", "commands", "spec trace check run report",
          "many files or shards decided through run, in worker processes or Ray tasks, and the "
          "closing summary"),
    _part("runtime", "producers", "spec solver trace check run lower",
          "runtimes that produce events (MicroRuntime, KV-RM, the vLLM harness)"),
    _part("fuzz", "producers", "spec trace check run shrink report explain runtime",
          "generated workloads -> a runtime -> events -> run -> shrink"),
    _part("probe", "producers", "spec check run report runtime",
          "`kvclaims probe RUNTIME`: a runtime's probe facts rendered as text or JSON"),
    _part("litmus", "producers", "spec trace check run report runtime",
          "the litmus suite run through the MicroRuntime"),
    _part("cli", "face",
          "spec solver exits layers config trace check kvstream run shrink lower report docs "
          "explain watch relay watch_nats fleet runtime fuzz probe litmus",
          "`kvclaims ...`: parse options, call the pipeline, print"),
    _part("pytest_plugin", "face",
          "spec exits trace check run shrink report explain runtime fuzz",
          "the pytest fixtures over the same pipeline"),
)

BY_NAME = {p.name: p for p in PARTS}


def part_of(module: str) -> str | None:
    """The part a dotted module name (`kvclaims.trace.dsl`) belongs to; None for the package
    root `kvclaims` itself (its __init__ imports nothing)."""
    names = module.split(".")
    return names[1] if len(names) > 1 else None
